"""The relationship graph: impact sets, needs, cycles, hubs and per-team/per-system views.

Expected values are worked out by hand from the Backstage example catalog
(tests/data/backstage-examples) plus tests/data/health/broken-catalog.yaml, whose header lists
what each extra entity plants. The "needs" edges used below (see analytics/health/graph.py):

    api:hello-world, api:petstore, api:streetlights -> component:petstore          (providedBy)
    api:wayback-archive -> component:wayback-archive; api:wayback-search -> component:wayback-search
    component:artist-lookup -> resource:artists-db                                   (dependsOn)
    component:wayback-archive -> wayback-archive-ingestion, wayback-archive-storage  (hasSubcomponent)
    component:wayback-search -> api:wayback-archive                                  (consumesApi)
    ledger -> billing -> invoicing -> ledger; billing -> api:petstore; cron-runner -> cron-runner,
    cron-runner -> wayback-archive; legacy-batch -> resource:old-db, api:missing-api (both missing)
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import yaml

from analytics.health.graph import (
    DependencyGraph,
    analyse,
    dependency_edges,
    impact_summary,
    normalise_relations,
    subgraph,
)
from analytics.org import OrgGraph
from catalog_pipelines.model import derive_relations, validate_entity
from catalog_pipelines.model.refs import entity_ref_of
from catalog_pipelines.model.insight_tables import GRAPH
from helpers import TEST_DATA

DATA = TEST_DATA
EXAMPLES = DATA / "backstage-examples"
BROKEN = DATA / "health" / "broken-catalog.yaml"

# ##### FIXTURES (the frame builder is shared by test_orphans.py and test_skills.py)


def example_docs(*, broken: bool = True) -> list[dict[str, Any]]:
    """Every entity in the Backstage examples (minus the deliberately invalid one), plus the
    planted problems when `broken`."""
    docs: list[dict[str, Any]] = []
    files = sorted(EXAMPLES.rglob("*.yaml")) + ([BROKEN] if broken else [])
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc and "metadata" in doc:
                definition = (doc.get("spec") or {}).get("definition")
                if isinstance(definition, dict):
                    # `$text` placeholders are the loader's business, not this test's.
                    doc["spec"]["definition"] = f"(placeholder {definition})"
                docs.append(doc)
    valid = [d for d in docs if not validate_entity(d)]
    assert len(docs) - len(valid) == 1, "only components/invalid-component.yaml should be invalid"
    return valid


def catalog_frames(docs: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shapes `storage.frames.entities_frame()` and `relations_frame()` return."""
    rows, relations = [], []
    for doc in docs:
        spec = doc.get("spec") or {}
        meta = doc["metadata"]
        rows.append(
            {
                "ref": entity_ref_of(doc),
                "kind": doc["kind"].lower(),
                "namespace": meta.get("namespace", "default"),
                "name": meta["name"],
                "type": spec.get("type"),
                "owner": spec.get("owner"),
                "system": spec.get("system"),
                "lifecycle": spec.get("lifecycle"),
                "provider": "examples",
                "entity": doc,
            }
        )
        relations.extend((r.source, r.type, r.target) for r in derive_relations(doc))
    return pd.DataFrame(rows), pd.DataFrame(relations, columns=["source", "type", "target"])


@pytest.fixture(scope="module")
def analysis():
    docs = example_docs()
    entities, relations = catalog_frames(docs)
    return analyse(entities, relations, OrgGraph.from_entities(docs), top=10)


def refs(frame: pd.DataFrame) -> set[str]:
    return set(frame["ref"])


C = "component:default/"

# ##### TESTS


def test_relations_stored_in_both_directions_become_one_forward_row():
    rel = pd.DataFrame(
        [
            ("component:default/a", "dependsOn", "resource:default/db"),
            ("resource:default/db", "dependencyOf", "component:default/a"),
            ("API:default/X", "apiProvidedBy", "Component:default/A"),
        ],
        columns=["source", "type", "target"],
    )
    out = normalise_relations(rel)
    assert sorted(map(tuple, out.to_numpy().tolist())) == [
        ("component:default/a", "dependsOn", "resource:default/db"),
        ("component:default/a", "providesApi", "api:default/x"),
    ]


def test_an_api_needs_its_provider_and_a_component_needs_its_subcomponents():
    rel = pd.DataFrame(
        [
            (C + "svc", "providesApi", "api:default/x"),
            (C + "part", "partOf", C + "svc"),
            (C + "svc", "partOf", "system:default/s"),  # structure, not a dependency
        ],
        columns=["source", "type", "target"],
    )
    edges = dependency_edges(rel)
    assert sorted(map(tuple, edges.to_numpy().tolist())) == [
        ("api:default/x", C + "svc", "providedBy"),
        (C + "svc", C + "part", "hasSubcomponent"),
    ]


def test_what_breaks_if_the_wayback_storage_goes_down(analysis):
    impact = analysis.graph.traverse(C + "wayback-archive-storage", reverse=True)
    got = dict(zip(impact["ref"], impact["depth"]))
    assert got == {
        C + "wayback-archive": 1,
        "api:default/wayback-archive": 2,
        C + "cron-runner": 2,
        C + "wayback-search": 3,
        "api:default/wayback-search": 4,
    }
    first = impact.set_index("ref").loc["api:default/wayback-archive"]
    assert (first["parent"], first["via"]) == (C + "wayback-archive", "providedBy")


def test_depth_limits_the_impact_set(analysis):
    impact = analysis.graph.traverse(C + "wayback-archive-storage", reverse=True, depth=2)
    assert refs(impact) == {C + "wayback-archive", "api:default/wayback-archive", C + "cron-runner"}


def test_what_a_component_needs_follows_apis_to_their_providers(analysis):
    needs = analysis.graph.traverse(C + "wayback-search")
    assert dict(zip(needs["ref"], needs["via"])) == {
        "api:default/wayback-archive": "consumesApi",
        C + "wayback-archive": "providedBy",
        C + "wayback-archive-ingestion": "hasSubcomponent",
        C + "wayback-archive-storage": "hasSubcomponent",
    }
    assert refs(analysis.graph.traverse("resource:default/artists-db", reverse=True)) == {C + "artist-lookup"}


def test_traversal_through_a_cycle_terminates_and_excludes_the_start(analysis):
    needs = analysis.graph.traverse(C + "ledger")
    assert dict(zip(needs["ref"], needs["depth"])) == {
        C + "billing": 1,
        C + "invoicing": 2,
        "api:default/petstore": 2,
        C + "petstore": 3,
    }


def test_dependency_cycles_are_found_with_an_example_path(analysis):
    cycles = analysis.cycles.set_index("members")
    assert set(cycles.index) == {f"{C}billing,{C}invoicing,{C}ledger", f"{C}cron-runner"}
    three = cycles.loc[f"{C}billing,{C}invoicing,{C}ledger"]
    assert three["size"] == 3
    assert three["example"] == f"{C}billing -> {C}invoicing -> {C}ledger -> {C}billing"
    assert three["owners"] == "group:default/empty-guild,group:default/team-a,group:default/team-c"
    assert cycles.loc[f"{C}cron-runner", "example"] == f"{C}cron-runner -> {C}cron-runner"
    nodes = analysis.nodes.set_index("ref")
    assert nodes.loc[C + "ledger", "cycle_id"] == three["cycle_id"]
    assert pd.isna(nodes.loc[C + "petstore", "cycle_id"])


def test_the_examples_alone_have_no_cycle():
    docs = example_docs(broken=False)
    entities, relations = catalog_frames(docs)
    assert analyse(entities, relations).cycles.empty


def test_most_depended_on_ranks_by_runtime_blast_radius(analysis):
    top = analysis.most_depended_on
    # Runtime dependencies only: wayback-archive's subcomponents (ingestion, storage) are structure,
    # not something its dependents call, so they no longer share its blast radius.
    assert top["ref"].head(3).tolist() == [C + "petstore", C + "wayback-archive", "api:default/petstore"]
    assert not {C + "wayback-archive-ingestion", C + "wayback-archive-storage"} & set(top["ref"])
    petstore = top.set_index("ref").loc[C + "petstore"]
    # hello-world, petstore and streetlights APIs directly; billing, invoicing, ledger through petstore.
    assert (petstore["direct_dependents"], petstore["transitive_dependents"]) == (3, 6)
    # Reached teams: team-c (the APIs, billing), empty-guild (invoicing), team-a (ledger).
    assert petstore["dependent_teams"] == 3
    # A self-dependency is not a dependent.
    assert C + "cron-runner" not in set(top["ref"])


def test_dangling_dependency_targets_are_nodes_outside_the_catalog(analysis):
    nodes = analysis.nodes.set_index("ref")
    assert not nodes.loc["resource:default/old-db", "in_catalog"]
    assert nodes.loc["resource:default/old-db", "direct_dependents"] == 1
    assert nodes.loc[C + "legacy-batch", "in_catalog"]


def test_a_team_subgraph_separates_internal_edges_from_its_boundary(analysis):
    nodes, edges = subgraph(analysis.edges, analysis.nodes, team="group:default/team-d")
    assert refs(nodes) == {C + "wayback-archive-ingestion", C + "cron-runner"}
    scoped = {(s, t): scope for s, t, scope in zip(edges["source"], edges["target"], edges["scope"])}
    assert scoped == {
        (C + "cron-runner", C + "cron-runner"): "internal",
        (C + "cron-runner", C + "wayback-archive"): "outgoing",
        (C + "wayback-archive", C + "wayback-archive-ingestion"): "incoming",
    }


def test_a_department_subgraph_includes_its_teams_when_given_the_org():
    docs = example_docs()
    entities, relations = catalog_frames(docs)
    org = OrgGraph.from_entities(docs)
    result = analyse(entities, relations, org)
    nodes, _ = subgraph(result.edges, result.nodes, team="group:default/boxoffice", org=org)
    owners = set(nodes["owner"])
    assert owners == {"group:default/team-c", "group:default/team-d"}


def test_a_system_subgraph_and_the_system_dependency_view(analysis):
    nodes, edges = subgraph(analysis.edges, analysis.nodes, system="system:default/podcast")
    assert {C + "podcast-api", C + "queue-proxy", C + "cron-runner", C + "legacy-batch"} <= refs(nodes)
    assert set(edges.loc[edges["scope"] == "outgoing", "target"]) == {
        C + "wayback-archive", "resource:default/old-db", "api:default/missing-api",
    }
    sysdeps = analysis.system_dependencies.set_index(["source_system", "target_system"])
    # ledger (artist-engagement-portal) needs billing (audio-playback); billing and invoicing
    # (audio-playback) need each other and the petstore API, which has no system.
    assert sysdeps.loc[("system:default/artist-engagement-portal", "system:default/audio-playback"), "edges"] == 1
    assert sysdeps.loc[("system:default/audio-playback", "system:default/artist-engagement-portal"), "edges"] == 1


def test_team_dependencies_count_cross_team_edges(analysis):
    teams = analysis.team_dependencies.set_index(["source_owner", "target_owner"])
    # wayback-archive (team-a) needs wayback-archive-ingestion (team-d).
    assert teams.loc[("group:default/team-a", "group:default/team-d"), "edges"] == 1
    assert not teams.loc[("group:default/team-a", "group:default/team-d"), "internal"]
    # cron-runner (team-d) needs wayback-archive (team-a) and itself.
    assert teams.loc[("group:default/team-d", "group:default/team-d"), "internal"]


def test_ownership_rolls_up_the_group_hierarchy(analysis):
    owned = analysis.team_ownership.set_index(["group_ref", "kind"])
    assert owned.loc[("group:default/team-d", "component"), "owned"] == 2  # ingestion, cron-runner
    # boxoffice owns nothing itself; team-c (petstore, playback-sdk, billing) + team-d (2) below it.
    assert owned.loc[("group:default/boxoffice", "component"), ["owned", "owned_rollup"]].tolist() == [0, 5]


def test_impact_summary_names_the_teams_to_tell(analysis):
    impact = analysis.graph.traverse(C + "petstore", reverse=True)
    summary = impact_summary(impact, analysis.nodes)
    assert summary["entities"] == 6
    assert summary["owners"] == ["group:default/empty-guild", "group:default/team-a", "group:default/team-c"]
    assert summary["by_kind"] == {"api": 3, "component": 3}


def test_unknown_ref_raises_key_error(analysis):
    with pytest.raises(KeyError):
        analysis.graph.traverse("component:default/nope")


def test_graph_from_stored_tables_answers_like_the_original(analysis):
    """The CLI rebuilds the graph from the stored node and edge tables; same answer, and the
    stored edges (by node id) name the same pairs as the in-memory ones."""
    again = DependencyGraph.from_stored(analysis.nodes, analysis.edge_ids)
    left = analysis.graph.traverse(C + "wayback-archive-storage", reverse=True)
    right = again.traverse(C + "wayback-archive-storage", reverse=True)
    pd.testing.assert_frame_equal(left, right)
    ref_of = analysis.nodes.set_index("node_id")["ref"]
    stored = set(zip(analysis.edge_ids["source_id"].map(ref_of), analysis.edge_ids["target_id"].map(ref_of)))
    assert stored == set(zip(analysis.edges["source"], analysis.edges["target"]))
    by_name = DependencyGraph.from_edges(analysis.edges[["source", "target", "via"]])
    pd.testing.assert_frame_equal(left, by_name.traverse(C + "wayback-archive-storage", reverse=True))


# ##### THE ASSET AND `catalog deps` (through the catalog database, as in production)


@pytest.fixture(scope="module")
def graph_db(module_catalog_url, module_dagster_instance):
    import dagster as dg
    from helpers import seed_catalog

    from catalog_pipelines.assets.catalog_health import relationship_graph
    from catalog_pipelines.resources import CatalogDatabase

    url = module_catalog_url
    seed_catalog(url, example_docs())
    result = dg.materialize(
        [relationship_graph], resources={"catalog": CatalogDatabase(url=url)}, instance=module_dagster_instance
    )
    return url, result


def test_the_graph_from_stored_rows_alone_equals_the_graph_from_both_directions(graph_db):
    """The asset reads each stored relation once; folding both directions gives the same graph."""
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.frames import entities_frame, relations_frame

    engine = get_engine(graph_db[0])
    stored = relations_frame(engine, both_directions=False)
    both = relations_frame(engine)
    assert 0 < len(stored) < len(both)
    org, entities = org_graph(engine), entities_frame(engine)
    a, b = analyse(entities, stored, org, top=10), analyse(entities, both, org, top=10)
    for name in ("nodes", "edge_ids", "cycles", "most_depended_on", "team_dependencies", "system_dependencies"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


def test_the_graph_without_entity_bodies_equals_the_graph_with_them(graph_db):
    """The asset reads the catalog without bodies (spec fields in SQL): every output table is the
    one the bodies give, and the relations frame is the one pandas builds row by row."""
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.frames import entities_frame, relations_frame, rows_frame

    engine = get_engine(graph_db[0])
    stored = relations_frame(engine, both_directions=False)
    rows = list(stored.itertuples(index=False, name=None))
    pd.testing.assert_frame_equal(rows_frame(rows, list(stored.columns)), pd.DataFrame(rows, columns=list(stored.columns)))
    assert rows_frame([], ["source", "type", "target"]).columns.tolist() == ["source", "type", "target"]
    org = org_graph(engine)
    a = analyse(entities_frame(engine), stored, org, top=10)
    b = analyse(entities_frame(engine, with_body=False), stored, org, top=10)
    for name in ("nodes", "edge_ids", "cycles", "most_depended_on", "team_dependencies", "system_dependencies", "team_ownership"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)


def test_relationship_graph_asset_stores_the_graph_and_flags_cycles(graph_db):
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import read_frame

    url, result = graph_db
    assert result.success
    meta = result.asset_materializations_for_node("relationship_graph")[0].metadata
    assert meta["cycles"].value == 2
    assert meta["dangling_targets"].value == 2  # resource:old-db, api:missing-api
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_dependency_cycles": False, "dependency_targets_resolve": False}
    cycles = read_frame(get_engine(url), GRAPH.cycles)
    assert sorted(cycles["size"]) == [1, 3]
    top = read_frame(get_engine(url), GRAPH.most_depended_on)
    assert top["ref"].iloc[0] == C + "petstore"


def test_deps_cli_answers_impact_from_the_stored_graph(graph_db, monkeypatch):
    import json

    from click.testing import CliRunner

    from catalog_pipelines.cli.catalog_health import deps

    url, _ = graph_db
    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    runner = CliRunner()
    out = runner.invoke(deps, ["wayback-archive-storage", "--reverse", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert {e["ref"]: e["depth"] for e in report["entities"]} == {
        C + "wayback-archive": 1, "api:default/wayback-archive": 2, C + "cron-runner": 2,
        C + "wayback-search": 3, "api:default/wayback-search": 4,
    }
    assert report["summary"]["owners"] == ["group:default/team-a", "group:default/team-d"]
    limited = json.loads(runner.invoke(deps, ["component:default/wayback-search", "--depth", "1", "--json"]).output)
    assert [e["ref"] for e in limited["entities"]] == ["api:default/wayback-archive"]
    text = runner.invoke(deps, ["ledger"])
    assert text.exit_code == 0
    assert "dependency cycle" in text.output and "billing" in text.output
    missing = runner.invoke(deps, ["no-such-thing"])
    assert missing.exit_code != 0 and "not in the relationship graph" in missing.output


def test_deps_before_the_graph_was_built_says_which_asset_to_run(catalog_url, monkeypatch):
    from click.testing import CliRunner

    from catalog_pipelines.cli.catalog_health import deps

    from helpers import seed_catalog

    seed_catalog(catalog_url, [])  # a catalog, but no relationship_graph materialised yet
    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    out = CliRunner().invoke(deps, ["anything"])
    assert out.exit_code != 0 and "relationship_graph" in out.output
