"""The orphan report: every category found, each with the right severity and the group to notify.

Expected rows are worked out by hand from the Backstage examples plus
tests/data/health/broken-catalog.yaml (its header lists the planted findings) and the removal
log below. The examples alone are clean apart from hygiene: seven components without a system
(plus `alternative/different-namespace`) and four entities owned by a person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from test_graph import catalog_frames, example_docs

from analytics.org import OrgGraph
from analytics.health.orphans import CATEGORIES, orphan_report, removal_trend, summary, trend_snapshot
from catalog_pipelines.model.insight_tables import ORPHANS

ADMINS = "group:default/catalog-admins"
C = "component:default/"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def removals_log() -> pd.DataFrame:
    rows = [
        ("component:default/ancient", "component", "examples", 1, T0),  # old, unreferenced: dropped
        ("component:default/petstore", "component", "examples", 2, T0 + timedelta(days=1)),  # came back
        ("resource:default/old-db", "resource", "examples", 3, T0 + timedelta(days=2)),  # still referenced
        ("component:default/retired-svc", "component", "examples", 3, T0 + timedelta(days=2)),
    ]
    return pd.DataFrame(rows, columns=["ref", "kind", "provider", "cycle", "removed_at"])


@pytest.fixture(scope="module")
def report() -> pd.DataFrame:
    docs = example_docs()
    entities, relations = catalog_frames(docs)
    return orphan_report(entities, relations, removals_log(), OrgGraph.from_entities(docs), admin_group=ADMINS)


def rows(report: pd.DataFrame, category: str) -> dict[str, dict]:
    sel = report[report["category"] == category]
    return {(r["ref"], r["related_ref"]) if category == "dangling_relation" else r["ref"]: r for r in sel.to_dict("records")}


def test_removed_entities_are_reported_with_cycle_provider_and_time(report):
    got = rows(report, "removed_from_source")
    assert set(got) == {"resource:default/old-db", C + "retired-svc"}
    old_db = got["resource:default/old-db"]
    assert (old_db["severity"], old_db["provider"], old_db["cycle"]) == ("warning", "examples", 3)
    assert old_db["removed_at"] == T0 + timedelta(days=2)
    # Still referenced by legacy-batch, so legacy-batch's team hears about it.
    assert (old_db["related_ref"], old_db["notify_group"]) == (C + "legacy-batch", "group:default/team-b")
    retired = got[C + "retired-svc"]
    assert (retired["severity"], retired["notify_group"]) == ("info", ADMINS)


def test_a_removal_from_an_older_cycle_is_kept_only_while_something_references_it(report):
    assert "component:default/ancient" not in set(report["ref"])
    docs = example_docs()
    entities, relations = catalog_frames(docs)
    wide = orphan_report(entities, relations, removals_log(), OrgGraph.from_entities(docs), removal_cycles=3)
    assert "component:default/ancient" in set(wide.loc[wide["category"] == "removed_from_source", "ref"])


def test_an_entity_that_came_back_is_not_an_orphan(report):
    assert C + "petstore" not in set(report.loc[report["category"] == "removed_from_source", "ref"])


def test_ownership_problems_are_errors_routed_past_the_broken_owner(report):
    unresolved = rows(report, "owner_unresolved")
    assert set(unresolved) == {C + "ghost-owned"}
    ghost = unresolved[C + "ghost-owned"]
    assert ghost["severity"] == "error"
    assert ghost["related_ref"] == "group:default/ghosts"
    # The owner does not exist, so the owner of its system (podcast → team-b) is told.
    assert ghost["notify_group"] == "group:default/team-b"
    no_owner = rows(report, "no_owner")
    assert set(no_owner) == {"template:default/scaffold-service"}
    assert no_owner["template:default/scaffold-service"]["notify_group"] == ADMINS


def test_entities_owned_by_a_person_notify_that_persons_team(report):
    got = rows(report, "owner_is_user")
    assert {ref: r["notify_group"] for ref, r in got.items()} == {
        C + "playback-order": "group:default/team-a",  # user:guest is in team-a
        C + "searcher": "group:default/team-a",
        C + "shuffle-api": "group:default/team-a",
        "domain:default/playback": "group:default/team-c",  # frank.tiernan
    }
    assert {r["severity"] for r in got.values()} == {"info"}


def test_dangling_relations_are_errors_for_dependencies_and_mention_the_removal(report):
    got = rows(report, "dangling_relation")
    assert set(got) == {
        (C + "legacy-batch", "resource:default/old-db"),
        (C + "legacy-batch", "api:default/missing-api"),
        ("user:default/lost.soul", "group:default/ghost-team"),
    }
    old_db = got[(C + "legacy-batch", "resource:default/old-db")]
    assert old_db["severity"] == "error"
    assert "removed by provider examples in cycle 3" in old_db["detail"]
    assert old_db["notify_group"] == "group:default/team-b"
    assert got[("user:default/lost.soul", "group:default/ghost-team")]["severity"] == "warning"
    # A broken owner is reported once, as owner_unresolved, not again as a dangling ownedBy.
    assert not any(related == "group:default/ghosts" for _, related in got)


def test_components_without_a_system(report):
    got = rows(report, "component_without_system")
    assert set(got) == {
        C + "petstore", C + "playback-order", C + "searcher", C + "wayback-archive",
        C + "wayback-archive-ingestion", C + "wayback-archive-storage", C + "wayback-search",
        "component:alternative/different-namespace",
    }
    assert got[C + "wayback-archive-ingestion"]["notify_group"] == "group:default/team-d"
    assert got["component:alternative/different-namespace"]["owner"] == "group:default/team-a"


def test_a_subcomponent_inherits_its_parents_system():
    docs = example_docs(broken=False)
    for doc in docs:
        if doc["metadata"]["name"] == "wayback-archive" and doc["kind"] == "Component":
            doc["spec"]["system"] = "podcast"
    entities, relations = catalog_frames(docs)
    out = orphan_report(entities, relations, removals_log().iloc[:0], OrgGraph.from_entities(docs))
    loose = set(out.loc[out["category"] == "component_without_system", "ref"])
    assert not loose & {C + "wayback-archive", C + "wayback-archive-ingestion", C + "wayback-archive-storage"}


def test_empty_groups_and_groupless_users(report):
    groups = rows(report, "group_without_members")
    assert set(groups) == {"group:default/empty-guild", "group:default/dormant-club"}
    guild = groups["group:default/empty-guild"]
    # It owns invoicing, so ownership leads nowhere: a warning for its parent group.
    assert (guild["severity"], guild["notify_group"]) == ("warning", "group:default/backstage")
    assert (groups["group:default/dormant-club"]["severity"], groups["group:default/dormant-club"]["notify_group"]) == ("info", ADMINS)
    # Departments without direct members are fine: their teams have people.
    assert "group:default/infrastructure" not in groups
    users = rows(report, "user_without_group")
    assert set(users) == {"user:default/drifter", "user:default/lost.soul"}
    assert "group:default/ghost-team" in users["user:default/lost.soul"]["detail"]


def test_orphan_annotation_from_an_upstream_backstage(report):
    got = rows(report, "orphan_annotation")
    assert set(got) == {C + "forgotten-svc"}
    assert got[C + "forgotten-svc"]["notify_group"] == "group:default/team-b"


def test_every_row_has_a_group_to_notify_and_errors_come_first(report):
    # 2 removals + 1 annotation + 1 unresolved + 1 unowned + 3 dangling + 8 loose components
    # + 2 empty groups + 2 groupless users + 4 person-owned: nothing else is reported.
    assert len(report) == 24
    assert report["notify_group"].notna().all()
    order = report["severity"].map({"error": 0, "warning": 1, "info": 2}).tolist()
    assert order == sorted(order)


def test_the_clean_examples_have_no_errors_or_warnings():
    docs = example_docs(broken=False)
    entities, relations = catalog_frames(docs)
    out = orphan_report(entities, relations, removals_log().iloc[:0], OrgGraph.from_entities(docs))
    assert set(out["severity"]) == {"info"}
    assert set(out["category"]) == {"component_without_system", "owner_is_user"}


def test_trend_rows_cover_every_category_and_removals_trend_per_cycle(report):
    snap = trend_snapshot(report, T0)
    assert snap["category"].tolist() == list(CATEGORIES)
    counts = dict(zip(snap["category"], snap["count"]))
    assert counts["dangling_relation"] == 3 and counts["no_owner"] == 1
    assert dict(zip(snap["category"], snap["errors"]))["dangling_relation"] == 2
    per_cycle = removal_trend(removals_log())
    assert per_cycle[["cycle", "removed"]].values.tolist() == [[1, 1], [2, 1], [3, 2]]
    totals = summary(report).set_index(["category", "severity"])["count"]
    assert totals[("removed_from_source", "warning")] == 1


# ##### THE ASSET AND `catalog orphans` (through the catalog database)


def test_orphan_report_asset_writes_report_and_trend_and_warns_on_errors(catalog_url, dagster_instance, monkeypatch):
    import json

    import dagster as dg
    from click.testing import CliRunner
    from helpers import seed_catalog

    from catalog_pipelines.assets.catalog_health import orphan_report as asset
    from catalog_pipelines.cli.catalog_health import orphans
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import read_frame

    url = catalog_url
    seed_catalog(url, example_docs())
    resources = {"catalog": CatalogDatabase(url=url)}
    instance = dagster_instance
    config = {"ops": {"orphan_report": {"config": {"admin_group": ADMINS}}}}
    for _ in range(2):  # two runs: two trend snapshots
        result = dg.materialize([asset], resources=resources, instance=instance, run_config=config)
        assert result.success
    meta = result.asset_materializations_for_node("orphan_report")[0].metadata
    # The report without removals: the 24 rows of the pure test minus the 2 removals.
    assert meta["dagster/row_count"].value == 22
    assert meta["errors"].value == 4
    [check] = result.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("no_error_findings", False)
    engine = get_engine(url)
    trend = read_frame(engine, ORPHANS.trend)
    assert len(trend) == 2 * len(CATEGORIES)
    assert trend.groupby("as_of")["count"].sum().tolist() == [22, 22]

    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    out = CliRunner().invoke(orphans, ["--severity", "error", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {(r["category"], r["ref"]) for r in rows} == {
        ("owner_unresolved", C + "ghost-owned"),
        ("no_owner", "template:default/scaffold-service"),
        ("dangling_relation", C + "legacy-batch"),
    }
    team_b = CliRunner().invoke(orphans, ["--group", "team-b"])
    assert "legacy-batch" in team_b.output and "scaffold-service" not in team_b.output
