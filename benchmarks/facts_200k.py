"""Fact collection at scale: 200,000 entities, collect + map + store on PostgreSQL, peak RSS, and
an unchanged daily re-run (issue 19's figures; docs/benchmarks.md).

    python benchmarks/facts_200k.py [--size N] [--postgres] [--mode reports|replay] [--smoke]

Setup (not timed): the synthetic organisation bulk-loaded into a fresh catalog (COPY), then
- `--mode reports` (default when the `report_files` collector is installed): the demo's report
  files for every component (`services.facts.write_synthetic_sources`: JUnit, Cobertura, SARIF,
  Trivy as the tools emit them), collected by the shipped collectors.yaml's report_files instances
  (security, coverage, tests, openssf);
- `--mode replay`: a collector defined here (registered through an entry point, as a third-party
  package would be) yields, per repository, the facts a scanner report gives, in batches of 500:
  the map + store path alone, without parsing.

Timed, each in a fresh process (so that peak RSS is the collection's, not the setup's): the first
run (collect + map + store every collector), then an unchanged re-run (same files / same facts:
report_files reads nothing new, replay re-yields everything and the store finds it unchanged).
Budgets: first run <= 60 s, peak RSS <= 1 GB, unchanged re-run <= 10 s.
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
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

REPORT_COLLECTORS = ("security", "coverage", "tests", "openssf")
BATCH = 500


class ReplayCollector:
    """Facts of a scanner report per repository (`github.com/project-slug` targets), from a JSON
    list of slugs; `seed` varies the figures, so a re-run with the same seed changes nothing."""

    def __init__(self, name: str, slugs_file: Path, seed: int):
        self.name, self.slugs_file, self.seed = name, slugs_file, seed

    @classmethod
    def from_config(cls, name, params, base_dir):
        return cls(name, Path(base_dir) / params["slugs"], int(params.get("seed", 1)))

    def facts(self):
        from catalog_pipelines.collectors.base import FactDecl

        return {n: FactDecl(n, t, n) for n, t in (("vulnerabilities_by_severity", "object"), ("vulnerabilities_total", "number"), ("results_by_level", "object"), ("results_total", "number"), ("tools", "list"))}

    def collect(self, cursor, now):
        from catalog_pipelines.collectors.base import Batch, Observation, Target

        slugs = json.loads(self.slugs_file.read_text())
        for start in range(0, len(slugs), BATCH):
            batch = Batch(cursor={"replayed": min(start + BATCH, len(slugs))})
            for i, slug in enumerate(slugs[start:start + BATCH], start):
                h = (i * 2654435761 + self.seed) & 0xFFFF
                sev = {"critical": h % 2, "high": h % 5, "medium": h % 7, "low": h % 11, "unknown": 0}
                lv = {"error": h % 3, "warning": h % 13, "note": h % 4, "none": 0}
                facts = {"vulnerabilities_by_severity": sev, "vulnerabilities_total": sum(sev.values()), "results_by_level": lv,
                         "results_total": sum(lv.values()), "tools": ["Trivy", "CodeQL"]}
                batch.observations.append(Observation((Target("github.com/project-slug", slug),), facts, now, origin=f"replay/{slug}/trivy.json"))
            yield batch


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's over fork + exec)."""
    try:
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def register_replay(site: Path) -> None:
    """A dist-info declaring `replay` in catalog_pipelines.collectors, found by importlib.metadata."""
    info = site / "facts_bench-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: facts-bench\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[catalog_pipelines.collectors]\nreplay = facts_200k:ReplayCollector.from_config\n")


def phase(args) -> None:
    """One timed run in this process: every collector of the config, one annotation index."""
    from catalog_pipelines.services.facts import AnnotationIndex, collect, collectors_file
    from catalog_pipelines.storage.db import get_engine

    if args.site:
        sys.path.insert(0, args.site)
    engine = get_engine(args.url)
    config = Path(args.config)
    started, cpu = time.perf_counter(), time.process_time()
    index = AnnotationIndex.lazy(engine)
    runs = [collect(engine, e.name, config_path=config, index=index) for e in collectors_file(config).collectors]
    out = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "index": index._index is not None, "rss_mb": peak_rss_mb(),
           "runs": [{k: r[k] for k in ("collector", "observations", "mapped", "unmapped", "ambiguous", "rejected", "stored", "unchanged")} for r in runs]}
    print("PHASE " + json.dumps(out))


def run_phase(url: str, config: Path, site: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--phase", "--url", url, "--config", str(config), *(["--site", str(site)] if site else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE), *([str(site)] if site else [])])})
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("PHASE "))[6:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--postgres", action="store_true", help="catalog on PostgreSQL: CATALOG_TEST_POSTGRES_URL")
    parser.add_argument("--mode", choices=("reports", "replay"), default=None)
    parser.add_argument("--smoke", action="store_true", help="small size, for the test suite")
    parser.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        phase(args)
        return
    if args.smoke:
        args.size = 2000
    from ingest_200k import floor, fresh_postgres_url

    from catalog_pipelines.collectors.registry import COLLECTORS

    if args.mode is None:
        try:
            COLLECTORS.load("report_files")
            args.mode = "reports"
        except ImportError:
            args.mode = "replay"
    workdir = Path(tempfile.mkdtemp(prefix="cp-facts-bench-"))
    os.environ["CATALOG_PIPELINES_DATA_DIR"] = str(workdir)
    cleanups = []
    if args.postgres:
        url, drop = fresh_postgres_url(os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
        cleanups.append(drop)
    else:
        url = f"sqlite:///{workdir / 'catalog.db'}"
    try:
        t0 = time.perf_counter()
        _, entities, _ = floor(url, args.size, args.seed)
        print(f"{entities:,} entities loaded in {time.perf_counter() - t0:.1f} s (not timed); mode {args.mode}", flush=True)
        from catalog_pipelines.storage.db import get_engine
        from catalog_pipelines.storage.frames import entities_frame

        engine = get_engine(url)
        site = None
        t0 = time.perf_counter()
        if args.mode == "reports":
            from catalog_pipelines.services.facts import write_synthetic_sources

            written = write_synthetic_sources(engine, seed=args.seed, as_of=datetime(2026, 12, 7, tzinfo=timezone.utc).date())
            size_mb = sum(p.stat().st_size for p in Path(written["directory"]).rglob("*") if p.is_file()) / 2**20
            print(f"{written['files']:,} report files, {size_mb:.0f} MB, written in {time.perf_counter() - t0:.1f} s (not timed)", flush=True)
            import yaml

            shipped = yaml.safe_load((HERE.parent / "config" / "collectors.yaml").read_text())
            config = workdir / "collectors.yaml"
            config.write_text(yaml.safe_dump({"collectors": [c for c in shipped["collectors"] if c["name"] in REPORT_COLLECTORS]}))
        else:
            components = entities_frame(engine, kinds=["component"])
            slugs = [((b.get("metadata") or {}).get("annotations") or {}).get("github.com/project-slug") for b in components["entity"]]
            (workdir / "slugs.json").write_text(json.dumps([s for s in slugs if s]))
            site = workdir / "site"
            register_replay(site)
            config = workdir / "collectors.yaml"
            config.write_text("collectors:\n  - {name: security, type: replay, params: {slugs: slugs.json, seed: 1}, retention: {max_items: 10, ttl: 30d}}\n")
            print(f"{len([s for s in slugs if s]):,} repositories to replay", flush=True)
        first = run_phase(url, config, site)
        again = run_phase(url, config, site)
    finally:
        for cleanup in cleanups:
            cleanup()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print()
    print(f"Facts, {entities:,} entities, {backend}, mode {args.mode}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print()
    print("| run | wall s | cpu s (client) | catalog read | peak RSS MB | observations | mapped | unmapped | ambiguous | rejected | stored | unchanged |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in (("first", first), ("unchanged re-run", again)):
        tot = {k: sum(x[k] for x in r["runs"]) for k in ("observations", "mapped", "unmapped", "ambiguous", "rejected", "stored", "unchanged")}
        print(f"| {label} | {r['seconds']:.1f} | {r['cpu']:.1f} | {'yes' if r['index'] else 'no'} | {r['rss_mb']:.0f} | " + " | ".join(f"{tot[k]:,}" for k in tot) + " |")
    for r in first["runs"]:
        print(f"  {r['collector']}: {r}")
    print(f"budgets: first {first['seconds']:.1f} s (<= 60), RSS {max(first['rss_mb'], again['rss_mb']):.0f} MB (<= 1024), re-run {again['seconds']:.1f} s (<= 10)")


if __name__ == "__main__":
    main()
