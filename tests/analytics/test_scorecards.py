"""Scorecards without Dagster: YAML validation (file:line errors), rule semantics, states,
levels, exemptions, campaigns, history and roll-ups, all against hand-computed results."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.scorecards.evaluate import campaign_frame, evaluate, resolve_path, track_frame
from analytics.facts.sources import CATALOG_FACTS, FactSpec
from analytics.scorecards.config import ScorecardConfigError, load_config, load_config_texts
from analytics.scorecards.reports import (
    campaign_progress,
    fix_next,
    level_changes,
    regression_digest,
    regressions,
    result_changes,
    rollup_checks,
    rollup_levels,
    rollup_summary,
    state_at,
)
from helpers import REPO_ROOT, TEST_DATA

ROOT = REPO_ROOT
BAD = TEST_DATA / "scorecards"
NOW = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)


# ##### FIXTURES


def component(name: str, owner: str | None = "team-a", ctype: str = "service", lifecycle: str = "production", tags=None, annotations=None, system=None, namespace: str = "default") -> dict:
    spec = {"type": ctype, "lifecycle": lifecycle}
    if owner:
        spec["owner"] = owner
    if system:
        spec["system"] = system
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name, "namespace": namespace, "tags": tags or [], "annotations": annotations or {}},
        "spec": spec,
    }


def frame(bodies: list[dict]) -> pd.DataFrame:
    rows = []
    for b in bodies:
        meta, spec = b["metadata"], b.get("spec", {})
        ns = meta.get("namespace", "default")
        rows.append({"ref": f"{b['kind']}:{ns}/{meta['name']}".lower(), "kind": b["kind"].lower(), "namespace": ns, "name": meta["name"], "type": spec.get("type"), "owner": spec.get("owner"), "system": spec.get("system"), "lifecycle": spec.get("lifecycle"), "provider": "test", "entity": b})
    return pd.DataFrame(rows)


def facts(source: str, **columns) -> dict[str, pd.DataFrame]:
    refs = columns.pop("refs")
    return {source: pd.DataFrame({"entity_ref": [f"component:default/{r}" for r in refs], **columns})}


# The evaluator's tests declare a small fact catalog of their own (a CI, a scanner and a coverage
# source), as a collectors.yaml would: checks may reference declared facts only.
TEST_FACTS = {
    **CATALOG_FACTS,
    **{f"ci.{n}": FactSpec("number", n) for n in ("runs_30d", "default_branch_success_rate", "median_duration_seconds", "last_duration_seconds")},
    "ci.last_status": FactSpec("string", "status of the latest default-branch run"),
    "vulnerabilities.open_total": FactSpec("number", "open findings"),
    "coverage.line_coverage": FactSpec("number", "line coverage, percent"),
}


def config(text: str):
    return load_config_texts([("test.yaml", text)], facts=TEST_FACTS)


def states(ev, check_id: str) -> dict[str, str]:
    rows = ev.results[ev.results["check_id"] == check_id]
    return {str(r).split("/")[-1]: str(s) for r, s in zip(rows["entity_ref"], rows["state"], strict=True)}


def level_of(ev, name: str, track: str = "t") -> int:
    lv = ev.levels[(ev.levels["entity_ref"] == f"component:default/{name}") & (ev.levels["track_id"] == track)]
    return int(lv["level"].iat[0])


THREE_LEVELS = """
checks:
  - {id: l1, name: L1, rule: {fact: ci.runs_30d, operator: greaterThan, value: 0}}
  - {id: l2a, name: L2a, rule: {fact: ci.default_branch_success_rate, operator: greaterThanInclusive, value: 0.8}}
  - {id: l2b, name: L2b, rule: {fact: ci.last_status, operator: equal, value: success}}
  - {id: l2w, name: L2 warning, severity: warning, rule: {fact: ci.median_duration_seconds, operator: lessThan, value: 600}}
  - {id: l3, name: L3, rule: {fact: ci.last_duration_seconds, operator: lessThan, value: 300}}
tracks:
  - id: t
    name: T
    filter: {kind: component}
    levels:
      - {name: Bronze, checks: [l1]}
      - {name: Silver, checks: [l2a, l2b, l2w]}
      - {name: Gold, checks: [l3]}
"""


def ci_facts(**overrides) -> dict[str, pd.DataFrame]:
    base = {"refs": ["a"], "runs_30d": [10.0], "default_branch_success_rate": [0.9], "last_status": ["success"], "median_duration_seconds": [100.0], "last_duration_seconds": [100.0]}
    base.update(overrides)
    return facts("ci", **base)


# ##### CONFIGURATION


def test_shipped_config_has_production_readiness_track_of_twelve_checks_over_three_levels_and_a_security_track():
    from catalog_pipelines.services.facts import fact_catalog

    cfg = load_config(ROOT / "config" / "scorecards", facts=fact_catalog(ROOT / "config" / "collectors.yaml"))
    pr = cfg.tracks["production-readiness"]
    assert len(pr.levels) == 3
    assert len(pr.check_ids()) >= 12
    assert "security" in cfg.tracks
    assert cfg.campaigns


@pytest.mark.parametrize(
    ("file", "line", "words"),
    [
        ("bad_operator.yaml", 7, ["checks[0].rule.all[0].operator: 'greaterThanOrEqual' is not one of", "greaterThanInclusive", "(did you mean 'greaterThan'?)"]),
        ("bad_fact.yaml", 7, ["unknown fact", "catalog.has_techdoc", "catalog.has_techdocs"]),
        ("bad_value_type.yaml", 7, ["needs a number", "string '70'"]),
        ("bad_yaml.yaml", 5, ["invalid YAML"]),
        ("bad_track.yaml", 10, ["unknown check 'ownr'", "did you mean 'owner'"]),
    ],
)
def test_bad_check_file_error_names_file_and_line(file, line, words):
    with pytest.raises(ScorecardConfigError) as err:
        load_config(BAD / file, facts=TEST_FACTS)
    messages = [str(i) for i in err.value.issues]
    assert any(m.startswith(f"{file}:{line}:") and all(w in m for w in words) for m in messages), messages


def test_all_problems_of_all_files_are_reported_together():
    with pytest.raises(ScorecardConfigError) as err:
        load_config_texts([
            ("a.yaml", "checks:\n  - {id: x, name: X, rule: {fact: ci.nope, operator: equal, value: 1}}\n"),
            ("b.yaml", "checks:\n  - {id: x, name: Again, rule: {fact: ci.runs_30d, operator: in, value: 3}}\n  - {id: y, name: Y, filtr: {}, rule: {fact: ci.runs_30d, operator: exists, value: true}}\n"),
        ], facts=TEST_FACTS)
    text = str(err.value)
    assert "a.yaml:2: check 'x': unknown fact 'ci.nope'" in text
    assert "b.yaml:2: check 'x': operator 'in' needs a non-empty list" in text
    assert "b.yaml:3: checks[1].filtr: unknown key 'filtr' (did you mean 'filter'?)" in text


def test_scorecard_files_are_parsed_by_the_model_with_path_and_line_and_a_broken_check_is_named_once():
    with pytest.raises(ScorecardConfigError) as err:
        config("checks:\n  - {id: a, name: A, rule: 5}\n  - {id: b, rule: {all: [7]}}\n"
               "tracks:\n  - {id: t, name: T, levels: [{name: L, checks: [a, b]}]}\n")
    assert [str(i) for i in err.value.issues] == [
        "test.yaml:2: checks[0].rule: a condition must be a mapping with 'all', 'any', 'not' or 'fact', got 5",
        "test.yaml:3: checks[1].name: missing required key 'name'",
        "test.yaml:3: checks[1].rule.all[0]: a condition must be a mapping with 'all', 'any', 'not' or 'fact', got 7",
    ]


def test_duplicate_check_id_across_files_names_both_places():
    ok = "checks:\n  - {id: x, name: X, rule: {fact: ci.runs_30d, operator: exists, value: true}}\n"
    with pytest.raises(ScorecardConfigError) as err:
        load_config_texts([("a.yaml", ok), ("b.yaml", "\n" + ok)], facts=TEST_FACTS)
    assert "b.yaml:3: duplicate check id 'x' (first defined at a.yaml:2)" in str(err.value)


def test_operator_that_does_not_fit_the_fact_type_is_rejected():
    with pytest.raises(ScorecardConfigError, match="operator 'lessThan' does not apply to list fact 'catalog.tags'"):
        config("checks:\n  - {id: x, name: X, rule: {fact: catalog.tags, operator: lessThan, value: 3}}\n")


def test_invalid_regular_expression_is_rejected_at_load():
    with pytest.raises(ScorecardConfigError, match="invalid regular expression"):
        config("checks:\n  - {id: x, name: X, rule: {fact: catalog.lifecycle, operator: matches, value: '(unclosed'}}\n")


# ##### STATES AND RULES


def test_passing_level_three_but_failing_one_level_two_check_certifies_level_one():
    ev = evaluate(config(THREE_LEVELS), frame([component("a")]), ci_facts(last_status=["failed"]), now=NOW)
    assert states(ev, "l3")["a"] == "passed"
    assert states(ev, "l2b")["a"] == "failed"
    assert level_of(ev, "a") == 1
    assert ev.levels["level_name"].iat[0] == "Bronze"


def test_all_levels_passing_certifies_the_top_level():
    ev = evaluate(config(THREE_LEVELS), frame([component("a")]), ci_facts(), now=NOW)
    assert level_of(ev, "a") == 3


def test_warning_does_not_block_certification():
    ev = evaluate(config(THREE_LEVELS), frame([component("a")]), ci_facts(median_duration_seconds=[900.0]), now=NOW)
    assert states(ev, "l2w")["a"] == "warning"
    assert level_of(ev, "a") == 3


def test_missing_fact_is_not_reported_and_blocks_the_level():
    ev = evaluate(config(THREE_LEVELS), frame([component("a"), component("b")]), ci_facts(), now=NOW)
    # b has no CI facts at all: every CI check is "not reported", none silently skipped.
    assert {c: states(ev, c)["b"] for c in ("l1", "l2a", "l3")} == {"l1": "not_reported", "l2a": "not_reported", "l3": "not_reported"}
    assert level_of(ev, "b") == 0


def test_missing_fact_on_a_warning_check_is_shown_but_does_not_block():
    ev = evaluate(config(THREE_LEVELS), frame([component("a")]), ci_facts(median_duration_seconds=[None]), now=NOW)
    assert states(ev, "l2w")["a"] == "not_reported"
    assert level_of(ev, "a") == 3


def test_exempted_check_counts_as_passed_until_expiry():
    cfg = config(THREE_LEVELS)
    exemptions = pd.DataFrame([{"exemption_id": "e1", "entity_ref": "component:default/a", "check_id": "l2b", "created_at": "2026-06-01T00:00:00+00:00", "expires_at": "2026-07-15T00:00:00+00:00", "revoked_at": None}])
    before = evaluate(cfg, frame([component("a")]), ci_facts(last_status=["failed"]), exemptions=exemptions, now=NOW)
    row = before.results[before.results["check_id"] == "l2b"].iloc[0]
    assert (str(row["state"]), str(row["raw_state"]), bool(row["exempted"])) == ("passed", "failed", True)
    assert level_of(before, "a") == 3
    after = evaluate(cfg, frame([component("a")]), ci_facts(last_status=["failed"]), exemptions=exemptions, now=NOW + timedelta(days=30))
    assert states(after, "l2b")["a"] == "failed"
    assert level_of(after, "a") == 1


def test_revoked_exemption_no_longer_applies():
    exemptions = pd.DataFrame([{"exemption_id": "e1", "entity_ref": "component:default/a", "check_id": "l2b", "created_at": "2026-06-01T00:00:00+00:00", "expires_at": "2026-08-01T00:00:00+00:00", "revoked_at": "2026-06-30T00:00:00+00:00"}])
    ev = evaluate(config(THREE_LEVELS), frame([component("a")]), ci_facts(last_status=["failed"]), exemptions=exemptions, now=NOW)
    assert states(ev, "l2b")["a"] == "failed"


def test_entity_outside_check_filter_but_in_track_is_not_applicable_and_does_not_block():
    cfg = config("""
checks:
  - {id: own, name: Owner, rule: {fact: catalog.has_owner, operator: equal, value: true}}
  - {id: svc, name: Service only, filter: {spec.type: service}, rule: {fact: catalog.has_techdocs, operator: equal, value: true}}
tracks:
  - {id: t, name: T, filter: {kind: component}, levels: [{name: One, checks: [own, svc]}]}
""")
    ents = frame([component("lib", ctype="library")])
    ev = evaluate(cfg, ents, {"catalog": pd.DataFrame({"entity_ref": ["component:default/lib"], "has_owner": [True], "has_techdocs": [False]})}, now=NOW)
    assert states(ev, "svc") == {"lib": "not_applicable"}
    assert level_of(ev, "lib") == 1


def test_any_passes_when_one_branch_is_true_even_if_another_fact_is_missing():
    cfg = config("""
checks:
  - id: c
    name: C
    rule:
      any:
        - {fact: vulnerabilities.open_total, operator: equal, value: 0}
        - {fact: ci.runs_30d, operator: greaterThan, value: 5}
""")
    ents = frame([component("a"), component("b"), component("c")])
    data = {**facts("ci", refs=["a", "b"], runs_30d=[9.0, 1.0])}
    ev = evaluate(cfg, ents, data, now=NOW)
    # a: true branch wins; b: one false and one unknown branch → not reported; c: nothing → not reported
    assert states(ev, "c") == {"a": "passed", "b": "not_reported", "c": "not_reported"}


def test_all_fails_when_one_branch_is_false_even_if_another_fact_is_missing():
    cfg = config("""
checks:
  - id: c
    name: C
    rule:
      all:
        - {fact: vulnerabilities.open_total, operator: equal, value: 0}
        - {fact: ci.runs_30d, operator: greaterThan, value: 5}
""")
    ev = evaluate(cfg, frame([component("a")]), facts("ci", refs=["a"], runs_30d=[1.0]), now=NOW)
    assert states(ev, "c") == {"a": "failed"}


def test_not_inverts_known_results_and_keeps_unknown_unknown():
    cfg = config("checks:\n  - {id: c, name: C, rule: {not: {fact: ci.last_status, operator: equal, value: failed}}}\n")
    ev = evaluate(cfg, frame([component("a"), component("b"), component("c")]), facts("ci", refs=["a", "b"], last_status=["failed", "success"]), now=NOW)
    assert states(ev, "c") == {"a": "failed", "b": "passed", "c": "not_reported"}


@pytest.mark.parametrize(
    ("fact", "operator", "value", "expected"),
    [
        # values per entity: a=1, b=5, c=10 (rate facts); tags a=[java], b=[go, grpc], c=[]
        ("ci.runs_30d", "equal", 5, "FPF"),
        ("ci.runs_30d", "notEqual", 5, "PFP"),
        ("ci.runs_30d", "lessThan", 5, "PFF"),
        ("ci.runs_30d", "lessThanInclusive", 5, "PPF"),
        ("ci.runs_30d", "greaterThan", 5, "FFP"),
        ("ci.runs_30d", "greaterThanInclusive", 5, "FPP"),
        ("ci.runs_30d", "in", [1, 10], "PFP"),
        ("ci.runs_30d", "notIn", [1, 10], "FPF"),
        ("ci.last_status", "equal", "success", "PFF"),
        ("ci.last_status", "matches", "^succ", "PFF"),
        ("ci.last_status", "contains", "ail", "FPF"),
        ("ci.last_status", "in", ["failed", "cancelled"], "FPP"),
        ("catalog.tags", "contains", "grpc", "FPF"),
        ("catalog.tags", "doesNotContain", "java", "FPP"),
        ("catalog.has_owner", "equal", True, "PPF"),
        ("catalog.entity", "exists", True, "PPP"),
    ],
)
def test_json_rules_engine_operators(fact, operator, value, expected):
    text = f"checks:\n  - id: c\n    name: C\n    rule: {{fact: {fact}, operator: {operator}, value: {value!r}}}\n".replace("True", "true")
    ents = frame([component("a", tags=["java"]), component("b", tags=["go", "grpc"]), component("c", owner=None)])
    data = {
        **facts("ci", refs=["a", "b", "c"], runs_30d=[1.0, 5.0, 10.0], last_status=["success", "failed", "cancelled"]),
        "catalog": pd.DataFrame({"entity_ref": [f"component:default/{r}" for r in "abc"], "tags": [["java"], ["go", "grpc"], []], "has_owner": [True, True, False]}),
    }
    got = states(evaluate(config(text), ents, data, now=NOW), "c")
    assert "".join("P" if got[r] == "passed" else "F" for r in "abc") == expected


def test_equal_is_strict_like_javascript_triple_equals():
    ents = frame([component("a"), component("b")])
    ents.at[0, "entity"]["spec"]["replicas"] = 1
    ents.at[1, "entity"]["spec"]["replicas"] = "1"
    ev = evaluate(config("checks:\n  - {id: c, name: C, rule: {fact: catalog.entity, path: spec.replicas, operator: equal, value: 1}}\n"), ents, {}, now=NOW)
    assert states(ev, "c") == {"a": "passed", "b": "failed"}


def test_fact_value_of_the_wrong_type_is_an_error_state():
    cfg = config("checks:\n  - {id: c, name: C, rule: {fact: catalog.entity, path: spec.replicas, operator: greaterThan, value: 1}}\n")
    ents = frame([component("a"), component("b"), component("c")])
    ents.at[0, "entity"]["spec"]["replicas"] = 3
    ents.at[1, "entity"]["spec"]["replicas"] = "three"
    ev = evaluate(cfg, ents, {}, now=NOW)
    assert states(ev, "c") == {"a": "passed", "b": "error", "c": "not_reported"}


def test_path_reaches_annotation_keys_that_contain_dots():
    entity = {"metadata": {"annotations": {"backstage.io/techdocs-ref": "dir:."}}, "links": [{"url": "u0"}, {"url": "u1"}]}
    assert resolve_path(entity, "$.metadata.annotations.backstage.io/techdocs-ref") == "dir:."
    assert resolve_path(entity, "links.1.url") == "u1"
    assert resolve_path(entity, "metadata.annotations.missing") is None


# ##### FILTERS


def test_filter_semantics_case_insensitive_or_of_and_sets_and_exclude():
    cfg = config("""
checks:
  - id: c
    name: C
    filter:
      - {KIND: Component, spec.type: [SERVICE, website]}
      - {metadata.tags: Critical}
    exclude: {spec.lifecycle: experimental}
    rule: {fact: catalog.entity, operator: exists, value: true}
""")
    ents = frame([
        component("svc"),
        component("web", ctype="website"),
        component("lib", ctype="library"),
        component("tagged-lib", ctype="library", tags=["critical"]),
        component("exp", lifecycle="experimental"),
    ])
    assert set(states(evaluate(cfg, ents, {}, now=NOW), "c")) == {"svc", "web", "tagged-lib"}


def test_filter_on_annotation_key_and_exists():
    cfg = config("""
checks:
  - {id: c, name: C, filter: {metadata.annotations.github.com/project-slug: {exists: true}}, rule: {fact: catalog.entity, operator: exists, value: true}}
  - {id: d, name: D, filter: {metadata.annotations.github.com/project-slug: acme/b}, rule: {fact: catalog.entity, operator: exists, value: true}}
""")
    ents = frame([component("a"), component("b", annotations={"github.com/project-slug": "ACME/b"})])
    ev = evaluate(cfg, ents, {}, now=NOW)
    assert set(states(ev, "c")) == {"b"}
    assert set(states(ev, "d")) == {"b"}


# ##### CAMPAIGNS, HISTORY, ROLL-UPS, FIX NEXT


def org() -> OrgGraph:
    return OrgGraph.from_entities([
        {"kind": "Group", "metadata": {"name": "eng"}, "spec": {"type": "department", "children": ["team-a", "team-b"]}},
        {"kind": "Group", "metadata": {"name": "team-a"}, "spec": {"type": "team", "parent": "eng"}},
        {"kind": "Group", "metadata": {"name": "team-b"}, "spec": {"type": "team", "parent": "eng"}},
    ])


def test_history_keeps_every_evaluation_and_flags_pass_to_fail_per_owner():
    cfg = config(THREE_LEVELS)
    ents = frame([component("a"), component("b", owner="team-b")])
    first = evaluate(cfg, ents, ci_facts(refs=["a", "b"], runs_30d=[10.0, 10.0], default_branch_success_rate=[0.9, 0.9], last_status=["success", "success"], median_duration_seconds=[1.0, 1.0], last_duration_seconds=[1.0, 1.0]), now=NOW)
    second = evaluate(cfg, ents, ci_facts(refs=["a", "b"], runs_30d=[10.0, 10.0], default_branch_success_rate=[0.9, 0.5], last_status=["success", "success"], median_duration_seconds=[1.0, 1.0], last_duration_seconds=[1.0, 1.0]), now=NOW + timedelta(hours=1))
    c1 = result_changes(None, first.results, 1, NOW)
    c2 = result_changes(first.results, second.results, 2, NOW + timedelta(hours=1))
    assert len(c1) == len(first.results)  # the first evaluation is stored whole
    assert c2[["entity_ref", "check_id", "previous_state", "state"]].values.tolist() == [["component:default/b", "l2a", "passed", "failed"]]
    history = pd.concat([c1, c2], ignore_index=True)
    assert state_at(history, 1).set_index(["entity_ref", "check_id"])["state"].to_dict()[("component:default/b", "l2a")] == "passed"
    assert state_at(history, 2).set_index(["entity_ref", "check_id"])["state"].to_dict()[("component:default/b", "l2a")] == "failed"
    flagged = regressions(c2, level_changes(first.levels, second.levels, 2, NOW), second.entities)
    assert flagged[["owner", "subject_type", "subject_id", "previous", "current"]].values.tolist() == [
        ["group:default/team-b", "check", "l2a", "passed", "failed"],
        ["group:default/team-b", "track", "t", "3", "1"],
    ]
    digest = regression_digest(flagged)
    assert digest[["owner", "entities", "check_regressions", "track_regressions"]].values.tolist() == [["group:default/team-b", 1, 1, 1]]


def test_rollups_count_entities_for_their_team_and_every_ancestor_group():
    cfg = config(THREE_LEVELS)
    shop = {"apiVersion": "backstage.io/v1alpha1", "kind": "System", "metadata": {"name": "shop", "namespace": "default"}, "spec": {"owner": "team-b", "domain": "commerce"}}
    ents = frame([component("a"), component("b", owner="team-b", system="shop"), component("c", owner="team-b", system="shop"), shop])
    data = ci_facts(refs=["a", "b", "c"], runs_30d=[10.0, 10.0, 0.0], default_branch_success_rate=[0.9, 0.5, 0.9], last_status=["success"] * 3, median_duration_seconds=[1.0] * 3, last_duration_seconds=[1.0] * 3)
    ev = evaluate(cfg, ents, data, now=NOW)
    # levels: a = 3, b = 1 (l2a fails), c = 0 (l1 fails)
    summary = rollup_summary(ev.levels, ev.entities, org()).set_index(["scope_type", "scope_ref"])
    assert summary.loc[("group", "group:default/team-b"), "entities"] == 2
    assert summary.loc[("group", "group:default/team-b"), "mean_level"] == 0.5
    assert summary.loc[("group", "group:default/eng"), "entities"] == 3
    assert summary.loc[("group", "group:default/eng"), "mean_level"] == pytest.approx(4 / 3, abs=1e-4)
    assert summary.loc[("system", "system:default/shop"), "certified_share"] == 0.5
    assert summary.loc[("domain", "domain:default/commerce"), "entities"] == 2  # via the system
    assert summary.loc[("org", "*"), "top_level_share"] == pytest.approx(1 / 3, abs=1e-4)
    levels = rollup_levels(ev.levels, ev.entities, org(), track_frame(cfg))
    eng = levels[(levels["scope_ref"] == "group:default/eng")].set_index("level")["entities"].to_dict()
    assert eng == {0: 1, 1: 1, 2: 0, 3: 1}
    checks = rollup_checks(ev.results, ev.entities, org()).set_index(["scope_ref", "check_id"])
    assert checks.loc[("group:default/team-b", "l1"), ["passed", "failed"]].tolist() == [1, 1]


def test_fix_next_orders_checks_by_levels_unlocked():
    cfg = config(THREE_LEVELS)
    ents = frame([component(n) for n in ("a", "b", "c")])
    # a: only l1 fails → fixing l1 unlocks 3 levels. b: l2a and l2b fail → each is half of 2
    # levels. c: only l3 fails → fixing it unlocks 1.
    data = ci_facts(refs=["a", "b", "c"], runs_30d=[0.0, 10.0, 10.0], default_branch_success_rate=[0.9, 0.1, 0.9], last_status=["success", "failed", "success"], median_duration_seconds=[1.0] * 3, last_duration_seconds=[1.0, 1.0, 900.0])
    ev = evaluate(cfg, ents, data, now=NOW)
    ranked = fix_next(ev.fix_candidates, ev.entities, org())
    team = ranked[ranked["scope_ref"] == "group:default/team-a"]
    assert team[["check_id", "levels_unlocked", "sole_blocker_entities"]].values.tolist() == [["l1", 3.0, 1], ["l3", 1.0, 1], ["l2a", 1.0, 0], ["l2b", 1.0, 0]]
    assert team["rank"].tolist() == [1, 2, 3, 4]


def test_campaign_progress_per_team_and_org():
    cfg = config("""
checks:
  - {id: docs, name: Docs, rule: {fact: catalog.has_techdocs, operator: equal, value: true}}
campaigns:
  - {id: docs-push, name: Docs, checks: [docs], filter: {spec.type: service}, deadline: 2026-07-31}
""")
    ents = frame([component("a"), component("b", owner="team-b"), component("c", owner="team-b"), component("lib", ctype="library")])
    data = {"catalog": pd.DataFrame({"entity_ref": [f"component:default/{r}" for r in ("a", "b", "c", "lib")], "has_techdocs": [True, True, False, False]})}
    ev = evaluate(cfg, ents, data, now=NOW)
    progress = campaign_progress(ev.campaign_members, ev.entities, org(), campaign_frame(cfg), date(2026, 7, 1)).set_index("scope_ref")
    assert progress.loc["group:default/team-b", ["entities", "done", "share_done", "status"]].tolist() == [2, 1, 0.5, "open"]
    assert progress.loc["*", ["entities", "done", "days_left"]].tolist() == [3, 2, 30]
    assert progress.loc["group:default/team-a", "status"] == "done"
