"""Catalog history at 200,000 entities: storage, queries, and what writing it costs (A/B).

Cycles run through the real ingestion path without Dagster (`begin_cycle` → `run_chunk` per chunk
→ `run_sweep`), on the synthetic provider: cycle 1 adds everything, cycle 2 is unchanged, then
each further cycle is the next generation of the synthetic org with `--churn` of its entities
mutated (60 % changed, 20 % removed, 20 % renamed = removed + added).

Prints:
- history on: time and process CPU of cycle 1 (everything new), cycle 2 (unchanged), the mean of
  the churn cycles; history off (a second, fresh catalog): cycles 1 and 2, for the A/B;
- storage: the history table (with indexes) against the current catalog (entities + relations,
  with indexes);
- `catalog diff` (services.history.diff) between cycle 2 and the last cycle and between the last
  two; `describe --as-of` (services.history.describe_as_of) for random entities and cycles.

    python benchmarks/history_200k.py [--size N] [--cycles N] [--churn F] [--postgres] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_cycle(store, ledger, options, size: int, seed: int, generation: int, churn: float) -> tuple[float, float, dict]:
    from catalog_pipelines.ingestion.chunks import run_chunk
    from catalog_pipelines.ingestion.cycle import begin_cycle, run_sweep
    from catalog_pipelines.providers.synthetic import SyntheticOrgProvider

    provider = SyntheticOrgProvider("bench", size, seed=seed, page_size=1000, generation=generation,
                                    change_fraction=0.6 * churn, remove_fraction=0.2 * churn, rename_fraction=0.2 * churn)
    t0, c0 = time.perf_counter(), time.process_time()
    pos = begin_cycle(ledger, "bench")
    counts = {"added": 0, "changed": 0, "unchanged": 0}
    sequence = pos.next_sequence
    while True:
        outcome = run_chunk(store, ledger, provider, pos.ingestion, sequence, options.chunk_size)
        for key in counts:
            counts[key] += getattr(outcome.result, key)
        if outcome.done:
            break
        sequence += 1
    swept = run_sweep(store, ledger, ledger.get(pos.ingestion.id), options, provider=provider)
    counts["removed"] = swept.removed
    return time.perf_counter() - t0, time.process_time() - c0, counts


def storage_and_queries(engine, args, figures: dict) -> None:
    """History rows and bytes against the catalog's, `diff` and `describe --as-of` timings."""
    import sqlalchemy as sa

    from catalog_pipelines.services import history as svc
    from catalog_pipelines.storage import history, schema as s

    with engine.connect() as conn:
        h = s.entity_history
        figures["cycle2_history_rows"] = conn.execute(sa.select(sa.func.count()).select_from(h).where(h.c.cycle == 2)).scalar_one()
        figures["history_rows"] = conn.execute(sa.select(sa.func.count()).select_from(h)).scalar_one()
        figures["history_bodies"] = conn.execute(sa.select(sa.func.count()).select_from(h).where(h.c.previous_body.is_not(None))).scalar_one()
    sizes = history.storage_bytes(engine, [s.entities, s.relations, s.entity_history])
    catalog_bytes = sizes["entities"] + sizes["relations"]
    figures.update({"catalog_mb": round(catalog_bytes / 2**20, 1), "history_mb": round(sizes["entity_history"] / 2**20, 1),
                    "history_over_catalog": round(sizes["entity_history"] / catalog_bytes, 2)})

    last = args.cycles
    # Wall and process CPU (the load of a shared machine inflates the wall; on SQLite the query's
    # own work is in the process, on PostgreSQL the server's is not).
    for name, a, b, kind in (("diff_2_to_last", 2, last, None), ("diff_last_two", last - 1, last, None),
                             ("diff_2_to_last_components", 2, last, "component")):
        t0, c0 = time.perf_counter(), time.process_time()
        out = svc.diff(engine, a, b, kind=kind)
        figures[f"{name}_s"] = round(time.perf_counter() - t0, 2)
        figures[f"{name}_cpu_s"] = round(time.process_time() - c0, 2)
        figures[f"{name}_counts"] = out["counts"]

    rng = random.Random(args.seed)
    with engine.connect() as conn:
        refs = list(conn.execute(sa.select(s.entities.c.ref).order_by(s.entities.c.ref)).scalars())
        changed = list(conn.execute(sa.select(h.c.ref).where(h.c.change == "changed").distinct()).scalars())
    sample = rng.sample(refs, min(args.queries, len(refs))) + rng.sample(changed, min(args.queries, len(changed)))
    times = []
    for ref in sample:
        t0 = time.perf_counter()
        try:
            svc.describe_as_of(engine, ref, rng.randint(1, last))
        except svc.HistoryError:
            pass  # not yet added at that cycle: answered all the same
        times.append(time.perf_counter() - t0)
    times.sort()
    figures["describe_as_of_median_ms"] = round(1000 * statistics.median(times), 1)
    figures["describe_as_of_p95_ms"] = round(1000 * times[int(0.95 * (len(times) - 1))], 1)
    figures["describe_as_of_max_ms"] = round(1000 * times[-1], 1)


def catalog_url(args, workdir: Path, name: str, cleanups: list) -> str:
    if not args.postgres:
        return f"sqlite:///{workdir / f'{name}.db'}"
    from benchmarks.ingest_200k import fresh_postgres_url

    admin = os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    url, drop = fresh_postgres_url(admin)
    cleanups.append(drop)
    return url


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--queries", type=int, default=50, help="random describe --as-of queries to time")
    parser.add_argument("--postgres", action="store_true", help="on PostgreSQL: CATALOG_TEST_POSTGRES_URL")
    parser.add_argument("--smoke", action="store_true", help="small size, for the test suite")
    parser.add_argument("--existing", default=None, metavar="URL", help="no cycles: measure storage and queries of this catalog")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.cycles, args.chunk_size, args.queries = 1000, 4, 500, 5

    import sqlalchemy as sa

    from catalog_pipelines.ingestion.config import IngestionOptions
    from catalog_pipelines.storage import schema as s
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import dispose_engines, get_engine
    from catalog_pipelines.storage.ledger import Ledger

    workdir = Path(tempfile.mkdtemp(prefix="cp-history-"))
    options = IngestionOptions(chunk_size=args.chunk_size, reject_removals_above_percentage=None)
    cleanups: list = []
    figures: dict = {"backend": "postgresql" if args.postgres else "sqlite", "size": args.size, "cycles": args.cycles,
                     "churn_per_cycle": args.churn}
    try:
        if args.existing:  # only the storage and query figures, on a catalog a run left behind
            engine = get_engine(args.existing)
            with engine.connect() as conn:
                i = s.ingestions
                args.cycles = conn.execute(sa.select(sa.func.max(i.c.cycle)).where(i.c.ingestion_completed_at.is_not(None))).scalar_one()
            figures["cycles"] = args.cycles
            storage_and_queries(engine, args, figures)
            return _print(figures)
        # --- B: history off, cycles 1 (new) and 2 (unchanged)
        engine = get_engine(catalog_url(args, workdir, "off", cleanups))
        store, ledger = CatalogStore(engine, history=False), Ledger(engine)
        off1 = run_cycle(store, ledger, options, args.size, args.seed, 0, args.churn)
        off2 = run_cycle(store, ledger, options, args.size, args.seed, 0, args.churn)
        # --- A: history on, then the churn cycles
        engine = get_engine(catalog_url(args, workdir, "on", cleanups))
        store, ledger = CatalogStore(engine), Ledger(engine)
        on1 = run_cycle(store, ledger, options, args.size, args.seed, 0, args.churn)
        on2 = run_cycle(store, ledger, options, args.size, args.seed, 0, args.churn)
        churn_runs = [run_cycle(store, ledger, options, args.size, args.seed, g, args.churn) for g in range(1, args.cycles - 1)]
        figures.update({
            "entities": on1[2]["added"],
            "cycle1_off_s": round(off1[0], 2), "cycle1_on_s": round(on1[0], 2),
            "cycle1_off_cpu_s": round(off1[1], 2), "cycle1_on_cpu_s": round(on1[1], 2),
            "cycle1_extra_pct": round(100 * (on1[0] - off1[0]) / off1[0], 1),
            "cycle1_extra_cpu_pct": round(100 * (on1[1] - off1[1]) / off1[1], 1),
            "cycle2_unchanged_off_s": round(off2[0], 2), "cycle2_unchanged_on_s": round(on2[0], 2),
            "cycle2_unchanged_off_cpu_s": round(off2[1], 2), "cycle2_unchanged_on_cpu_s": round(on2[1], 2),
            "cycle2_history_rows": 0,
        })
        if churn_runs:
            figures["churn_cycle_mean_s"] = round(statistics.mean(r[0] for r in churn_runs), 2)
            figures["churn_per_cycle_mean"] = {k: round(statistics.mean(r[2][k] for r in churn_runs)) for k in ("added", "changed", "removed")}
        storage_and_queries(engine, args, figures)
    finally:
        dispose_engines()
        for cleanup in cleanups:
            cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return _print(figures)


def _print(figures: dict) -> dict:
    from benchmarks.ingest_200k import print_figures

    return print_figures(figures)


if __name__ == "__main__":
    main()
