"""Ingest a synthetic org through the real daemon path: sensor → queued runs → sweep.

Starts `dagster-daemon` against a fresh DAGSTER_HOME (the embedded default: SQLite storage, queued
run coordinator, one run per provider at a time) with one synthetic provider configured, and waits
until the provider's first cycle has swept. Prints wall time, the work inside the chunk runs (from
the ledger marks), the orchestration overhead per chunk, and the chunk-size trade-off.

    python benchmarks/ingest_daemon_200k.py [--size 200000] [--chunk-size 20000]
        [--chunks-per-run 10] [--tradeoff-size 20000] [--tradeoff 1000,5000,20000] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_once(size: int, chunk_size: int, timeout: float, chunks_per_run: int = 1) -> dict:
    work = Path(tempfile.mkdtemp(prefix="cp-daemon-"))
    home = work / "dagster_home"
    providers = work / "providers.yaml"
    providers.write_text(
        "providers:\n"
        "  - name: bench\n"
        "    type: synthetic\n"
        f"    size: {size}\n"
        "    seed: 42\n"
        "    options:\n"
        f"      chunk_size: {chunk_size}\n"
        f"      chunks_per_run: {chunks_per_run}\n"
        "      burst_length: 1h\n"
        "      rest_length: 1d\n"
        "      sensor_interval_seconds: 1\n"
    )
    env = {
        **os.environ,
        "CATALOG_PIPELINES_DATA_DIR": str(work),
        "DAGSTER_HOME": str(home),
        "CATALOG_PIPELINES_PROVIDERS": str(providers),
        "CATALOG_DATABASE_URL": f"sqlite:///{work / 'catalog.db'}",
    }
    os.environ.update({k: env[k] for k in ("CATALOG_PIPELINES_DATA_DIR", "DAGSTER_HOME", "CATALOG_DATABASE_URL")})
    from catalog_pipelines.runs import ensure_instance_config
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import dispose_engines, get_engine
    from catalog_pipelines.storage.ledger import Ledger

    ensure_instance_config(home)
    engine = get_engine(env["CATALOG_DATABASE_URL"])
    ledger, store = Ledger(engine), CatalogStore(engine)
    daemon_bin = str(Path(sys.executable).parent / "dagster-daemon")
    log = open(work / "daemon.log", "w")
    started = time.perf_counter()
    daemon = subprocess.Popen([daemon_bin, "run", "-w", str(REPO / "workspace.yaml")], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        swept = None
        first_chunk_at = None
        while time.perf_counter() - started < timeout:
            time.sleep(0.5)
            current = ledger.open_ingestion("bench")
            if first_chunk_at is None and current is not None and ledger.last_mark(current.id) is not None:
                first_chunk_at = time.perf_counter()
            if current is not None and current.sweep_outcome is not None:
                swept = current
                break
            if daemon.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited: see {work / 'daemon.log'}")
        if swept is None:
            raise TimeoutError(f"no sweep within {timeout:.0f}s (log: {work / 'daemon.log'})")
        wall = time.perf_counter() - started
        marks = ledger.marks(swept.id)
        import dagster as dg

        with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME is this run's home
            runs = instance.get_runs_count()  # chunk runs and the sweep run
        work_s = sum(m.duration_ms for m in marks) / 1000
        # Daemon start, code-location load and the first run's launch, until chunk 0 was written.
        startup = (first_chunk_at or started) - started - marks[0].duration_ms / 1000
        entities = store.count("bench")
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        dispose_engines()
    shutil.rmtree(work, ignore_errors=True)
    chunks = len(marks)
    return {
        "size": size,
        "chunk_size": chunk_size,
        "chunks_per_run": chunks_per_run,
        "entities": entities,
        "chunks": chunks,
        "wall_s": round(wall, 1),
        "work_in_chunks_s": round(work_s, 1),
        "startup_s": round(startup, 1),
        # Steady state: every run after the first (sensor tick, queue, launch, run process start),
        # spread over the chunks (a run may write several: chunks_per_run).
        "overhead_per_chunk_s": round((wall - startup - work_s) / max(chunks, 1), 2),
        "runs": runs,
        "overhead_per_run_s": round((wall - startup - work_s) / max(runs, 1), 2),
        "entities_per_s": round(entities / wall),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    # 10: the whole 200k cycle's chunks in one run (each chunk still its own partition
    # materialisation); 1 is the earlier run per chunk.
    parser.add_argument("--chunks-per-run", type=int, default=10)
    parser.add_argument("--tradeoff-size", type=int, default=20_000)
    parser.add_argument("--tradeoff", default="1000,5000,20000")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--smoke", action="store_true", help="small sizes, for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.chunk_size, args.tradeoff_size, args.tradeoff, args.timeout = 600, 200, 0, "", 240
        args.chunks_per_run = 2
    results = [run_once(args.size, args.chunk_size, args.timeout, args.chunks_per_run)]
    for chunk in [int(c) for c in args.tradeoff.split(",") if c] if args.tradeoff_size else []:
        results.append(run_once(args.tradeoff_size, chunk, args.timeout, args.chunks_per_run))
    from benchmarks.ingest_200k import print_figures

    for r in results:
        print_figures(r)
        print()
    return results


if __name__ == "__main__":
    main()
