"""Portal usage benchmark: 10 million events over 90 days → every insight; then one new day on top.

    .venv/bin/python benchmarks/usage.py                       # 10M events, 90 days (the target)
    .venv/bin/python benchmarks/usage.py --events 1000000      # a quick run
    .venv/bin/python benchmarks/usage.py --dir /tmp/usage-bench --keep

Phases, each in its own process so that its peak RSS is its own:

1. generate     synthetic events (a 100k-entity synthetic org: 10k users, 2k groups) written to
                the raw store as part files, 0.5 % of them re-sent duplicates. Not part of the budget.
2. full         what the assets do for a 90-day backfill: compact and deduplicate every day,
                summarise every day, combine the summaries into the insight tables and write them
                to a SQLite catalog database. Target ≤ 60 s and ≤ 2 GB peak RSS on 2 cores.
3. incremental  a 91st day arrives: compact and summarise that day only, recombine the retained
                90 days of summaries, rewrite the tables. Target ≤ 10 s.

Prints one JSON line per phase and a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = b"benchmark-pseudonym-key"
START = date(2025, 1, 8)  # day 90, the incremental one, is then a Tuesday (a busy day)


def _org(size: int):
    from analytics.org import OrgGraph
    from catalog_pipelines.providers.synthetic import SyntheticOrg

    synthetic = SyntheticOrg(size, seed=11)
    org = OrgGraph.from_entities(synthetic.users_and_groups())
    components = synthetic.kind_range("Component")
    entity_refs = [synthetic.ref(i) for i in components[: min(len(components), 5000)]]
    return org, entity_refs


def _generator(args):
    from analytics.usage.synthetic import SyntheticUsage

    org, entity_refs = _org(args.org_size)
    # One extra day is generated lazily for the incremental phase; the volume is per day.
    return org, SyntheticUsage(
        org, seed=args.seed, start=START, days=args.days + 1, events=round(args.events * (args.days + 1) / args.days),
        entity_refs=entity_refs, duplicate_share=0.005,
    )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    # user + system CPU time: unlike wall time, it does not grow when other processes compete
    # for the two cores
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def phase_generate(args) -> dict:
    from catalog_pipelines.storage.usage_store import RawEventStore

    t0 = time.perf_counter()
    org, gen = _generator(args)
    raw = RawEventStore(Path(args.dir) / "raw")
    rows = 0
    for index in range(args.days):
        table = gen.day_table(index, key=KEY)
        raw.append(table)
        rows += table.num_rows
    return {"phase": "generate", "rows_written": rows, "users": len(org.users), "groups": len(org.groups), "seconds": time.perf_counter() - t0}


def _write_tables(tables, url: str) -> float:
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.model.insight_tables import USAGE
    from catalog_pipelines.storage.insights import write_frame

    t = time.perf_counter()
    engine = get_engine(url)  # the catalog's own engine (SQLite in WAL mode), as the asset uses
    for name, frame in tables.items():
        write_frame(engine, USAGE.get(name), frame)
    return time.perf_counter() - t


def phase_full(args) -> dict:
    from analytics.usage.insights import UsageConfig
    from catalog_pipelines.services.usage_pipeline import compact_days, insights, summarise_days
    from catalog_pipelines.storage.usage_store import DailySummaryStore, RawEventStore

    base = Path(args.dir)
    raw, summaries = RawEventStore(base / "raw"), DailySummaryStore(base / "daily")
    org, _ = _org(args.org_size)
    config = UsageConfig()
    days = raw.days()
    timings = {}
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    t = time.perf_counter()
    report, _ = compact_days(raw, days)
    timings["compact_s"] = time.perf_counter() - t
    t = time.perf_counter()
    summarise_days(raw, summaries, days, config)
    timings["summarise_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tables = insights(summaries, org=org, key=KEY, config=config)
    timings["combine_s"] = time.perf_counter() - t
    timings["write_tables_s"] = _write_tables(tables, f"sqlite:///{base / 'catalog.db'}")
    return {
        "phase": "full",
        "days": len(days),
        "events": report.events,
        "duplicates_dropped": report.duplicates,
        "table_rows": {k: len(v) for k, v in tables.items()},
        **timings,
        "seconds": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - cpu0,
        "peak_rss_mb": _peak_mb(),
    }


def phase_incremental(args) -> dict:
    from analytics.usage.insights import UsageConfig
    from catalog_pipelines.services.usage_pipeline import compact_days, insights, summarise_days
    from catalog_pipelines.storage.usage_store import DailySummaryStore, RawEventStore

    base = Path(args.dir)
    raw, summaries = RawEventStore(base / "raw"), DailySummaryStore(base / "daily")
    org, gen = _generator(args)
    new_day = gen.day(args.days)
    table = gen.day_table(args.days, key=KEY)
    raw.append(table)  # arrival of the day's events (the collector's work, not the pipeline's)
    config = UsageConfig()
    timings = {}
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    t = time.perf_counter()
    report, _ = compact_days(raw, [new_day])
    timings["compact_s"] = time.perf_counter() - t
    t = time.perf_counter()
    summarise_days(raw, summaries, [new_day], config)
    timings["summarise_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tables = insights(summaries, org=org, key=KEY, config=config)
    timings["combine_s"] = time.perf_counter() - t
    timings["write_tables_s"] = _write_tables(tables, f"sqlite:///{base / 'catalog.db'}")
    meta = tables["meta"].iloc[0]
    return {
        "phase": "incremental",
        "day": new_day.isoformat(),
        "events": report.events,
        "window": f"{meta['first_day']}..{meta['as_of']}",
        **timings,
        "seconds": time.perf_counter() - t0,
        "cpu_s": _cpu_s() - cpu0,
        "peak_rss_mb": _peak_mb(),
    }


PHASES = {"generate": phase_generate, "full": phase_full, "incremental": phase_incremental}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--org-size", type=int, default=100_000, help="SyntheticOrg size (12 %% users)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--raw-cache", help="keep a copy of the generated events here and reuse it when the parameters match")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(PHASES[args.phase](args), default=str), flush=True)
        return

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="usage-bench-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: the full phase must start from uncompacted events")
    work.mkdir(parents=True, exist_ok=True)
    params = {k: getattr(args, k) for k in ("events", "days", "org_size", "seed")}
    cache = Path(args.raw_cache) if args.raw_cache else None
    results = {}
    try:
        phases = ["generate", "full", "incremental"]
        if cache and (cache / "params.json").exists() and json.loads((cache / "params.json").read_text()) == params:
            shutil.copytree(cache / "raw", work / "raw")  # same events as a fresh generate, minutes sooner
            results["generate"] = {"phase": "generate", "seconds": float("nan"), "cached": str(cache)}
            phases.remove("generate")
        for phase in phases:
            cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(work), "--events", str(args.events),
                   "--days", str(args.days), "--org-size", str(args.org_size), "--seed", str(args.seed)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            results[phase] = json.loads(line)
            if phase == "generate" and cache:
                shutil.rmtree(cache, ignore_errors=True)
                shutil.copytree(work / "raw", cache / "raw")
                (cache / "params.json").write_text(json.dumps(params))
        raw_mb = sum(f.stat().st_size for f in work.rglob("*.parquet")) / 1e6
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    full, inc = results["full"], results["incremental"]
    print()
    print(f"| portal usage, {full['events']:,} events over {full['days']} days (2 cores) | measured | target |")
    print("| --- | --- | --- |")
    generated = results["generate"]
    gen_cell = f"reused {generated['cached']}" if "cached" in generated else f"{generated['seconds']:.1f} s"
    print(f"| generate synthetic events (not in the budget) | {gen_cell} | |")
    print(f"| full: compact + dedupe all days | {full['compact_s']:.1f} s | |")
    print(f"| full: summarise all days | {full['summarise_s']:.1f} s | |")
    print(f"| full: combine into insights | {full['combine_s']:.1f} s | |")
    print(f"| full: write insight tables (SQLite) | {full['write_tables_s']:.1f} s | |")
    print(f"| **full total** (one process) | **{full['seconds']:.1f} s, {full['peak_rss_mb']:.0f} MB peak RSS** | ≤ 60 s, ≤ 2 GB |")
    print(f"| full: CPU time (user + system) | {full['cpu_s']:.1f} s | |")
    print(f"| incremental: one new day ({inc['events']:,} events) end to end | **{inc['seconds']:.1f} s** ({inc['cpu_s']:.1f} s CPU), {inc['peak_rss_mb']:.0f} MB peak RSS | ≤ 10 s |")
    print(f"| load average at the end (other work on the machine) | {os.getloadavg()[0]:.1f} | |")
    print(f"| store on disk (raw + summaries) | {raw_mb:.0f} MB | |")


if __name__ == "__main__":
    main()
