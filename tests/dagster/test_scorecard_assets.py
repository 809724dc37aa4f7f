"""Scorecards through Dagster and the CLI: fact assets → scorecard_results → scorecard_reports,
a bad configuration that fails without touching the previous results, the CI gate's exit codes,
and exemptions that are audit-logged and count as passed at the next evaluation."""

from __future__ import annotations

import shutil
import zlib
from datetime import datetime, timezone

import dagster as dg
import orjson
import pytest
from click.testing import CliRunner

from catalog_pipelines.assets.facts import build_fact_assets
from catalog_pipelines.assets.scorecards import scorecard_assets
from catalog_pipelines.cli.scorecards import scorecard
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.storage import audit
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.insights import read_frame
from helpers import REPO_ROOT, TEST_DATA, install_example_collector, seed_catalog
from catalog_pipelines.model.insight_tables import SCORECARDS

ROOT = REPO_ROOT

CONFIG = """
checks:
  - {id: owned, name: Owned by a team, rule: {fact: catalog.owner_is_group, operator: equal, value: true}, fixHint: Set spec.owner to a group}
  - {id: docs, name: Has TechDocs, rule: {fact: catalog.has_techdocs, operator: equal, value: true}}
  - {id: ci-green, name: CI green, rule: {fact: deploys.last_status, operator: equal, value: success}}
tracks:
  - id: basics
    name: Basics
    filter: {kind: component}
    levels:
      - {name: Owned, checks: [owned]}
      - {name: Documented, checks: [docs]}
      - {name: Green, checks: [ci-green]}
"""


def component(name: str, owner: str, docs: bool) -> dict:
    annotations = {"backstage.io/techdocs-ref": "dir:.", "github.com/project-slug": f"acme/{name}"} if docs else {}
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": name, "annotations": annotations}, "spec": {"type": "service", "lifecycle": "production", "owner": owner}}


CATALOG = [
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "team-a"}, "spec": {"type": "team", "children": []}},
    {"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": "jane"}, "spec": {"memberOf": ["team-a"]}},
    component("gold", "team-a", docs=True),  # owned, docs, green CI → level 3
    component("silver", "team-a", docs=True),  # red CI → level 2
    component("solo", "user:jane", docs=True),  # user owner → level 0
]
# What the example collector package (examples/collector-package, type acme_deploys) reads.
DEPLOYS = [
    {"repository": "github.com/acme/gold", "deployments": 5, "last_status": "success"},
    {"repository": "github.com/acme/silver", "deployments": 4, "last_status": "failed"},
]
COLLECTORS = """
collectors:
  - name: deploys
    type: acme_deploys
    params: {file: deploys.json}
    facts:
      last_status: {type: string, description: latest deployment status}
"""


@pytest.fixture
def env(tmp_path, monkeypatch, catalog_url, dagster_instance):
    url = catalog_url
    config_dir = tmp_path / "scorecards"
    config_dir.mkdir()
    (config_dir / "basics.yaml").write_text(CONFIG)
    install_example_collector(tmp_path / "site", monkeypatch)
    (tmp_path / "collectors.yaml").write_text(COLLECTORS)
    (tmp_path / "deploys.json").write_bytes(orjson.dumps(DEPLOYS))
    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CATALOG_PIPELINES_SCORECARDS", str(config_dir))
    monkeypatch.setenv("CATALOG_PIPELINES_COLLECTORS", str(tmp_path / "collectors.yaml"))
    seed_catalog(url, CATALOG)
    return {"url": url, "config_dir": config_dir, "engine": get_engine(url), "instance": dagster_instance}


def materialize(env: dict, selection=None, raise_on_error: bool = True):
    resources = {"catalog": CatalogDatabase(url=env["url"])}
    if selection is None:  # the facts first: scorecard_results' deps are the default collectors.yaml's
        dg.materialize(build_fact_assets(demo=False), resources=resources, instance=env["instance"])
        selection = ["scorecard_results", "scorecard_reports"]
    assets = [*build_fact_assets(demo=False), *scorecard_assets]
    return dg.materialize(assets, resources=resources, instance=env["instance"], selection=selection, raise_on_error=raise_on_error)


def levels(engine) -> dict[str, int]:
    frame = read_frame(engine, SCORECARDS.levels)
    return {r.split("/")[-1]: int(lv) for r, lv in zip(frame["entity_ref"], frame["level"], strict=True)}


def test_assets_evaluate_hand_computed_levels_and_cli_reads_them(env):
    result = materialize(env)
    assert result.success
    assert levels(env["engine"]) == {"gold": 3, "silver": 2, "solo": 0}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_evaluation_errors": True}

    runner = CliRunner()
    shown = runner.invoke(scorecard, ["silver", "--json"])
    assert shown.exit_code == 0, shown.output
    data = orjson.loads(shown.output)
    assert data["tracks"][0]["level"] == 2
    assert [c["state"] for lv in data["tracks"][0]["levels"] for c in lv["checks"]] == ["passed", "passed", "failed"]

    team = orjson.loads(runner.invoke(scorecard, ["--team", "team-a", "--json"]).output)
    summary = {r["track_id"]: r for r in team["summary"]}
    assert summary["basics"]["entities"] == 2 and summary["basics"]["mean_level"] == 2.5
    assert [r["check_id"] for r in team["fix_next"]] == ["ci-green"]

    assert runner.invoke(scorecard, ["gate", "gold", "--track", "basics", "--level", "3"]).exit_code == 0
    below = runner.invoke(scorecard, ["gate", "silver", "--track", "basics", "--level", "Green"])
    assert below.exit_code == 1 and "ci-green is failed" in below.output
    assert runner.invoke(scorecard, ["gate", "nobody", "--track", "basics", "--level", "1"]).exit_code == 2


def test_bad_config_fails_naming_file_and_line_and_keeps_previous_results(env):
    materialize(env)
    before = read_frame(env["engine"], SCORECARDS.results)
    shutil.copy(TEST_DATA / "scorecards" / "bad_operator.yaml", env["config_dir"] / "zz-bad.yaml")
    result = materialize(env, selection=["scorecard_results"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "zz-bad.yaml:7:" in str(failure.event_specific_data.error) or "zz-bad.yaml:7:" in str(failure.step_failure_data.user_failure_data.description)
    after = read_frame(env["engine"], SCORECARDS.results)
    assert after.equals(before)
    invalid = CliRunner().invoke(scorecard, ["validate", "--json"])
    assert invalid.exit_code == 1 and orjson.loads(invalid.output)["issues"][0]["line"] == 7


def test_exemption_is_audit_logged_and_counts_as_passed_at_next_evaluation(env, tmp_path, monkeypatch):
    from datetime import datetime, timezone

    policy = tmp_path / "permissions.yaml"
    policy.write_text("roles:\n  exemption-managers:\n    members: [user:default/alice, user:default/bob]\n"
                      "    permissions: ['scorecard.exemption.*']\n")
    monkeypatch.setenv("CATALOG_PIPELINES_PERMISSIONS", str(policy))
    started = datetime.now(timezone.utc)
    materialize(env)
    runner = CliRunner()
    # RBAC first: someone without scorecard.exemption.create is refused, and the refusal is audited.
    refused = runner.invoke(scorecard, ["exempt", "silver", "--check", "ci-green", "--expires", "2099-01-01", "--justification", "flaky runner pool, INFRA-123", "--author", "mallory", "--json"])
    assert refused.exit_code == 1 and "not permitted" in refused.output
    granted = runner.invoke(scorecard, ["exempt", "silver", "--check", "ci-green", "--expires", "2099-01-01", "--justification", "flaky runner pool, INFRA-123", "--author", "alice", "--json"])
    assert granted.exit_code == 1 and "at most 366 days" in granted.output  # the rules apply
    from datetime import datetime, timedelta, timezone

    expires = (datetime.now(timezone.utc) + timedelta(days=30)).strftime("%Y-%m-%d")
    granted = runner.invoke(scorecard, ["exempt", "silver", "--check", "ci-green", "--expires", expires, "--justification", "flaky runner pool, INFRA-123", "--author", "alice", "--json"])
    assert granted.exit_code == 0, granted.output
    exemption_id = orjson.loads(granted.output)["exemption_id"]
    log = audit.entries(env["engine"], action_prefix="scorecard.exemption", since=started)
    assert [(e.actor, e.action, e.target, e.outcome) for e in log] == [
        ("alice", "scorecard.exemption.grant", "component:default/silver#ci-green", "success"),
        ("alice", "scorecard.exemption.grant", "component:default/silver#ci-green", "denied"),
        ("mallory", "scorecard.exemption.grant", "component:default/silver#ci-green", "denied"),
    ]
    assert log[0].details["justification"] == "flaky runner pool, INFRA-123"

    materialize(env, selection=["scorecard_results"])
    assert levels(env["engine"])["silver"] == 3
    assert runner.invoke(scorecard, ["revoke", exemption_id, "--reason", "fixed", "--author", "bob"]).exit_code == 0
    materialize(env, selection=["scorecard_results"])
    assert levels(env["engine"])["silver"] == 2
    regressions = read_frame(env["engine"], SCORECARDS.regressions)
    assert regressions[["owner", "subject_id", "previous", "current"]].values.tolist()[-2:] == [["group:default/team-a", "ci-green", "passed", "failed"], ["group:default/team-a", "basics", "3", "2"]]


def collector_facts(rng, team: int) -> dict[str, dict]:
    """Facts in the shapes FACTS19 fixes for the shipped collectors (what report_files, github,
    jira and pagerduty emit), drawn around a per-team quality so that teams differ."""
    bad = team % 3 == 0
    sev = {s: int(rng.poisson(lam)) for s, lam in (("critical", 0.6 if bad else 0.05), ("high", 2 if bad else 0.5), ("medium", 2), ("low", 3))}
    return {
        "security": {"vulnerabilities_by_severity": {**sev, "unknown": 0}, "vulnerabilities_total": sum(sev.values()),
                     "results_total": 3, "results_by_level": {"error": int(bad), "warning": 2, "note": 1, "none": 0}, "tools": ["Trivy", "Semgrep"]},
        "coverage": {"line_coverage_pct": float(rng.uniform(40, 80) if bad else rng.uniform(65, 95)), "tools": ["cobertura"]},
        "tests": {"tests": 120, "failures": int(bad and rng.random() < 0.5), "errors": 0, "skipped": 3},
        "github": {"workflow_success_rate": float(rng.uniform(0.5, 0.9) if bad else rng.uniform(0.8, 1.0)), "median_workflow_duration_seconds": float(rng.uniform(200, 900)),
                   "last_workflow_conclusion": "success", "dependabot_alerts_open": {"critical": int(bad), "high": 1, "medium": 0, "low": 2}},
        "pagerduty": {"has_oncall": True, "oncall_responders": 1 if bad else 3, "has_escalation_policy": True, "open_incidents": int(bad), "incidents": 2},
        "jira": {"open_issues": 12, "open_bugs": 3, "oldest_open_issue_days": float(rng.uniform(10, 90)), "issues_created": 7},
    }


def test_the_shipped_tracks_evaluate_collected_facts_on_the_synthetic_organisation(catalog_url, dagster_instance, tmp_path, monkeypatch):
    """The migrated checks (config/scorecards) over facts stored under the shipped collectors'
    names: validation against collectors.yaml, object paths, levels that differ by team. (The
    collectors themselves are exercised in tests/collectors.)"""
    import numpy as np

    from catalog_pipelines.providers.synthetic import SyntheticOrg
    from catalog_pipelines.services.facts import AnnotationIndex
    from catalog_pipelines.storage.facts import MappedObservation, store_batch
    from catalog_pipelines.storage.frames import entities_frame

    url = catalog_url
    monkeypatch.delenv("CATALOG_PIPELINES_SCORECARDS", raising=False)
    monkeypatch.delenv("CATALOG_PIPELINES_COLLECTORS", raising=False)
    seed_catalog(url, [e for e in SyntheticOrg(300, seed=11).iter_entities() if e])
    engine = get_engine(url)
    index = AnnotationIndex.load(engine)
    rng = np.random.default_rng(5)
    now = datetime.now(timezone.utc)
    batches: dict[str, list] = {}
    components = entities_frame(engine)
    for ref, owner, body in zip(components["ref"], components["owner"], components["entity"]):
        annotations = body["metadata"].get("annotations") or {}
        if not ref.startswith("component:") or "github.com/project-slug" not in annotations:
            continue  # GitLab-hosted components get no GitHub or report facts here: 'not reported'
        assert index.candidates("github.com/project-slug", annotations["github.com/project-slug"]) == [ref]
        for collector, facts in collector_facts(rng, zlib.crc32(str(owner).encode()) % 7).items():
            batches.setdefault(collector, []).append(MappedObservation(ref, now, "test", facts))
    for collector, rows in batches.items():
        store_batch(engine, collector, rows, None, now)
    result = dg.materialize([*build_fact_assets(demo=False)[:1], *scorecard_assets], resources={"catalog": CatalogDatabase(url=url)},
                            selection=["catalog_facts", "scorecard_results", "scorecard_reports"], instance=dagster_instance)
    assert result.success
    engine = get_engine(url)
    by_track = read_frame(engine, SCORECARDS.levels).groupby("track_id")["level"].agg(["size", "nunique"])
    assert set(by_track.index) == {"production-readiness", "security"}
    assert (by_track["nunique"] > 1).all()  # teams differ: not everyone at the same level
    states = set(read_frame(engine, SCORECARDS.results)["state"])
    assert {"passed", "failed", "not_reported"} <= states


def test_definitions_load_with_every_dependency_materializable():
    from catalog_pipelines.assets.catalog_quality import catalog_quality_checks
    from catalog_pipelines.assets.ingestion import build_catalog_snapshot

    defs = dg.Definitions(
        assets=[build_catalog_snapshot([]), *build_fact_assets(demo=True), *scorecard_assets],
        asset_checks=[catalog_quality_checks],
        resources={"catalog": CatalogDatabase(url="sqlite:///:memory:")},
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    # A typo in deps=[...] silently becomes an external asset: none may exist here.
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable} == set()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"catalog_facts", "security_facts", "github_facts", "scorecard_results", "scorecard_reports", "synthetic_fact_sources"}


def test_reports_show_the_level_distribution_and_the_latest_regressions(env):
    """What an operator reads on scorecard_reports in the UI: entities per track and level, and the
    latest evaluation's regressions, as markdown tables (issue 18, item 7)."""
    first = materialize(env).asset_materializations_for_node("scorecard_reports")[0].metadata
    levels = first["levels"].value
    assert "| track | level | entities |" in levels
    assert "| basics | 3 Green | 1 |" in levels and "| basics | 2 Documented | 1 |" in levels
    assert first["regressions"].value == 0 and "no regression" in first["top_regressions"].value

    # gold's deployments turn red: its ci-green check regresses and it drops from Green to Documented.
    path = env["config_dir"].parent / "deploys.json"
    # (the example collector's cursor is an offset: a later record is what the next run reads)
    path.write_bytes(orjson.dumps([*DEPLOYS, {**DEPLOYS[0], "last_status": "failed"}]))
    second = materialize(env).asset_materializations_for_node("scorecard_reports")[0].metadata
    table = second["top_regressions"].value
    assert second["regressions"].value >= 1
    assert "| owner | entity | check / track | from | to |" in table
    assert "| group:default/team-a | component:default/gold | check ci-green | passed | failed |" in table
