"""Ingest a 200,000-entity synthetic org through Dagster in-process, and time the floor.

Prints, for the same entity and relation rows:
- cycle 1 (everything new) and cycle 2 (nothing changed) through the real path: provider pages →
  validation → one transaction per chunk (entities, relations, marks) → one Dagster run per chunk →
  the removal sweep;
- the floor: a bare bulk insert of those rows into a fresh database with the same schema
  (no validation, no Dagster, one transaction);
- peak RSS of the ingestion (measured before the floor builds its rows in memory).

    python benchmarks/ingest_200k.py [--entities N] [--chunk-size N] [--chunks-per-run N] [--postgres] [--smoke]

`--entities 1000000 --postgres` is the million-entity benchmark (issue 25): the same code path,
the same floor; nothing of the catalog is held in memory, so peak RSS must not grow with N.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_stats():
    """(command name, process group, CPU seconds incl. reaped children) of every live process,
    from /proc (nothing where there is no /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[2]: pgrp; 11..14: utime, stime, cutime, cstime
        yield stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[2]), sum(int(f) for f in fields[11:15]) / tick


def local_postgres_cpu_s() -> float | None:
    """CPU seconds used so far by PostgreSQL processes on this machine (ended backends included,
    through the postmaster's reaped-children times); None where /proc shows none."""
    cpu = [seconds for name, _, seconds in proc_stats() if name.startswith("postgres")]
    return sum(cpu) if cpu else None


def database_backends_cpu_s(url: str) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends connected to `url`'s database (the
    catalog's pooled connections: they live for the whole benchmark), read from /proc. Unlike
    `local_postgres_cpu_s`, other databases' work on a shared machine is not counted; work of
    backends that already exited is not either."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND pid <> pg_backend_pid()")).scalars().all()
    finally:
        engine.dispose()
    total = 0.0
    for pid in pids:
        try:
            total += backend_cpu_s(pid)
        except OSError:
            continue
    return total


def fresh_postgres_url(admin_url: str, prefix: str = "cp_bench") -> tuple[str, callable]:
    """A throwaway database named `<prefix>_<random>`, and the function that drops it."""
    import uuid

    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from catalog_pipelines.storage.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return admin.url.set(database=name).render_as_string(hide_password=False), drop


def backend_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        stat = handle.read()
    return sum(int(f) for f in stat[stat.rindex(")") + 2 :].split()[11:13]) / os.sysconf("SC_CLK_TCK")


def floor(url: str, size: int, seed: int, stats: dict | None = None) -> tuple[float, int, int]:
    """Bulk insert of the same rows into a fresh database: the physical limit of this backend.

    The rows are built first (validation and relations, not timed) and spooled to a temporary file
    in batches, so a million entities never sit in memory; then they are read back batch by batch
    and written in one transaction, and only the writes are timed. `stats`, if given, receives
    `server_cpu_s`: the CPU its PostgreSQL backend used for the writes (under load, wall time
    mostly measures the other processes).
    """
    import pickle

    import orjson

    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import RawEntity
    from catalog_pipelines.providers.synthetic import SyntheticOrg
    from catalog_pipelines.storage import schema as s
    from catalog_pipelines.storage.catalog import utcnow
    from catalog_pipelines.storage.db import create_catalog_engine, ensure_schema
    from catalog_pipelines.storage.sql import bulk_write

    now = utcnow()
    seen: set[str] = set()
    entities = relations = 0
    with tempfile.TemporaryFile() as spool:
        batches: list[tuple[object, int]] = []  # (table, rows) in write order: entities, then relations

        def spill(table, rows: list) -> None:
            pickle.dump(rows, spool, protocol=pickle.HIGHEST_PROTOCOL)
            batches.append((table, len(rows)))

        entity_rows, relation_rows = [], []
        relations_at = tempfile.TemporaryFile()
        with relations_at:
            for i, body in enumerate(SyntheticOrg(size, seed=seed).iter_entities()):
                e = process_entity(RawEntity(entity=body, location=f"floor#{i}"))
                if not hasattr(e, "content_hash") or e.ref in seen:
                    continue
                seen.add(e.ref)
                entity_rows.append({"ref": e.ref, "kind": e.kind.lower(), "namespace": e.namespace, "name": e.name,
                                    "provider": "floor", "location": e.location, "body": orjson.dumps(e.entity).decode(),
                                    "content_hash": e.content_hash, "first_seen": now, "last_changed": now})
                relation_rows.extend({(r.source, r.type, r.target) for r in e.relations if r.source == e.ref})
                if len(entity_rows) >= 20_000:
                    spill(s.entities, entity_rows)
                    entities += len(entity_rows)
                    entity_rows = []
                if len(relation_rows) >= 200_000:
                    pickle.dump(relation_rows, relations_at, protocol=pickle.HIGHEST_PROTOCOL)
                    relations += len(relation_rows)
                    relation_rows = []
            spill(s.entities, entity_rows)
            entities += len(entity_rows)
            pickle.dump(relation_rows, relations_at, protocol=pickle.HIGHEST_PROTOCOL)
            relations += len(relation_rows)
            entity_rows = relation_rows = []
            seen.clear()
            relations_at.seek(0)
            while True:
                try:
                    rows = pickle.load(relations_at)
                except EOFError:
                    break
                spill(s.relations, [{"source_ref": a, "type": b, "target_ref": c} for a, b, c in rows])
        engine = create_catalog_engine(url)
        ensure_schema(engine)
        spool.seek(0)
        seconds = 0.0
        # The fastest bulk path each backend has: COPY on PostgreSQL, multi-row INSERT on SQLite.
        with engine.begin() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() if conn.dialect.name == "postgresql" else None
            cpu0 = backend_cpu_s(pid) if pid else 0.0
            for table, _ in batches:
                rows = pickle.load(spool)
                started = time.perf_counter()
                bulk_write(conn, table, rows)
                seconds += time.perf_counter() - started
            started = time.perf_counter()
        seconds += time.perf_counter() - started  # the commit
        if pid and stats is not None:
            stats["server_cpu_s"] = backend_cpu_s(pid) - cpu0
    engine.dispose()
    return seconds, entities, relations


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", "--entities", dest="size", type=int, default=200_000,
                        help="entities in the synthetic org (1000000: the issue's million)")
    # 20,000: 11 Dagster runs instead of 41 (~0.3 s each). Validation streams through the write
    # 1,000 entities at a time, so peak RSS at 20k is 231 MB on PostgreSQL, 359 MB on SQLite
    # (≤ 500 MB; the older eager path needed 508 MB on SQLite).
    parser.add_argument("--chunk-size", type=int, default=20_000)
    # Chunks per Dagster run (each still its own transaction, mark and partition materialisation):
    # a run costs ~0.3 s in-process, 50 of them at a million entities ~15 s.
    parser.add_argument("--chunks-per-run", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (profiling the cycles)")
    parser.add_argument("--postgres", action="store_true", help="catalog (and floor) on PostgreSQL: CATALOG_TEST_POSTGRES_URL")
    parser.add_argument("--smoke", action="store_true", help="small size, for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.chunk_size, args.chunks_per_run = 2000, 500, 2

    workdir = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    os.environ["CATALOG_PIPELINES_DATA_DIR"] = str(workdir)
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")
    cleanups = []
    if args.postgres:
        admin = os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        url, drop = fresh_postgres_url(admin)
        floor_url, drop_floor = fresh_postgres_url(admin)
        cleanups += [drop, drop_floor]
    else:
        url = f"sqlite:///{workdir / 'catalog.db'}"
        floor_url = f"sqlite:///{workdir / 'floor.db'}"

    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
    from catalog_pipelines.runs import instance_from_env, run_cycle

    config = ProviderConfig(name="bench", type="synthetic", params={"size": args.size, "seed": args.seed},
                            options=IngestionOptions(chunk_size=args.chunk_size, chunks_per_run=args.chunks_per_run))
    defs = build_definitions([config], catalog_url=url)
    instance = instance_from_env()
    try:
        # CPU time of this process (every thread) next to wall time: under load the wall time
        # mostly measures the other processes. On PostgreSQL the server's CPU is not included.
        s0 = local_postgres_cpu_s() if args.postgres else None
        b0 = database_backends_cpu_s(url) if args.postgres else None
        t0, c0 = time.perf_counter(), time.process_time()
        first = run_cycle(defs, config, instance)
        t1, c1 = time.perf_counter(), time.process_time()
        s1 = local_postgres_cpu_s() if args.postgres else None
        b1 = database_backends_cpu_s(url) if args.postgres else None
        second = run_cycle(defs, config, instance)
        t2, c2 = time.perf_counter(), time.process_time()
        s2 = local_postgres_cpu_s() if args.postgres else None
        b2 = database_backends_cpu_s(url) if args.postgres else None
        # Peak RSS of the ingestion: this process (every run is in-process) and any child it waited for.
        rss = peak_rss_mb()
        children_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        floor_stats: dict = {}
        floor_s, floor_entities, floor_relations = (None, 0, 0) if args.no_floor else floor(floor_url, args.size, args.seed, floor_stats)
    finally:
        for cleanup in cleanups:
            cleanup()
    figures = {
        "backend": "postgresql" if args.postgres else "sqlite",
        "entities": first.added,
        "rejected": first.rejected,
        "chunks": first.chunks,
        "chunk_size": args.chunk_size,
        "chunks_per_run": args.chunks_per_run,
        "cycle1_s": round(t1 - t0, 2),
        "cycle1_process_cpu_s": round(c1 - c0, 2),
        "cycle1_entities_per_s": round(first.added / (t1 - t0)),

        "cycle2_s": round(t2 - t1, 2),
        "cycle2_process_cpu_s": round(c2 - c1, 2),
        "cycle2_entity_rows_written": second.added + second.changed,
        "cycle2_over_cycle1": round((t2 - t1) / (t1 - t0), 2),
        "peak_rss_mb": round(rss),
        "peak_rss_children_mb": round(children_rss),
    }
    if floor_s is not None:
        figures.update(floor_s=round(floor_s, 2), floor_rows={"entities": floor_entities, "relation_pairs": floor_relations},
                       ratio_to_floor=round((t1 - t0) / floor_s, 2))
        if "server_cpu_s" in floor_stats:
            figures["floor_server_cpu_s"] = round(floor_stats["server_cpu_s"], 2)
    if None not in (s0, s1, s2, b0, b1, b2):
        # The server's share (every PostgreSQL process on the machine: other databases' work counts
        # too), which the chunk write overlaps with validation where it can.
        figures["cycle1_server_cpu_s"] = round(s1 - s0, 2)
        figures["cycle2_server_cpu_s"] = round(s2 - s1, 2)
        # The catalog database's own backends only (other helpers' databases excluded).
        figures["cycle1_catalog_backends_cpu_s"] = round(b1 - b0, 2)
        figures["cycle2_catalog_backends_cpu_s"] = round(b2 - b1, 2)
    return print_figures(figures)


def print_figures(figures: dict) -> dict:
    """Add the machine and its load, print one figure per line, return them (every benchmark here)."""
    figures["load_average"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    return figures


if __name__ == "__main__":
    main()
