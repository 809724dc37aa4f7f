"""Delivery event storage at scale: load a two-year history of pull requests, reviews and
deployments (the synthetic org's, `analytics.delivery.synthetic`), then time the readers the
delivery metrics use: the whole pull request table (`read_events`, every column), the metrics'
columns only, one day, a 120-day look-back; closing one day (`services.delivery.close_day`).

    python benchmarks/delivery_events_store.py [--components N] [--days D] [--activity A] [--postgres] [--smoke]

The load (COPY on PostgreSQL, `storage.delivery_events.load_frame`) is timed too but is not the
collectors' path (they upsert small batches). Peak RSS is the whole process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

END = datetime(2026, 11, 30, tzinfo=timezone.utc)
METRIC_COLUMNS = ["entity_ref", "created_at", "first_review_at", "approved_at", "merged_at", "closed_at", "merge_commit_sha"]


def entities(components: int):
    import pandas as pd

    teams = max(1, components // 25)
    return pd.DataFrame({"ref": [f"component:default/svc-{n:06d}" for n in range(components)], "kind": "component",
                         "name": [f"svc-{n:06d}" for n in range(components)],
                         "owner": [f"group:default/team-{(n * 7919) % teams:04d}" for n in range(components)]})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--components", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--activity", type=float, default=0.04)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL: CATALOG_TEST_POSTGRES_URL")
    parser.add_argument("--smoke", action="store_true", help="300 components, 30 days")
    args = parser.parse_args(argv)
    if args.smoke:
        args.components, args.days, args.activity = 300, 30, 0.5

    from analytics.delivery.synthetic import synthetic_delivery_events
    from catalog_pipelines.model import delivery_events as ev
    from catalog_pipelines.services.delivery import close_day
    from catalog_pipelines.storage.db import ensure_schema, get_engine
    from catalog_pipelines.storage.delivery_events import load_frame, read_events
    from ingest_200k import print_figures

    drop, folder = None, None
    if args.postgres:
        from ingest_200k import fresh_postgres_url

        url, drop = fresh_postgres_url(os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    else:
        folder = tempfile.mkdtemp(prefix="delivery-store-")
        url = f"sqlite:///{folder}/catalog.db"
    try:
        engine = get_engine(url)
        ensure_schema(engine)
        t0 = time.perf_counter()
        frames = synthetic_delivery_events(entities(args.components), days=args.days, seed=7, end=END,
                                           activity=args.activity, pipeline_runs=False)
        t1 = time.perf_counter()
        loaded = {kind: load_frame(engine, kind, frames[kind], END) for kind in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS)}
        del frames
        t2 = time.perf_counter()
        everything = read_events(engine, ev.PULL_REQUESTS)
        t3 = time.perf_counter()
        rows_all = len(everything)
        del everything
        some = read_events(engine, ev.PULL_REQUESTS, columns=METRIC_COLUMNS)
        t4 = time.perf_counter()
        del some
        day = (END - timedelta(days=2)).date()
        one_day = {k: len(read_events(engine, k, day, day)) for k in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS)}
        t5 = time.perf_counter()
        look_back = sum(len(read_events(engine, k, day - timedelta(days=120), day)) for k in (ev.PULL_REQUESTS, ev.DEPLOYMENTS))
        t6 = time.perf_counter()
        closed = close_day(engine, day)
        t7 = time.perf_counter()
        figures = {
            "backend": "PostgreSQL" if args.postgres else "SQLite", "components": args.components, "days": args.days,
            **{f"rows_{k}": n for k, n in loaded.items()},
            "generate_s": round(t1 - t0, 1), "load_s": round(t2 - t1, 1),
            "read_all_pull_requests_s": round(t3 - t2, 2), "read_all_pull_requests_rows": rows_all,
            "read_metric_columns_s": round(t4 - t3, 2),
            "read_one_day_s": round(t5 - t4, 3), "one_day_rows": sum(one_day.values()),
            "read_120_days_s": round(t6 - t5, 2), "read_120_days_rows": look_back,
            "close_day_s": round(t7 - t6, 3), "close_day_events": sum(closed["events"].values()),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        engine.dispose()
    finally:
        if drop is not None:
            drop()
        if folder is not None:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return print_figures(figures)


if __name__ == "__main__":
    main()
