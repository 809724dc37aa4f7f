"""Delivery metrics (DORA four keys, PR flow, review load) for a 200,000-entity org over two years.

Setup (not timed): the synthetic org (`SyntheticOrg`, ~122k components at 200k entities) and its
delivery events (`analytics.delivery.synthetic`, `--activity` scales the rates: the default gives
~1.3 M pull requests + ~3 M reviews (~5 M PR events), ~1 M deployments and ~50 k incidents).
Timed:

- from scratch: `daily_facts` over all events (linking every PR to the deployment that shipped
  it, blaming incidents and rollbacks; day-grain rows for the days the windows read) + open PRs +
  `delivery_metrics` (every table, every scope) + the scorecard facts and source control;
- one new day: the events of the day after are generated (not timed); then, timed:
  `daily_facts(since=day - margin)` computes the fresh day-grain rows from the link look-back's
  events (`--lookback` days, what `read_delivery_events` would hand over), `merge_facts` replaces
  those days in the cached facts, `prune_facts` drops what no window reads, and the windows are
  recomposed (`delivery_metrics`, the weekly series keeping its unchanged weeks);
- peak RSS of the whole process (setup included).

    python benchmarks/delivery_200k.py [--size N] [--days D] [--activity A] [--smoke]

Targets: from scratch <= 60 s, one new day <= 5 s, peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup(size: int, seed: int):
    from analytics.org import OrgGraph
    from catalog_pipelines.providers.synthetic import SyntheticOrg
    from dashboards.sample import entities_frame_from

    people: list[dict] = []

    def stream():  # one pass, keeping only the groups and users (the org), not 200k bodies
        for body in SyntheticOrg(size, seed=seed).iter_entities():
            if body is None:
                continue
            if body["kind"] in ("Group", "User"):
                people.append(body)
            yield body

    entities = entities_frame_from(stream(), provider="synthetic")
    org = OrgGraph.from_entities(people)
    return org, entities


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--activity", type=float, default=0.035)
    parser.add_argument("--lookback", type=int, default=120, help="days of events read for one new day's links")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="2,000 entities, 60 days")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.days, args.activity = 2000, 60, 0.5

    import pandas as pd

    from analytics.delivery.config import DeliveryConfig
    from analytics.delivery.metrics import (
        Scopes,
        daily_facts,
        delivery_metrics,
        entity_facts,
        facts_span_days,
        first_changed_day,
        merge_facts,
        open_pull_requests,
        prune_facts,
        source_control,
    )
    from analytics.delivery.synthetic import _end_of, known_at, planted_teams, synthetic_delivery_events
    from benchmarks.ingest_200k import print_figures

    t0 = time.perf_counter()
    org, entities = setup(args.size, args.seed)
    t1 = time.perf_counter()
    end = _end_of(None)
    planted = planted_teams(entities, end)
    # the history up to `end` + one more day; the new day is the last day
    events_all = synthetic_delivery_events(entities, org, days=args.days + 1, seed=args.seed, end=end + timedelta(days=1),
                                           activity=args.activity, planted=planted, pipeline_runs=False)
    t2 = time.perf_counter()
    rss_generated = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    config = DeliveryConfig()
    as_of = (end - timedelta(days=1)).date()
    day = end.date()
    counts = {k: len(v) for k, v in events_all.items()}
    production = int(events_all["deployments"]["is_production"].sum())
    # what storage would hold yesterday (history) and hand over for the new day (the link
    # look-back, by event day as `read_delivery_events` selects), one kind at a time so the
    # full frames are not held twice
    lb = pd.Timestamp(end - timedelta(days=args.lookback))
    history, recent = {}, {}
    for kind in list(events_all):
        frame = events_all.pop(kind)
        main = {"pull_requests": "created_at", "reviews": "submitted_at", "deployments": "created_at", "incidents": "started_at",
                "pipeline_runs": "started_at"}[kind]
        recent[kind] = frame[frame[main] >= lb]
        if kind == "pull_requests":  # open ones and those merged in the look-back, whatever their day
            recent[kind] = frame[(frame[main] >= lb) | (frame["merged_at"] >= lb) | frame["merged_at"].isna()]
        history[kind] = known_at({kind: frame}, end)[kind]
        del frame

    t3, c3 = time.perf_counter(), time.process_time()
    scopes = Scopes(entities, org)
    facts = daily_facts(history, config, since=as_of - timedelta(days=facts_span_days(config)))
    tables = delivery_metrics(facts, entities, org, config, as_of=as_of, open_prs=open_pull_requests(history["pull_requests"], end),
                              scopes=scopes)
    tables["entity_facts"] = entity_facts(tables)
    tables["source_control"] = source_control(history, end)
    t4, c4 = time.perf_counter(), time.process_time()
    del history

    # one new day: fresh day rows from the look-back's events, merged into the cached facts (the
    # days a late incident or rollback can still fail), windows recomposed
    margin = int(config.failure_window_hours // 24) + 1
    since = day - timedelta(days=margin)
    t5, c5 = time.perf_counter(), time.process_time()
    fresh = daily_facts(recent, config, since=since)
    t5a = time.perf_counter()
    facts2 = prune_facts(merge_facts(facts, fresh, since), day - timedelta(days=facts_span_days(config)))
    t5b = time.perf_counter()
    tables2 = delivery_metrics(facts2, entities, org, config, as_of=day, scopes=scopes,
                               open_prs=open_pull_requests(recent["pull_requests"], end + timedelta(days=1)),
                               previous=tables, since=first_changed_day(fresh, since))
    t5c = time.perf_counter()
    tables2["entity_facts"] = entity_facts(tables2)
    tables2["source_control"] = source_control(recent, end + timedelta(days=1))
    t6, c6 = time.perf_counter(), time.process_time()
    figures = {
        "entities": len(entities), "components": int((entities["kind"] == "component").sum()), "days": args.days,
        "pull_requests": counts["pull_requests"], "reviews": counts["reviews"],
        "pr_events": counts["pull_requests"] + counts["reviews"],
        "deployments": counts["deployments"], "production_deployments": production,
        "incidents": counts["incidents"], "lookback_days": args.lookback,
        "setup_org_s": round(t1 - t0, 1), "generate_events_s": round(t2 - t1, 1),
        "from_scratch_s": round(t4 - t3, 2),
        "from_scratch_cpu_s": round(c4 - c3, 2),  # CPU time: less sensitive to the other load
        "from_scratch_rows": sum(len(f) for f in tables.values()),
        "new_day_s": round(t6 - t5, 2),
        "new_day_cpu_s": round(c6 - c5, 2),
        "new_day_rows": sum(len(f) for f in tables2.values()),
        "new_day_parts_s": f"day rows {t5a - t5:.2f}, merge {t5b - t5a:.2f}, windows {t5c - t5b:.2f}, facts+source control {t6 - t5c:.2f}",
        "peak_rss_after_setup_mb": rss_generated,  # the org and the generated events (not timed)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    figures["within_budget"] = figures["from_scratch_s"] <= 60 and figures["new_day_s"] <= 5 and figures["peak_rss_mb"] <= 2048
    return print_figures(figures)


if __name__ == "__main__":
    main()
