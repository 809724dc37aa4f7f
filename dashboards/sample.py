"""Synthetic site inputs for an organisation: every table the site reads, shaped like the insight
areas' real tables (same names and columns), with made-up but plausible figures.

For the dashboards' tests (a complete site from a handful of entities in milliseconds, where the
real pipelines would take minutes) and the 200,000-entity benchmark. Not for production: the
real tables come from the insight assets. Seeded, vectorised (a 200k-entity org in seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics.org import OrgGraph
from catalog_pipelines.model.insight_tables import DELIVERY, FACTS, GRAPH, HISTORY, ORPHANS, SCORECARDS, SURVEYS, USAGE, InsightTable
from catalog_pipelines.model.insight_tables import SKILLS as SKILL_TABLES
from dashboards.inputs import SiteInputs

TRACKS = {
    "production-readiness": ("Production readiness", ["none", "Bronze", "Silver", "Gold"]),
    "security": ("Security", ["none", "Scanned", "No critical", "Clean"]),
}
CHECKS = [
    ("pr-has-owner", "Has an owner", "production-readiness", 1),
    ("pr-has-docs", "Has TechDocs", "production-readiness", 2),
    ("pr-ci-green", "Default branch builds are green", "production-readiness", 3),
    ("sec-scanned", "Scanned for vulnerabilities", "security", 1),
    ("sec-no-critical", "No open critical vulnerabilities", "security", 2),
    ("sec-sla", "Critical and high findings fixed within 14 days", "security", 3),
]
DIMENSIONS = {"satisfaction": "Satisfaction", "productivity": "Productivity", "flow": "Flow state",
              "cognitive_load": "Cognitive load", "feedback_loops": "Feedback loops", "tooling": "Tooling",
              "collaboration": "Collaboration"}
PLUGINS = ["catalog", "techdocs", "scaffolder", "search", "api-docs", "kubernetes", "cost-insights", "tech-radar"]
TEMPLATES = [("template:default/react-app", 90.0), ("template:default/spring-service", 240.0),
             ("template:default/data-pipeline", 240.0), ("template:default/kafka-topic", 45.0)]
SKILLS = ["python", "java", "go", "typescript", "react", "kubernetes", "terraform", "aws", "gcp", "postgres",
          "kafka", "spark", "security", "observability", "ml"]
K = 5  # survey anonymity threshold


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None)


def sample_inputs(org: OrgGraph, entities: pd.DataFrame, *, seed: int = 0, now: datetime | None = None,
                  waves: int = 4, usage_days: int = 35, evaluations: int = 3, delivery_days: int = 120) -> SiteInputs:
    """Site inputs for `org` and `entities` (columns ref, kind, namespace, name, type, owner, system,
    lifecycle, provider)."""
    now = now or datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    rng = np.random.default_rng(seed)
    groups = sorted(org.all_groups())
    rollup = org.rollup_frame()
    owned = entities[entities["owner"].isin(groups)]
    tables: dict[InsightTable, pd.DataFrame] = {}
    tables.update(_scorecards(rng, org, groups, rollup, owned, now, evaluations))
    tables.update(_surveys(rng, org, groups, now, waves))
    tables.update(_usage(rng, org, groups, entities, now, usage_days))
    tables.update(_health(rng, org, groups, entities, now))
    tables.update(_history(rng, groups, entities, now))
    tables.update(_skills(rng, org, groups))
    tables.update(_facts(rng, owned, now))
    if delivery_days:
        tables.update(_delivery(org, entities, now, seed, delivery_days))
    ledger = _ledger(rng, entities, now)
    return SiteInputs(org=org, entities=entities, tables=tables, generated_at=now, audit=_audit(rng, now), **ledger)


def _rolled(counts: pd.DataFrame, rollup: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Sum per-owner counts up the hierarchy: `counts[owner, *keys, *values]` → per rollup_ref."""
    joined = counts.merge(rollup, left_on="owner", right_on="group_ref")
    return joined.groupby(["rollup_ref", *keys], as_index=False)[values].sum().rename(columns={"rollup_ref": "scope_ref"})


def _scorecards(rng, org, groups, rollup, owned, now, evaluations) -> dict[InsightTable, pd.DataFrame]:
    n = len(owned)
    tracks_rows, levels_parts, checks_parts, summary_parts, history_parts = [], [], [], [], []
    for track, (name, levels) in TRACKS.items():
        for level, level_name in enumerate(levels[1:], start=1):
            for check, _, t, lv in CHECKS:
                if t == track and lv == level:
                    tracks_rows.append((track, name, level, level_name, check))
    team_skill = {g: rng.uniform(0.3, 0.95) for g in groups}
    base = owned["owner"].map(team_skill).to_numpy(dtype=float) if n else np.array([])
    passed = {check: rng.random(n) < np.clip(base + rng.normal(0, 0.15, n) - 0.1 * lv, 0.02, 0.99)
              for check, _, _, lv in CHECKS}
    for track, (_, names) in TRACKS.items():
        level = np.zeros(n, dtype=int)
        ok = np.ones(n, dtype=bool)
        for lv in range(1, len(names)):
            ok &= np.logical_and.reduce([passed[c] for c, _, t, l in CHECKS if t == track and l == lv])
            level = np.where(ok, lv, level)
        per = pd.DataFrame({"owner": owned["owner"].to_numpy(), "level": level, "one": 1, "top": level == len(names) - 1,
                            "certified": level >= 1})
        counts = per.groupby(["owner", "level"], as_index=False)["one"].sum()
        rolled = _rolled(counts, rollup, ["level"], ["one"]).rename(columns={"one": "entities"})
        full = pd.MultiIndex.from_product([rolled["scope_ref"].unique(), range(len(names))], names=["scope_ref", "level"])
        rolled = rolled.set_index(["scope_ref", "level"]).reindex(full, fill_value=0).reset_index()
        rolled["share"] = (rolled["entities"] / rolled.groupby("scope_ref")["entities"].transform("sum")).round(4)
        rolled["level_name"] = rolled["level"].map(dict(enumerate(names)))
        levels_parts.append(rolled.assign(scope_type="group", track_id=track))
        org_counts = pd.Series(level).value_counts().reindex(range(len(names)), fill_value=0)
        levels_parts.append(pd.DataFrame({"scope_type": "org", "scope_ref": "org", "track_id": track, "level": range(len(names)),
                                          "level_name": names, "entities": org_counts.to_numpy(),
                                          "share": (org_counts / max(n, 1)).round(4).to_numpy()}))
        sums = per.assign(level_sum=level).groupby("owner", as_index=False)[["one", "level_sum", "top", "certified"]].sum()
        rs = _rolled(sums, rollup, [], ["one", "level_sum", "top", "certified"])
        summary = pd.DataFrame({"scope_type": "group", "scope_ref": rs["scope_ref"], "track_id": track, "entities": rs["one"],
                                "mean_level": (rs["level_sum"] / rs["one"]).round(4), "certified_share": (rs["certified"] / rs["one"]).round(4),
                                "top_level_share": (rs["top"] / rs["one"]).round(4)})
        track_checks = [c for c, _, t, _ in CHECKS if t == track]
        rate = np.mean([passed[c] for c in track_checks], axis=0) if n else np.array([])
        pr = pd.DataFrame({"owner": owned["owner"].to_numpy(), "rate": rate}).groupby("owner", as_index=False)["rate"].sum()
        pr_rolled = _rolled(pr, rollup, [], ["rate"]).set_index("scope_ref")["rate"]
        summary["check_pass_rate"] = (summary["scope_ref"].map(pr_rolled) / summary["entities"]).round(4)
        org_row = pd.DataFrame([{"scope_type": "org", "scope_ref": "org", "track_id": track, "entities": n,
                                 "mean_level": round(float(level.mean()) if n else 0, 4),
                                 "certified_share": round(float((level >= 1).mean()) if n else 0, 4),
                                 "top_level_share": round(float((level == len(names) - 1).mean()) if n else 0, 4),
                                 "check_pass_rate": round(float(rate.mean()) if n else 0, 4)}])
        summary_parts += [summary, org_row]
        for e in range(evaluations):
            drift = (evaluations - 1 - e) * 0.02
            hist = pd.concat([summary, org_row]).assign(
                check_pass_rate=lambda f, d=drift: (f["check_pass_rate"] - d).clip(0, 1).round(4),
                certified_share=lambda f, d=drift: (f["certified_share"] - d).clip(0, 1).round(4),
                evaluation_id=e + 1, evaluated_at=_naive(now - timedelta(hours=evaluations - 1 - e)))
            history_parts.append(hist)
    for check, _, _, _ in CHECKS:
        per = pd.DataFrame({"owner": owned["owner"].to_numpy(), "passed": passed[check].astype(int), "failed": (~passed[check]).astype(int)})
        counts = per.groupby("owner", as_index=False)[["passed", "failed"]].sum()
        rolled = _rolled(counts, rollup, [], ["passed", "failed"]).assign(scope_type="group", check_id=check)
        org_row = pd.DataFrame([{"scope_ref": "org", "passed": int(passed[check].sum()), "failed": int((~passed[check]).sum()),
                                 "scope_type": "org", "check_id": check}])
        checks_parts += [rolled, org_row]
    checks = pd.concat(checks_parts, ignore_index=True)
    for state in ("warning", "not_applicable", "not_reported", "error", "exempted"):
        checks[state] = 0
    checks["applicable"] = checks["passed"] + checks["failed"]
    checks["pass_rate"] = (checks["passed"] / checks["applicable"].where(checks["applicable"] > 0)).round(4)
    summary = pd.concat(summary_parts, ignore_index=True)
    fix = checks[(checks["scope_type"] == "group") & (checks["failed"] > 0)].copy()
    level_of = {c: (t, lv) for c, _, t, lv in CHECKS}
    fix["track_id"] = fix["check_id"].map(lambda c: level_of[c][0])
    fix["level"] = fix["check_id"].map(lambda c: level_of[c][1])
    fix["entities"] = fix["failed"]
    fix["sole_blocker_entities"] = (fix["failed"] * 0.6).round().astype(int)
    fix["levels_unlocked"] = (fix["failed"] * 0.8).round(3)
    fix = fix.sort_values(["scope_ref", "levels_unlocked"], ascending=[True, False])
    fix["rank"] = fix.groupby("scope_ref").cumcount() + 1
    evaluated = [_naive(now - timedelta(hours=evaluations - 1 - e)) for e in range(evaluations)]
    evals = pd.DataFrame({"evaluation_id": range(1, evaluations + 1), "evaluated_at": evaluated, "config_digest": "sample",
                          "checks": len(CHECKS), "tracks": len(TRACKS), "entities": n, "results": n * len(CHECKS),
                          "passed": int(sum(p.sum() for p in passed.values())), "failed": int(sum((~p).sum() for p in passed.values())),
                          "warning": 0, "not_applicable": 0, "not_reported": 0, "error": 0, "exempted": 0, "regressions": 0, "errors": ""})
    done = int(passed["pr-has-docs"].sum())
    refs = owned["ref"].to_numpy(dtype=object)
    # Only the results that are not passed: what the site loads (`services.site.FAILING_STATES`).
    results = pd.DataFrame({"entity_ref": np.concatenate([refs[~passed[c]] for c, _, _, _ in CHECKS]) if n else [],
                            "check_id": np.concatenate([[c] * int((~passed[c]).sum()) for c, _, _, _ in CHECKS]) if n else [],
                            "state": "failed", "raw_state": "failed", "exempted": False})
    campaign = pd.DataFrame([{"campaign_id": "techdocs-everywhere", "scope_type": "org", "scope_ref": "org", "entities": n, "done": done,
                              "share_done": round(done / max(n, 1), 4), "deadline": "2025-12-31", "days_left": 212, "status": "open",
                              "evaluation_id": evaluations, "evaluated_at": evaluated[-1]}])
    return {
        SCORECARDS.tracks: pd.DataFrame(tracks_rows, columns=["track_id", "track_name", "level", "level_name", "check_id"]),
        SCORECARDS.checks: pd.DataFrame([{"check_id": c, "name": nm, "description": nm, "severity": "error", "passed_message": "",
                                            "failed_message": f"Not yet: {nm.lower()}.", "fix_hint": f"Fix: {nm.lower()}", "facts": "",
                                            "tracks": t, "source": "sample"}
                                           for c, nm, t, _ in CHECKS]),
        SCORECARDS.rollup_levels: pd.concat(levels_parts, ignore_index=True)[["scope_type", "scope_ref", "track_id", "level", "level_name", "entities", "share"]],
        SCORECARDS.rollup_summary: summary,
        SCORECARDS.rollup_checks: checks[["scope_type", "scope_ref", "check_id", "passed", "failed", "warning", "not_applicable",
                                            "not_reported", "error", "exempted", "applicable", "pass_rate"]],
        SCORECARDS.rollup_history: pd.concat(history_parts, ignore_index=True),
        SCORECARDS.fix_next: fix[["scope_ref", "rank", "track_id", "level", "check_id", "entities", "sole_blocker_entities", "levels_unlocked"]],
        SCORECARDS.evaluations: evals,
        SCORECARDS.results: results,
        SCORECARDS.campaign_progress: campaign,
    }


def _surveys(rng, org: OrgGraph, groups, now, waves) -> dict[InsightTable, pd.DataFrame]:
    members = {g: len(org.members(g)) for g in groups}
    depth = {g: len(org.ancestors(g)) for g in groups}
    rows = []
    wave_rows = []
    titles = [f"W{w + 1} {now.year}" for w in range(waves)]
    mood = {g: rng.normal(3.3, 0.35) for g in groups}
    total_invited = sum(len(m) for m in org.direct_members.values())
    for w in range(waves):
        wave = f"wave-{w + 1}"
        closes = (now - timedelta(days=90 * (waves - 1 - w))).date()
        respondents = {g: int(rng.binomial(members[g], 0.7)) for g in groups}
        for g in groups:
            info = org.groups.get(g, {})
            shown = respondents[g] >= K
            for dim, title in DIMENSIONS.items():
                value = float(np.clip(mood[g] + rng.normal(0, 0.3) + 0.03 * w, 1, 5)) if shown else None
                for metric, val in (("mean", value), ("top2_pct", None if value is None else float(np.clip((value - 1) * 25, 0, 100)))):
                    rows.append((wave, w, titles[w], g, info.get("display_name") or g.split("/")[-1], info.get("type"),
                                 org.parent.get(g), depth[g], dim, title, metric, respondents[g] if shown else None,
                                 members[g], val, None if val is None else val - 0.2, None if val is None else val + 0.2,
                                 not shown))
            rows.append((wave, w, titles[w], g, info.get("display_name") or g.split("/")[-1], info.get("type"), org.parent.get(g),
                         depth[g], "participation", "Participation", "response_rate", respondents[g] if shown else None, members[g],
                         round(100 * respondents[g] / members[g], 1) if shown and members[g] else None, None, None, not shown))
        got = int(total_invited * 0.7)
        wave_rows.append(("pulse", "Pulse", wave, w, titles[w], (closes - timedelta(days=18)).isoformat(), closes.isoformat(), K,
                          total_invited, got, round(100 * got / max(total_invited, 1), 1), False))
    trends = pd.DataFrame(rows, columns=["wave", "wave_order", "wave_title", "group_ref", "group_name", "group_type", "parent_ref",
                                         "depth", "dimension", "dimension_title", "metric", "respondents", "invited", "value",
                                         "ci_low", "ci_high", "suppressed"])
    trends.insert(0, "survey", "pulse")
    trends["previous_wave"] = None
    trends["previous_value"] = None
    trends["change"] = None
    trends["p_value"] = None
    trends["significant"] = None
    waves_frame = pd.DataFrame(wave_rows, columns=["survey", "survey_title", "wave", "wave_order", "wave_title", "opens", "closes",
                                                   "min_group_size", "invited", "respondents", "response_rate", "suppressed"])
    return {SURVEYS.trends: trends, SURVEYS.waves: waves_frame}


def _usage(rng, org: OrgGraph, groups, entities, now, days) -> dict[InsightTable, pd.DataFrame]:
    users = max(len(org.users), 1)
    end = (now - timedelta(days=1)).date()
    day_list = [end - timedelta(days=days - 1 - i) for i in range(days)]
    weekday = np.array([d.weekday() < 5 for d in day_list])
    dau = np.maximum(1, (users * np.where(weekday, 0.35, 0.08) * rng.uniform(0.85, 1.15, days)).astype(int))
    wau = np.array([dau[max(0, i - 6): i + 1].sum() * 0.45 for i in range(days)]).astype(int).clip(max=users)
    mau = np.array([dau[max(0, i - 27): i + 1].sum() * 0.2 for i in range(days)]).astype(int).clip(max=users)
    wau, mau = np.maximum(wau, dau), np.maximum(np.maximum(mau, wau), dau)
    events = dau * 18
    searches = (dau * 1.5).astype(int)
    daily = pd.DataFrame({"day": [d.isoformat() for d in day_list], "summarised": True, "events": events, "anonymous_events": events // 50,
                          "sessions": dau * 2, "navigations": events // 2, "searches": searches, "searches_with_count": searches,
                          "zero_result_searches": (searches * 0.1).astype(int), "searches_clicked": (searches * 0.6).astype(int),
                          "creates": dau // 20, "minutes_saved": (dau // 20) * 90.0, "dau": dau, "wau": wau, "mau": mau,
                          "stickiness": (dau / mau).round(4), "new_users": dau // 30, "returning_users": dau - dau // 30,
                          "mau_partial": False, "zero_result_rate": 0.1, "click_through_rate": 0.6})
    weeks = sorted({d - timedelta(days=d.weekday()) for d in day_list})
    weekly = pd.DataFrame({"week": [w.isoformat() for w in weeks], "active_users": [int(users * 0.6)] * len(weeks),
                           "new_users": [int(users * 0.05)] * len(weeks), "events": [int(events.sum() / len(weeks))] * len(weeks),
                           "days_covered": 7, "partial": False})
    cohort_rows = []
    for i, week in enumerate(weeks):
        size = int(users * 0.1) + 1
        for since in range(len(weeks) - i):
            active = int(size * (0.9 ** since) * rng.uniform(0.9, 1.0))
            cohort_rows.append((week.isoformat(), since, active, size, round(active / size, 4)))
    cohorts = pd.DataFrame(cohort_rows, columns=["cohort_week", "weeks_since", "active_users", "cohort_users", "retention"])
    used = entities[entities["kind"].isin(["component", "api", "system"])]
    used = used.sample(n=min(len(used), max(20, len(used) // 20)), random_state=int(rng.integers(1 << 31))) if len(used) else used
    keys = {"plugin": PLUGINS, "entity": used["ref"].tolist(), "search_term": [f"term-{i}" for i in range(40)],
            "page": ["/", "/catalog", "/docs", "/create", "/search", "/api-docs"]}
    reach_rows, top_rows = [], []
    for dimension, values in keys.items():
        for rank, key in enumerate(values):
            weight = 1.0 / (1 + rank) ** 0.8
            for d in rng.choice(days, size=min(days, 3), replace=False):
                reach_rows.append((dimension, key, day_list[int(d)].isoformat(), max(1, int(users * 0.2 * weight * rng.uniform(0.5, 1)))))
                top_rows.append((dimension, key, max(1, int(users * weight * rng.uniform(0.5, 2))), max(1, int(users * 0.1 * weight)),
                                 day_list[int(d)].isoformat()))
    reach = pd.DataFrame(reach_rows, columns=["dimension", "key", "last_seen", "users"])
    top_daily = pd.DataFrame(top_rows, columns=["dimension", "key", "events", "daily_users", "day"])
    templates = pd.DataFrame([(t, int(c), c * minutes, d.isoformat()) for d in day_list for t, minutes in TEMPLATES
                              for c in [rng.poisson(max(users, 1) / 200)] if c],
                             columns=["template", "creates", "minutes_saved", "day"])
    adoption_rows = []
    for g in groups:
        members = len(org.members(g))
        active = int(rng.binomial(members, 0.6)) if members else 0
        info = org.groups.get(g, {})
        adoption_rows.append((g, info.get("display_name"), info.get("type"), org.parent.get(g), members, active,
                              round(active / members, 4) if members else None, members < K, 28))
    adoption = pd.DataFrame(adoption_rows, columns=["group_ref", "display_name", "type", "parent_ref", "members", "active_members",
                                                    "share", "suppressed", "window_days"])
    meta = pd.DataFrame([{"as_of": end.isoformat(), "first_day": day_list[0].isoformat(), "days": days, "days_summarised": days,
                          "days_with_events": days, "retention_days": 90, "wau_days": 7, "mau_days": 28, "min_team_size": K,
                          "min_term_users": 3, "top_keys": 250, "hidden_search_terms": 0, "computed_at": now.isoformat(),
                          "catalog_users": users, "active_catalog_users": int(mau[-1]), "active_unknown_users": 0}])
    plugin_rows = []
    for p, plugin in enumerate(PLUGINS):
        total = 0
        for week in weeks:
            new = int(users * 0.3 / (1 + p) * rng.uniform(0.2, 1))
            total = min(users, total + new)
            plugin_rows.append((plugin, week.isoformat(), max(new, int(total * 0.6)), new, total))
    plugins = pd.DataFrame(plugin_rows, columns=["plugin", "week", "active_users", "new_users", "cumulative_users"])
    # as usage_insights publishes them: no count of fewer than K people
    from analytics.usage.privacy import protect_people_figures

    shown = protect_people_figures({"daily": daily, "weekly": weekly, "cohorts": cohorts, "plugin_adoption": plugins, "meta": meta}, K)
    daily, weekly, cohorts, plugins, meta = (shown[n] for n in ("daily", "weekly", "cohorts", "plugin_adoption", "meta"))
    return {USAGE.daily: daily, USAGE.weekly: weekly, USAGE.cohorts: cohorts, USAGE.reach: reach, USAGE.top_daily: top_daily,
            USAGE.templates_daily: templates, USAGE.adoption: adoption, USAGE.meta: meta, USAGE.plugin_adoption: plugins}


def _health(rng, org, groups, entities, now) -> dict[InsightTable, pd.DataFrame]:
    owned = entities[entities["owner"].notna() & entities["kind"].isin(["component", "api", "resource"])]
    pick = owned.sample(n=min(len(owned), max(3, len(owned) // 60)), random_state=int(rng.integers(1 << 31))) if len(owned) else owned
    categories = np.where(rng.random(len(pick)) < 0.4, "dangling_relation", "component_without_system")
    report = pd.DataFrame({"category": categories, "severity": np.where(categories == "dangling_relation", "error", "warning"),
                           "ref": pick["ref"].to_numpy(), "kind": pick["kind"].to_numpy(), "provider": pick["provider"].to_numpy(),
                           "owner": pick["owner"].to_numpy(), "notify_group": pick["owner"].to_numpy(),
                           "related_ref": [f"component:default/retired-{i}" if c == "dangling_relation" else None
                                           for i, c in enumerate(categories)],
                           "detail": [f"{r} {'depends on an entity that is not in the catalog' if c == 'dangling_relation' else 'is in no system'}"
                                      for r, c in zip(pick["ref"], categories)],
                           "cycle": None, "removed_at": None})
    trend = pd.DataFrame([(_naive(now - timedelta(days=d)), c, int((categories == c).sum()) + d, int((categories == c).sum()) if c == "dangling_relation" else 0)
                          for d in (2, 1, 0) for c in ("dangling_relation", "component_without_system")],
                         columns=["as_of", "category", "count", "errors"])
    removals = pd.DataFrame([("synthetic", 2, 3, now.isoformat(), now.isoformat())],
                            columns=["provider", "cycle", "removed", "first_removed_at", "last_removed_at"])
    gs = [g for g in groups if g in org.groups]
    dep_rows = []
    if len(gs) > 1:
        for g in gs:
            for t in rng.choice(gs, size=min(3, len(gs)), replace=False):
                edges = int(rng.integers(1, 40))
                dep_rows.append((g, str(t), edges, max(1, edges // 2), max(1, edges // 3), g == t))
    deps = pd.DataFrame(dep_rows, columns=["source_owner", "target_owner", "edges", "sources", "targets", "internal"])
    top = owned.head(50)
    most = pd.DataFrame({"rank": range(1, len(top) + 1), "ref": top["ref"].to_numpy(),
                         "direct_dependents": np.sort(rng.integers(1, 200, len(top)))[::-1],
                         "transitive_dependents": np.sort(rng.integers(200, 2000, len(top)))[::-1],
                         "dependent_teams": rng.integers(1, max(2, len(gs)), len(top)), "kind": top["kind"].to_numpy(),
                         "owner": top["owner"].to_numpy(), "system": top["system"].to_numpy()})
    cycles = pd.DataFrame([{"cycle_id": 1, "size": 3, "members": "a,b,c", "example": "a → b → c → a", "owners": ""}])
    return {ORPHANS.report: report, ORPHANS.trend: trend, ORPHANS.removals_by_cycle: removals, GRAPH.team_dependencies: deps,
            GRAPH.most_depended_on: most, GRAPH.cycles: cycles}


def _history(rng, groups, entities, now, cycles: int = 4) -> dict[InsightTable, pd.DataFrame]:
    """The change summary of `cycles` cycles of provider "sample": everything added in the first."""
    kinds = entities.groupby("kind").size()
    rows = []
    for cycle in range(1, cycles + 1):
        for kind, n in kinds.items():
            if cycle == 1:
                rows.append(("sample", cycle, kind, int(n), 0, 0, 0))
            else:
                rows.append(("sample", cycle, kind, int(rng.integers(0, 3)), int(rng.integers(0, 4)), int(rng.integers(0, 2)), int(rng.integers(0, 2))))
    counts = pd.DataFrame(rows, columns=["provider", "cycle", "kind", "added", "changed", "removed", "rejected"])
    owned = entities[entities["owner"].isin(groups)].head(4)
    at = _naive(now - timedelta(days=1))
    moves = pd.DataFrame({"ref": owned["ref"].to_numpy(), "kind": owned["kind"].to_numpy(), "provider": "sample",
                          "cycle": [2 + i % (cycles - 1) for i in range(len(owned))], "at": at,
                          "from_owner": owned["owner"].to_numpy(), "to_owner": [groups[(groups.index(o) + 1) % len(groups)] for o in owned["owner"]]})
    lost = moves.head(1).assign(to_owner=None, owner=moves["from_owner"].head(1), reason="owner removed from the catalog")
    return {HISTORY.changes_by_cycle: counts, HISTORY.ownership_changes: moves, HISTORY.lost_owners: lost}


def _skills(rng, org, groups) -> dict[InsightTable, pd.DataFrame]:
    users = sorted(org.users) or sorted({u for m in org.direct_members.values() for u in m})
    holders = [u for u in users if rng.random() < 0.6]
    profile_rows = [(u, u.split("/")[-1], "", s, "LANGUAGES", int(rng.integers(1, 5)), "level", "sample")
                    for u in holders for s in rng.choice(SKILLS, size=2, replace=False)]
    profiles = pd.DataFrame(profile_rows, columns=["user_ref", "display_name", "teams", "skill", "category", "level", "level_name", "source"])
    wishes = pd.DataFrame([(u, str(rng.choice(SKILLS)), 1, "sample") for u in users if rng.random() < 0.2],
                          columns=["user_ref", "skill", "current_level", "source"])
    matches = pd.DataFrame([(r.user_ref, r.skill, str(rng.choice(holders)) if holders else None, 4, 1, bool(rng.random() < 0.7), "", "")
                            for r in wishes.head(len(wishes) * 2 // 3).itertuples()],
                           columns=["learner", "skill", "mentor", "mentor_level", "learner_level", "cross_team", "learner_teams", "mentor_teams"])
    unmatched = pd.DataFrame([(r.user_ref, r.skill, "no mentor with capacity") for r in wishes.tail(len(wishes) // 3).itertuples()],
                             columns=["learner", "skill", "reason"])
    coverage_rows, risk_rows = [], []
    for g in groups:
        members = len(org.members(g))
        for s in SKILLS[:6]:
            held = int(rng.binomial(members, 0.3)) if members else 0
            coverage_rows.append((g, s, held, held // 3, 4, members, round(held / members, 3) if members else 0.0))
            if held <= 1 and members:
                risk_rows.append((g, s, "gap" if held == 0 else "single_point", "error" if held == 0 else "warning", held,
                                  None, "inferred", int(rng.integers(1, 10)), members))
    coverage = pd.DataFrame(coverage_rows, columns=["group_ref", "skill", "holders", "advanced", "max_level", "members", "share"])
    risks = pd.DataFrame(risk_rows, columns=["group_ref", "skill", "risk", "severity", "holders", "holder", "source", "entities", "members"])
    teams = [g for g in groups if g in org.groups][:3]
    gigs = pd.DataFrame([(f"gig-{i}", f"Embed for {org.groups[t].get('display_name')}", "embed", "high", t, rank, str(u), "", "java", "",
                          10 - rank, rank == 1) for i, t in enumerate(teams) for rank, u in enumerate(holders[:3], start=1)],
                        columns=["gig_id", "title", "gig_kind", "team", "priority", "rank", "user_ref", "teams", "covered", "missing",
                                 "score", "assigned"])
    return {SKILL_TABLES.profiles: profiles, SKILL_TABLES.wishes: wishes, SKILL_TABLES.mentor_matches: matches, SKILL_TABLES.unmatched_wishes: unmatched,
            SKILL_TABLES.coverage: coverage, SKILL_TABLES.knowledge_risks: risks, SKILL_TABLES.gig_matches: gigs}


def _facts(rng, owned, now) -> dict[InsightTable, pd.DataFrame]:
    """Collected facts in the long shape the site loader gives (services.facts.collected_latest_frame)."""
    comps = owned[owned["kind"].isin(["component", "resource"])]
    refs, n, stamp = comps["ref"].to_numpy(), len(comps), _naive(now)
    crit, high, med, low = rng.poisson(0.2, n), rng.poisson(0.8, n), rng.poisson(2, n), rng.poisson(3, n)
    status = rng.choice(["success", "success", "success", "failure", "cancelled"], n)
    columns = {
        ("security", "vulnerabilities_by_severity"): [{"critical": int(c), "high": int(h), "medium": int(m), "low": int(lo), "unknown": 0}
                                                       for c, h, m, lo in zip(crit, high, med, low)],
        ("github", "last_workflow_conclusion"): list(status),
        ("github", "workflow_success_rate"): rng.uniform(0.5, 1.0, n).round(3).tolist(),
        ("github", "default_branch_protected"): (rng.random(n) < 0.7).tolist(),
        ("github", "open_pull_requests"): rng.poisson(2, n).tolist(),
        ("jira", "open_issues"): rng.poisson(3, n).tolist(),
        ("jira", "oldest_open_issue_days"): rng.integers(0, 300, n).tolist(),
        ("pagerduty", "open_incidents"): rng.poisson(0.1, n).tolist(),
        ("pagerduty", "incidents"): rng.poisson(0.3, n).tolist(),
    }
    rows = [(collector, ref, stamp, fact, value) for (collector, fact), values in columns.items() for ref, value in zip(refs, values)]
    return {FACTS.collected_latest: pd.DataFrame.from_records(rows, columns=["collector", "entity_ref", "observed_at", "fact", "value"])}


def _delivery(org, entities, now, seed, days) -> dict[InsightTable, pd.DataFrame]:
    """The delivery tables computed by the real metrics from the synthetic generator's events
    (analytics/delivery): a big org gets proportionally fewer events per entity."""
    from analytics.delivery.config import DeliveryConfig
    from analytics.delivery.metrics import compute_tables
    from analytics.delivery.synthetic import synthetic_delivery_events

    components = int((entities["kind"] == "component").sum())
    activity = 1.0 if components <= 2000 else max(0.02, 2000 / components)
    # repositories named after their entity only (no group name in a slug: the restricted-site
    # tests look for leaked group names in every page)
    named = entities.assign(repository="code/" + entities["name"].astype(str), source="github")
    events = synthetic_delivery_events(named, org, days=days, seed=seed, end=now, activity=activity, pipeline_runs=False)
    tables = compute_tables(events, entities, org, DeliveryConfig(), as_of=(now - timedelta(days=1)).date(), now=now)
    from dashboards.inputs import TABLES

    return {DELIVERY.get(name): frame for name, frame in tables.items() if DELIVERY.get(name) in TABLES}


def _ledger(rng, entities, now) -> dict[str, Any]:
    providers = sorted(entities["provider"].dropna().unique()) or ["synthetic"]
    rows, marks, rejections, removals = [], [], [], []
    ident = 0
    for provider in providers:
        size = int((entities["provider"] == provider).sum())
        for cycle in (1, 2, 3):
            ident += 1
            start = _naive(now - timedelta(hours=6 * (4 - cycle)))
            completed = start + timedelta(minutes=int(rng.integers(2, 30)))
            failed = cycle == 2 and provider == providers[0]
            removed = 0 if cycle == 1 else int(rng.integers(0, 5))
            rows.append((ident, provider, cycle, "resting" if cycle == 3 else "complete", "rest", completed + timedelta(hours=1),
                         1 if failed else 0, "ConnectionError: source timed out" if failed else None, start, completed,
                         None if cycle == 3 else completed + timedelta(hours=1), size, removed, "applied"))
            chunks = max(1, size // 1000)
            for seq in range(chunks):
                marks.append((ident, seq, min(1000, size), 1000 if cycle == 1 else 0, int(rng.integers(0, 20)) if cycle > 1 else 0,
                              0 if cycle == 1 else 980, int(rng.integers(0, 3)), int(rng.integers(200, 2500)),
                              start + timedelta(seconds=5 * seq)))
            for _ in range(removed):
                removals.append((f"component:default/gone-{provider}-{cycle}-{_}", "component", provider, cycle, completed))
        rejections += [(provider, ident, "name", "metadata.name"), (provider, ident, "owner", "spec.owner")]
    return {
        "ingestions": pd.DataFrame(rows, columns=["id", "provider", "cycle", "status", "next_action", "next_action_at", "attempts",
                                                  "last_error", "created_at", "ingestion_completed_at", "rest_completed_at",
                                                  "entities_seen", "removed", "sweep_outcome"]),
        "marks": pd.DataFrame(marks, columns=["ingestion_id", "sequence", "entity_count", "added", "changed", "unchanged", "rejected",
                                              "duration_ms", "created_at"]),
        "rejections": pd.DataFrame(rejections, columns=["provider", "ingestion_id", "rule", "field"]),
        "removals": pd.DataFrame(removals, columns=["ref", "kind", "provider", "cycle", "removed_at"]),
    }


def _audit(rng, now) -> pd.DataFrame:
    rows = []
    for i in range(12):
        at = _naive(now - timedelta(hours=7 * i))
        if i % 3 == 0:
            rows.append((at, "user:default/admin", "scorecard.exemption.grant", "component:default/sample#pr-has-docs", "success",
                         {"justification": "migrating docs", "channel": "cli"}))
        elif i % 3 == 1:
            rows.append((at, "user:default/admin", "ingestion.pause", "ingestion-provider:synthetic", "success", {"channel": "http"}))
        else:
            rows.append((at, "user:default/someone", "ingestion.reset", "ingestion-provider:synthetic", "denied",
                         {"channel": "cli", "permission": "catalog.ingestion.manage"}))
    return pd.DataFrame(rows, columns=["at", "actor", "action", "target", "outcome", "details"])


def entities_frame_from(entities: list[dict[str, Any]], provider: str = "sample") -> pd.DataFrame:
    """The catalog's entities frame (storage.frames.entities_frame without bodies) from entity dicts."""
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    def ref_of(value: Any, namespace: str, kind: str) -> str | None:
        if not value:
            return None
        try:
            return parse_entity_ref(value, default_kind=kind, default_namespace=namespace).canonical()
        except EntityRefError:
            return None

    records = []
    for e in entities:
        meta, spec = e.get("metadata") or {}, e.get("spec") or {}
        ns = meta.get("namespace") or "default"
        kind = str(e["kind"]).lower()
        records.append((f"{kind}:{ns}/{meta['name']}".lower(), kind, ns, meta["name"], spec.get("type"),
                        ref_of(spec.get("owner"), ns, "group"), ref_of(spec.get("system"), ns, "system"), spec.get("lifecycle"), provider))
    return pd.DataFrame.from_records(records, columns=["ref", "kind", "namespace", "name", "type", "owner", "system", "lifecycle", "provider"])


def example_entities() -> list[dict[str, Any]]:
    """A small organisation for tests and the docs: acme → platform (alpha, zulu) and product
    (bravo); six people in alpha and zulu, three in bravo (under the survey threshold), a platform
    lead who is a direct member of platform, and a few components and a system per team."""

    def group(name: str, kind: str, title: str, parent: str | None = None, children: list[str] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": kind, "profile": {"displayName": title}, "children": children or []}
        if parent:
            spec["parent"] = parent
        return {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": name}, "spec": spec}

    def user(name: str, team: str) -> dict[str, Any]:
        return {"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": name},
                "spec": {"profile": {"displayName": name.title()}, "memberOf": [team]}}

    def component(name: str, owner: str, system: str, kind: str = "service", lifecycle: str = "production") -> dict[str, Any]:
        return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
                "spec": {"type": kind, "lifecycle": lifecycle, "owner": owner, "system": system}}

    def system(name: str, owner: str) -> dict[str, Any]:
        return {"apiVersion": "backstage.io/v1alpha1", "kind": "System", "metadata": {"name": name}, "spec": {"owner": owner}}

    out = [
        group("acme", "organization", "Acme", children=["platform", "product"]),
        group("platform", "department", "Platform", "acme", ["alpha", "zulu"]),
        group("product", "department", "Product", "acme", ["bravo"]),
        group("alpha", "team", "Alpha Team", "platform"),
        group("zulu", "team", "Zulu Sentinel Squad", "platform"),
        group("bravo", "team", "Bravo Team", "product"),
        user("paula", "platform"),
    ]
    out += [user(f"{n}", "alpha") for n in ("dana", "erin", "farid", "gita", "hugo", "ines")]
    out += [user(f"{n}", "zulu") for n in ("quinn", "rosa", "sami", "tariq", "uma", "vera")]
    out += [user(f"{n}", "bravo") for n in ("wim", "xena", "yann")]
    out += [system("alpha-system", "alpha"), system("zulu-system", "zulu"), system("bravo-system", "bravo"),
            component("alpha-api", "alpha", "alpha-system"), component("alpha-web", "alpha", "alpha-system", "website"),
            component("alpha-jobs", "alpha", "alpha-system", lifecycle="experimental"),
            component("zulu-ledger", "zulu", "zulu-system"), component("zulu-vault", "zulu", "zulu-system", "library"),
            component("bravo-shop", "bravo", "bravo-system", "website"), component("platform-gateway", "platform", "alpha-system")]
    return out


__all__ = ["entities_frame_from", "example_entities", "sample_inputs"]
