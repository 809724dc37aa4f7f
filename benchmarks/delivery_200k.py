"""Delivery metrics (DORA four keys, PR flow, review load) for a 200,000-entity org over two years,
through the product's door: `services.delivery.compute_delivery_metrics` on a catalog database.

Setup (not timed): the synthetic org ingested into the catalog (SQLite by default, a throwaway
PostgreSQL database with `--postgres`), its delivery events generated (`analytics.delivery.synthetic`,
`--activity` scales the rates: the default gives ~1.5 M pull requests + ~3.5 M reviews (~5 M PR
events), ~1.7 M deployments and ~70 k incidents over two years) and the events a from-scratch
run reads (the windows' 92 days, the 120-day link look-back before them, every open pull request)
loaded into the event tables as the collectors would have left them at the end of the as-of day;
on PostgreSQL then `VACUUM (ANALYZE)`, as autovacuum would have by the next daily run (not timed).

Timed, in a child process (so its peak RSS is the service's, not the generator's):
- **from scratch**: `compute_delivery_metrics(engine, as_of=day, full=True)`: read the events,
  link every PR to the deployment that shipped it, blame incidents and rollbacks, day-grain facts,
  every table of every scope, published with the facts kept for the next day (one transaction);
- the next day's events are upserted as the collectors would (not timed: ~11 k rows, the
  collectors' work); then **one new day**: `compute_delivery_metrics(engine, as_of=day + 1)`, which
  finds what the last run kept (facts, source control, digests, the catalog's scopes) and
  recomputes incrementally: the days since the last run, linked through the deploying
  repositories' look-back; what changed is rewritten (the weekly series' changed weeks, the keys
  whose rows changed), the rest kept. Both runs print where their time went (`timings`).

    python benchmarks/delivery_200k.py [--size N] [--days D] [--activity A] [--postgres] [--smoke]

Targets: from scratch <= 60 s, one new day <= 5 s, peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ADMIN_URL = os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _changed_on(frame, kind: str, start, end):
    """Rows with any of the kind's times in (start, end]: what a collector reads again that day."""
    from catalog_pipelines.model.delivery_events import TIME_COLUMNS

    mask = None
    for column in TIME_COLUMNS[kind]:
        hit = (frame[column] > start) & (frame[column] <= end)
        mask = hit if mask is None else mask | hit
    return frame[mask.fillna(False).to_numpy()]


def setup(url: str, args) -> dict:
    """Catalog, events, and the from-scratch run's events loaded; returns what the timed child needs."""
    import pandas as pd

    from analytics.delivery.config import DeliveryConfig
    from analytics.delivery.metrics import facts_span_days
    from analytics.delivery.synthetic import known_at, planted_teams, synthetic_delivery_events
    from benchmarks.dashboards import seed_catalog
    from catalog_pipelines.model import delivery_events as ev
    from catalog_pipelines.storage import delivery_events as store

    t0 = time.perf_counter()
    engine, entities, org, _ = seed_catalog(url, args.size, args.seed)
    entities = entities.drop(columns=["entity"])
    t1 = time.perf_counter()
    day = date(2025, 6, 1)
    as_of_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)  # the end of the as-of day
    new_end = as_of_end + timedelta(days=1)
    events_all = synthetic_delivery_events(entities, org, days=args.days + 1, seed=args.seed, end=new_end, activity=args.activity,
                                           planted=planted_teams(entities, new_end), pipeline_runs=False)
    t2 = time.perf_counter()
    counts = {k: len(v) for k, v in events_all.items()}
    production = int(events_all[ev.DEPLOYMENTS]["is_production"].sum())
    config = DeliveryConfig()
    first = pd.Timestamp(day - timedelta(days=facts_span_days(config) + config.link_lookback_days + 1), tz="UTC")
    loaded, new_rows = 0, 0
    new_day: dict[str, list[dict]] = {}
    for kind in list(events_all):
        frame = events_all.pop(kind)
        seen = known_at({kind: frame}, as_of_end)[kind]
        main = ev.TIME_COLUMNS[kind][0]
        keep = seen[main] >= first
        if kind == ev.PULL_REQUESTS:  # open at the end of the day, whatever their age, and those ended in the range
            keep = keep | (seen["merged_at"] >= first) | (seen["closed_at"] >= first) | (seen["merged_at"].isna() & seen["closed_at"].isna())
        loaded += store.load_frame(engine, kind, seen[keep.fillna(False).to_numpy()], as_of_end)
        later = _changed_on(known_at({kind: frame}, new_end)[kind], kind, as_of_end, new_end)
        later = later.assign(event_key=store.natural_keys(kind, later).to_numpy())
        new_day[kind] = later.astype(object).where(later.notna(), None).to_dict("records")
        new_rows += len(later)
        del frame, seen
    t3 = time.perf_counter()
    if engine.dialect.name == "postgresql":
        # the state a daily run meets: autovacuum has caught up with the collectors' load (right
        # after bulk-loading ~2 M rows it would vacuum and analyze them during the timed runs)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    t4 = time.perf_counter()
    rows_file = Path(tempfile.mkdtemp(prefix="cp-delivery-bench-")) / "new_day.json"
    rows_file.write_text(json.dumps(new_day, default=str))
    return {"entities": len(entities), "components": int((entities["kind"] == "component").sum()), "days": args.days,
            "pull_requests": counts[ev.PULL_REQUESTS], "reviews": counts[ev.REVIEWS],
            "pr_events": counts[ev.PULL_REQUESTS] + counts[ev.REVIEWS], "deployments": counts[ev.DEPLOYMENTS],
            "production_deployments": production, "incidents": counts[ev.INCIDENTS],
            "event_rows_stored": loaded, "new_day_event_rows": new_rows,
            "setup_catalog_s": round(t1 - t0, 1), "generate_events_s": round(t2 - t1, 1), "load_events_s": round(t3 - t2, 1),
            "vacuum_analyze_s": round(t4 - t3, 1),
            "peak_rss_setup_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "_rows_file": str(rows_file), "_day": day.isoformat()}


def timed(url: str, rows_file: str, day: str) -> dict:
    """The child: from scratch, the new day's events upserted, one new day. Every figure through the service."""
    from catalog_pipelines.services.delivery import compute_delivery_metrics
    from catalog_pipelines.storage import delivery_events as store
    from catalog_pipelines.storage.db import get_engine

    engine = get_engine(url)
    as_of = date.fromisoformat(day)
    t0, c0 = time.perf_counter(), time.process_time()
    scratch = compute_delivery_metrics(engine, as_of=as_of, full=True)
    t1, c1 = time.perf_counter(), time.process_time()
    for kind, rows in json.loads(Path(rows_file).read_text()).items():
        for row in rows:
            for column, value in row.items():
                if isinstance(value, str) and column.endswith("_at"):
                    row[column] = datetime.fromisoformat(value)
        store.write_events(engine, kind, rows, datetime.now(UTC))
    t2, c2 = time.perf_counter(), time.process_time()
    new = compute_delivery_metrics(engine, as_of=as_of + timedelta(days=1))
    t3, c3 = time.perf_counter(), time.process_time()
    return {"from_scratch_s": round(t1 - t0, 2), "from_scratch_cpu_s": round(c1 - c0, 2),
            "from_scratch_parts_s": scratch["timings"], "from_scratch_rows": sum(scratch["rows"].values()),
            "upsert_new_day_events_s": round(t2 - t1, 2),
            "new_day_mode": new["mode"], "new_day_since": str(new["since"]),
            "new_day_s": round(t3 - t2, 2), "new_day_cpu_s": round(c3 - c2, 2), "new_day_parts_s": new["timings"],
            "new_day_rows_written": sum(new["rows"].values()),
            "peak_rss_service_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--activity", type=float, default=0.035)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL database (CATALOG_TEST_POSTGRES_URL's server)")
    parser.add_argument("--smoke", action="store_true", help="2,000 entities, 60 days")
    parser.add_argument("--timed", nargs=3, metavar=("URL", "ROWS", "DAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.timed:
        print(json.dumps(timed(*args.timed)))
        return {}
    if args.smoke:
        args.size, args.days, args.activity = 2000, 60, 0.5
    from benchmarks.ingest_200k import fresh_postgres_url, print_figures

    work = Path(tempfile.mkdtemp(prefix="cp-delivery-bench-"))
    os.environ["CATALOG_PIPELINES_DATA_DIR"] = str(work)
    drop = None
    if args.postgres:
        url, drop = fresh_postgres_url(ADMIN_URL, "cp_delivery")
    else:
        url = f"sqlite:///{work / 'catalog.db'}"
    try:
        figures = {"backend": "postgresql" if args.postgres else "sqlite", **setup(url, args)}
        from catalog_pipelines.storage.db import dispose_engines

        dispose_engines()
        result = subprocess.run([sys.executable, __file__, "--timed", url, figures.pop("_rows_file"), figures.pop("_day")],
                                check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        figures.update(json.loads(result.stdout.strip().splitlines()[-1]))
    finally:
        if drop:
            drop()
    figures["within_budget"] = (figures["from_scratch_s"] <= 60 and figures["new_day_s"] <= 5
                                and figures["peak_rss_service_mb"] <= 2048)
    return print_figures(figures)


if __name__ == "__main__":
    main()
