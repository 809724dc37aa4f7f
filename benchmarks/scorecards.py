"""Scorecards at scale: 200,000 entities × 25 checks, vectorised over entities.

    .venv/bin/python benchmarks/scorecards.py                 # the issue's size
    .venv/bin/python benchmarks/scorecards.py --size 20000
    .venv/bin/python benchmarks/scorecards.py --store         # also write the tables to SQLite

The catalog is `SyntheticOrg(size, seed)` as the catalog's `entities_frame()` returns it; the
collected facts (security, coverage, tests, github, jira, pagerduty: the shapes the shipped
collectors emit, docs/facts.md) are drawn per component as `services.facts.load_latest_facts`
returns them (collecting them is benchmarks/facts_200k.py). The checks are the shipped `config/scorecards` (23
checks in two tracks, plus campaigns) and two more benchmark checks, 25 in all, including a path
into the entity body, a regular expression, `any`/`all`/`not` and a list `contains`. Building the
catalog is not timed. Timed:

- **facts**: catalog facts from the entity bodies; the collected facts' frames;
- **evaluate**: filters, rules, states, exemptions, levels, fix candidates, campaign members
  (the issue's budget: ≤ 15 s on 2 cores);
- **history and reports**: the change log against the previous evaluation, regressions, roll-ups
  up the group hierarchy, per system and domain, campaign progress, fix next;
- **store** (`--store`): writing one evaluation's tables to SQLite in one transaction.

Prints a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

EXTRA_CHECKS = """
checks:
  - id: bench-tagged-platform
    name: Tagged for the platform or public
    rule:
      any:
        - {fact: catalog.tags, operator: contains, value: platform}
        - {fact: catalog.tags, operator: contains, value: public}
  - id: bench-kube-id
    name: Kubernetes id matches the name
    filter: {kind: component, spec.type: service}
    rule:
      all:
        - {fact: catalog.entity, path: metadata.annotations.backstage.io/kubernetes-id, operator: matches, value: "^[a-z0-9-]+$"}
        - not: {fact: catalog.lifecycle, operator: equal, value: deprecated}
"""


def entities_frame(size: int, seed: int) -> pd.DataFrame:
    from catalog_pipelines.model.refs import entity_ref_of
    from catalog_pipelines.providers.synthetic import SyntheticOrg
    from catalog_pipelines.storage.frames import ENTITY_COLUMNS, _owner_ref

    rows = []
    for body in SyntheticOrg(size, seed=seed).iter_entities():
        if body is None:
            continue
        meta, spec = body["metadata"], body.get("spec") or {}
        ns = meta.get("namespace", "default")
        rows.append((entity_ref_of(body), body["kind"].lower(), ns, meta["name"], spec.get("type"), _owner_ref(spec.get("owner"), ns, "group"), _owner_ref(spec.get("system"), ns, "system"), spec.get("lifecycle"), "synthetic", body))
    return pd.DataFrame.from_records(rows, columns=ENTITY_COLUMNS)


def collected_facts(ents: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """One row per component and source, as `load_latest_facts` returns the fact store (some
    components left out per source: not every repository has every tool)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    refs = ents.loc[ents["kind"] == "component", "ref"].to_numpy()
    n = len(refs)

    def some(share: float) -> np.ndarray:
        return rng.random(n) < share

    crit, high, med, low = rng.poisson(0.2, n), rng.poisson(0.8, n), rng.poisson(2, n), rng.poisson(3, n)
    out = {
        "security": pd.DataFrame({"entity_ref": refs, "vulnerabilities_by_severity": [{"critical": int(a), "high": int(b), "medium": int(c), "low": int(d), "unknown": 0} for a, b, c, d in zip(crit, high, med, low)],
                                  "vulnerabilities_total": crit + high + med + low, "results_by_level": [{"error": int(e), "warning": 2, "note": 1, "none": 0} for e in rng.poisson(0.3, n)]})[some(0.9)],
        "coverage": pd.DataFrame({"entity_ref": refs, "line_coverage_pct": rng.uniform(30, 98, n)})[some(0.85)],
        "tests": pd.DataFrame({"entity_ref": refs, "failures": rng.poisson(0.2, n), "errors": rng.poisson(0.05, n)})[some(0.9)],
        "github": pd.DataFrame({"entity_ref": refs, "workflow_success_rate": rng.uniform(0.5, 1.0, n), "median_workflow_duration_seconds": rng.uniform(60, 900, n),
                                "dependabot_alerts_open": [{"critical": int(c), "high": 1, "medium": 0, "low": 0} for c in rng.poisson(0.1, n)]})[some(0.85)],
        "pagerduty": pd.DataFrame({"entity_ref": refs, "has_oncall": some(0.8), "oncall_responders": rng.integers(1, 5, n), "has_escalation_policy": some(0.8), "open_incidents": rng.poisson(0.1, n)})[some(0.6)],
        "jira": pd.DataFrame({"entity_ref": refs, "oldest_open_issue_days": rng.uniform(0, 120, n)})[some(0.75)],
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


def timed(label: str, results: list, fn, *args, **kwargs):
    # Wall-clock and CPU time: on a shared machine the CPU time is the steadier figure.
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    results.append((label, time.perf_counter() - start, time.process_time() - cpu))
    print(f"  {label}: {results[-1][1]:.2f} s (cpu {results[-1][2]:.2f} s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--store", action="store_true", help="also write one evaluation to SQLite")
    args = parser.parse_args()

    from analytics.facts.collect import catalog_facts
    from analytics.org import OrgGraph
    from analytics.scorecards.evaluate import campaign_frame, evaluate, track_frame
    from analytics.scorecards.config import load_config_texts
    from analytics.scorecards.reports import campaign_progress, fix_next, level_changes, regressions, result_changes, rollup_checks, rollup_levels, rollup_summary
    from catalog_pipelines.services.facts import fact_catalog

    root = Path(__file__).resolve().parent.parent
    files = [(p.name, p.read_text()) for p in sorted((root / "config" / "scorecards").glob("*.yaml"))]
    config = load_config_texts([*files, ("benchmark.yaml", EXTRA_CHECKS)], facts=fact_catalog(root / "config" / "collectors.yaml"))
    print(f"{args.size:,} entities, {len(config.checks)} checks, {len(config.tracks)} tracks, {len(config.campaigns)} campaigns; building the catalog…", flush=True)
    t0 = time.perf_counter()
    ents = entities_frame(args.size, args.seed)
    org = OrgGraph.from_entities(b for b, k in zip(ents["entity"], ents["kind"], strict=True) if k in ("group", "user"))
    print(f"  (catalog built in {time.perf_counter() - t0:.1f} s, not timed: {len(ents):,} entities, {(ents['kind'] == 'component').sum():,} components)", flush=True)

    results: list[tuple[str, float]] = []
    now = datetime(2026, 7, 1, 6, tzinfo=timezone.utc)
    facts = {"catalog": timed("catalog facts (from entity bodies)", results, catalog_facts, ents)}
    facts.update(timed("collected facts (6 sources, per component)", results, collected_facts, ents, args.seed))

    previous = evaluate(config, ents, facts, now=now - timedelta(hours=1))
    # The next hour: one team's CI turns red, so the diff and regressions have work to do.
    ci = facts["github"].copy()
    ci.loc[ci.index[: len(ci) // 20], "workflow_success_rate"] = 0.1
    facts["github"] = ci
    exemptions = pd.DataFrame({"exemption_id": ["e1"], "entity_ref": [ents["ref"].iat[-1]], "check_id": ["pr-ci-green"], "created_at": ["2026-06-01T00:00:00+00:00"], "expires_at": ["2026-12-01T00:00:00+00:00"], "revoked_at": [None]})
    ev = timed(f"evaluate {len(config.checks)} checks", results, evaluate, config, ents, facts, exemptions=exemptions, now=now)
    evaluate_seconds, evaluate_cpu = results[-1][1], results[-1][2]
    changes = timed("change log vs previous evaluation", results, result_changes, previous.results, ev.results, 2, now)
    lchanges = level_changes(previous.levels, ev.levels, 2, now)
    timed("regressions per owner", results, regressions, changes, lchanges, ev.entities)
    timed("roll-ups (levels, summary, checks)", results, lambda: (rollup_levels(ev.levels, ev.entities, org, track_frame(config)), rollup_summary(ev.levels, ev.entities, org), rollup_checks(ev.results, ev.entities, org)))
    timed("campaign progress + fix next", results, lambda: (campaign_progress(ev.campaign_members, ev.entities, org, campaign_frame(config), now.date()), fix_next(ev.fix_candidates, ev.entities, org)))

    if args.store:
        from catalog_pipelines.model.insight_tables import SCORECARDS
        from catalog_pipelines.storage.scorecards import write_tables
        from catalog_pipelines.storage.db import create_catalog_engine

        with tempfile.TemporaryDirectory() as tmp:
            engine = create_catalog_engine(f"sqlite:///{tmp}/bench.db")
            timed(f"store results ({len(ev.results):,} rows) + levels + change log in SQLite, one transaction", results, write_tables, engine, {SCORECARDS.results: (ev.results, False), SCORECARDS.levels: (ev.levels, False), SCORECARDS.result_changes: (changes, True)})
            engine.dispose()

    states = ev.results["state"].value_counts().to_dict()
    print()
    print(f"Scorecards, {len(ents):,} entities × {len(config.checks)} checks ({len(ev.results):,} results), {os.cpu_count()} cores, Python {platform.python_version()}, pandas {pd.__version__}")
    print()
    print("| stage | wall s | cpu s |")
    print("| --- | ---: | ---: |")
    for label, seconds, cpu in results:
        print(f"| {label} | {seconds:.2f} | {cpu:.2f} |")
    print()
    print(f"states: {', '.join(f'{k} {v:,}' for k, v in states.items())}; changes {len(changes):,}")
    budget = 15.0
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")
    print(f"evaluate: {evaluate_seconds:.2f} s wall, {evaluate_cpu:.2f} s cpu (budget {budget:.0f} s): {'OK' if evaluate_seconds <= budget else 'OVER BUDGET'}")
    if evaluate_seconds > budget:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
