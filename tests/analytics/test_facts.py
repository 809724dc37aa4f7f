"""Facts: catalog facts, one reader per export source (JSON, JSON Lines, CSV), retention, and the
synthetic organisation's exports (deterministic, teams that differ and change over time)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pandas as pd
import pytest

from analytics.facts.collect import Retention, apply_retention, catalog_facts, decode_from_storage, encode_for_storage, latest_facts
from analytics.org import OrgGraph
from analytics.facts.synthetic import DEFAULT_FORMATS, synthetic_exports, team_quality
from catalog_pipelines.services.facts import summarise_export_dir as collect_export_facts
from catalog_pipelines.storage.fact_exports import write_exports

NOW = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)


# ##### FIXTURES


def entity(kind: str, name: str, **spec) -> dict:
    meta = spec.pop("metadata", {})
    return {"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": "default", **meta}, "spec": spec}


def frame(bodies: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"ref": f"{b['kind']}:default/{b['metadata']['name']}".lower(), "kind": b["kind"].lower(), "namespace": "default", "name": b["metadata"]["name"], "type": b["spec"].get("type"), "owner": b["spec"].get("owner"), "system": b["spec"].get("system"), "lifecycle": b["spec"].get("lifecycle"), "provider": "t", "entity": b}
            for b in bodies
        ]
    )


def write(path, records, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        pd.DataFrame(records).to_csv(path, index=False)
    elif fmt == "jsonl":
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    else:
        path.write_bytes(orjson.dumps(records))


# ##### CATALOG FACTS


def test_catalog_facts_describe_ownership_docs_source_links_lifecycle_and_system():
    bodies = [
        entity("Group", "team-a", type="team"),
        entity("User", "jane"),
        entity("Component", "full", type="service", owner="team-a", lifecycle="production", system="shop", metadata={"description": "Does things", "tags": ["java"], "links": [{"url": "u"}], "annotations": {"backstage.io/techdocs-ref": "dir:.", "backstage.io/source-location": "url:https://x"}}),
        entity("Component", "bare", type="service", owner="user:jane", metadata={"description": "  "}),
        entity("API", "ghost-owned", type="openapi", owner="team-gone", lifecycle="production"),
    ]
    facts = catalog_facts(frame(bodies)).set_index("entity_ref")
    assert set(facts.index) == {"component:default/full", "component:default/bare", "api:default/ghost-owned"}  # users/groups have no facts
    full, bare, ghost = facts.loc["component:default/full"], facts.loc["component:default/bare"], facts.loc["api:default/ghost-owned"]
    assert (full.has_owner, full.owner_is_group, full.owner_exists, full.has_description, full.has_techdocs, full.has_source_location, full.links_count, full.lifecycle, full.has_system) == (True, True, True, True, True, True, 1, "production", True)
    assert full.tags == ["java"] and full.tag_count == 1
    assert (bare.has_owner, bare.owner_is_group, bare.owner_exists, bare.has_description, bare.has_techdocs, bare.has_links, bare.has_system) == (True, False, True, False, False, False, False)
    assert (ghost.owner_is_group, ghost.owner_exists) == (True, False)


def test_fact_storage_round_trip_keeps_lists_and_booleans():
    facts = catalog_facts(frame([entity("Component", "a", type="service", owner="team-a", metadata={"tags": ["x", "y"]})]))
    stored = encode_for_storage(facts, "catalog", NOW)
    assert stored["tags"].iat[0] == '["x","y"]'
    back = decode_from_storage(stored, "catalog")
    assert back["tags"].iat[0] == ["x", "y"] and back["has_owner"].tolist() == [True] and str(back["has_owner"].dtype) == "boolean"


# ##### EXPORT READERS


def test_ci_reader_rates_default_branch_runs_of_the_last_30_days_and_ignores_cancelled(tmp_path):
    runs = [
        {"run_id": "1", "entity_ref": "component:default/a", "branch": "main", "default_branch": True, "status": "success", "started_at": "2026-06-30T10:00:00Z", "duration_seconds": 100},
        {"run_id": "2", "entity_ref": "a", "branch": "main", "default_branch": True, "status": "failed", "started_at": "2026-06-30T11:00:00Z", "duration_seconds": 300},
        {"run_id": "3", "entity_ref": "a", "branch": "main", "default_branch": True, "status": "cancelled", "started_at": "2026-06-30T12:00:00Z", "duration_seconds": 5},
        {"run_id": "4", "entity_ref": "a", "branch": "feat", "default_branch": False, "status": "failed", "started_at": "2026-06-30T13:00:00Z", "duration_seconds": 50},
        {"run_id": "5", "entity_ref": "a", "branch": "main", "default_branch": True, "status": "failed", "started_at": "2026-05-01T10:00:00Z", "duration_seconds": 50},
        {"run_id": None, "entity_ref": "component:default/idle"},
    ]
    write(tmp_path / "ci" / "2026-06-30.json", runs, "json")
    facts, files = collect_export_facts("ci", tmp_path / "ci", NOW)
    facts = facts.set_index("entity_ref")
    assert files == ["2026-06-30.json"]
    a = facts.loc["component:default/a"]
    assert (a.default_branch_success_rate, a.runs_30d, a.last_status, a.last_duration_seconds, a.median_duration_seconds) == (0.5, 4, "cancelled", 5.0, 100.0)
    idle = facts.loc["component:default/idle"]
    assert idle.runs_30d == 0 and pd.isna(idle.default_branch_success_rate)  # covered, no data: rate unknown


def test_later_export_restates_a_record_and_marker_rows_mean_covered_with_nothing_open(tmp_path):
    write(tmp_path / "v" / "2026-06-29.csv", [{"vulnerability_id": "V1", "entity_ref": "a", "severity": "critical", "opened_at": "2026-06-01T00:00:00Z", "resolved_at": ""}, {"vulnerability_id": "V2", "entity_ref": "a", "severity": "high", "opened_at": "2026-06-21T00:00:00Z", "resolved_at": ""}], "csv")
    write(tmp_path / "v" / "2026-06-30.jsonl", [{"vulnerability_id": "V1", "entity_ref": "a", "severity": "critical", "opened_at": "2026-06-01T00:00:00Z", "resolved_at": "2026-06-30T00:00:00Z"}, {"vulnerability_id": None, "entity_ref": "clean"}], "jsonl")
    facts, _ = collect_export_facts("vulnerabilities", tmp_path / "v", NOW)
    facts = facts.set_index("entity_ref")
    a = facts.loc["component:default/a"]
    assert (a.open_critical, a.open_high, a.open_total) == (0, 1, 1)
    assert a.oldest_critical_high_days == pytest.approx(10.5)
    clean = facts.loc["component:default/clean"]
    assert (clean.open_total, clean.oldest_open_days) == (0, 0)


def test_tickets_coverage_and_oncall_readers(tmp_path):
    write(tmp_path / "t" / "x.csv", [
        {"ticket_id": "T1", "entity_ref": "a", "type": "ticket", "priority": "P2", "opened_at": "2026-05-02T12:00:00Z", "closed_at": ""},
        {"ticket_id": "T2", "entity_ref": "a", "type": "ticket", "priority": "P3", "opened_at": "2026-06-30T12:00:00Z", "closed_at": "2026-07-01T00:00:00Z"},
        {"ticket_id": "I1", "entity_ref": "a", "type": "incident", "priority": "P1", "opened_at": "2026-06-20T12:00:00Z", "closed_at": "2026-06-21T00:00:00Z"},
    ], "csv")
    tickets = collect_export_facts("tickets", tmp_path / "t", NOW)[0].iloc[0]
    assert (tickets.open_tickets, tickets.open_incidents, tickets.oldest_open_ticket_days, tickets.incidents_30d) == (1, 0, 60.0, 1)
    write(tmp_path / "c" / "1.csv", [{"entity_ref": "a", "measured_at": "2026-06-29T00:00:00Z", "line_coverage": 60, "branch_coverage": 50}, {"entity_ref": "a", "measured_at": "2026-06-30T00:00:00Z", "line_coverage": 72.5, "branch_coverage": 61}], "csv")
    cov = collect_export_facts("coverage", tmp_path / "c", NOW)[0].iloc[0]
    assert (cov.line_coverage, cov.branch_coverage) == (72.5, 61)
    write(tmp_path / "o" / "1.json", [{"entity_ref": "a", "schedule_id": "PD1", "escalation_policy": None, "responders": 3, "updated_at": "2026-06-30T00:00:00Z"}, {"entity_ref": "b", "schedule_id": None, "escalation_policy": None, "responders": 0, "updated_at": "2026-06-30T00:00:00Z"}], "json")
    oncall = collect_export_facts("oncall", tmp_path / "o", NOW)[0].set_index("entity_ref")
    assert oncall.loc["component:default/a", ["has_oncall", "oncall_responders", "has_escalation_policy"]].tolist() == [True, 3, False]
    assert not oncall.loc["component:default/b", "has_oncall"]


def test_missing_export_directory_yields_no_facts(tmp_path):
    facts, files = collect_export_facts("ci", tmp_path / "nothing", NOW)
    assert facts.empty and files == []


# ##### RETENTION


def history(*stamps: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"entity_ref": [r for r, _ in stamps], "collected_at": [pd.Timestamp("2026-07-01") - pd.Timedelta(days=d) for _, d in stamps], "v": range(len(stamps))})


def test_retention_keeps_the_n_latest_rows_per_entity():
    kept = apply_retention(history(("a", 3), ("a", 2), ("a", 1), ("b", 5)), Retention(max_items=2), NOW)
    assert sorted(zip(kept["entity_ref"], kept["v"], strict=True)) == [("a", 1), ("a", 2), ("b", 3)]


def test_retention_time_to_live_drops_old_rows_so_stale_facts_become_missing():
    kept = apply_retention(history(("a", 20), ("a", 1), ("b", 20)), Retention(ttl=timedelta(days=14)), NOW)
    assert kept["v"].tolist() == [1]
    assert latest_facts(kept)["entity_ref"].tolist() == ["a"]


# ##### SYNTHETIC EXPORTS


def synthetic_catalog(teams: int = 6, per_team: int = 30) -> tuple[pd.DataFrame, OrgGraph]:
    bodies = [entity("Group", f"team-{t}", type="team") for t in range(teams)]
    bodies += [entity("Component", f"svc-{t}-{i}", type=("service", "website", "library")[i % 3], owner=f"team-{t}", lifecycle="production") for t in range(teams) for i in range(per_team)]
    return frame(bodies), OrgGraph.from_entities(bodies)


def test_synthetic_exports_are_deterministic_and_readable_by_every_reader(tmp_path):
    ents, org = synthetic_catalog()
    one = synthetic_exports(ents, org, as_of=date(2026, 6, 30), seed=3, days=3)
    two = synthetic_exports(ents, org, as_of=date(2026, 6, 30), seed=3, days=3)
    for source in one:
        for day in one[source]:
            pd.testing.assert_frame_equal(one[source][day], two[source][day])
    write_exports(one, tmp_path, formats=DEFAULT_FORMATS)
    for source in ("ci", "vulnerabilities", "tickets", "coverage", "oncall"):
        facts, files = collect_export_facts(source, tmp_path / source, NOW)
        assert files, source
        # Some entities are deliberately not covered, so checks show "not reported" for them.
        assert 0 < len(facts) < 180, source


def test_synthetic_teams_differ_and_change_over_time():
    teams = pd.Series([f"group:default/team-{t}" for t in range(20)])
    june, october = team_quality(teams, date(2026, 6, 1), 7), team_quality(teams, date(2026, 10, 1), 7)
    assert june.max() - june.min() > 0.3
    assert abs(october - june).max() > 0.1
    ents, org = synthetic_catalog()
    rates = {}
    for day in (date(2026, 6, 1), date(2026, 10, 1)):
        runs = pd.concat(synthetic_exports(ents, org, as_of=day, seed=7, days=7)["ci"].values())
        runs = runs[runs["run_id"].notna()]
        runs["team"] = runs["entity_ref"].str.extract(r"svc-(\d+)-")[0]
        rates[day] = runs.groupby("team")["status"].apply(lambda s: (s == "success").mean())
    assert rates[date(2026, 6, 1)].max() - rates[date(2026, 6, 1)].min() > 0.1
    assert (rates[date(2026, 10, 1)] - rates[date(2026, 6, 1)]).abs().max() > 0.05


def test_write_exports_prunes_files_older_than_keep_days(tmp_path):
    ents, org = synthetic_catalog(teams=1, per_team=3)
    write_exports(synthetic_exports(ents, org, as_of=date(2026, 6, 1), seed=1), tmp_path, formats=DEFAULT_FORMATS)
    write_exports(synthetic_exports(ents, org, as_of=date(2026, 7, 20), seed=1), tmp_path, formats=DEFAULT_FORMATS, keep_days=35)
    assert sorted(p.name for p in (tmp_path / "ci").iterdir()) == ["2026-07-20.json"]
