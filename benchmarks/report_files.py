"""Report-file collector throughput: parse + merge the synthetic org's reports, then an unchanged re-run.

    .venv/bin/python benchmarks/report_files.py                 # 5,000 repositories (~20,000 files)
    .venv/bin/python benchmarks/report_files.py --repos 500
    .venv/bin/python benchmarks/report_files.py --smoke

Writes `analytics.facts.synthetic_reports` output (pytest-shaped JUnit, coverage.py-shaped
Cobertura, CodeQL-shaped SARIF, Trivy JSON) for `--repos` repository-entities into a temporary
folder, then runs three `report_files` collector instances over it (security: sarif+trivy,
coverage: cobertura, tests: junit) from no cursor, and again from their cursors with nothing
changed. Parsing only, no storage (h-core's 200k benchmark stores). Prints a Markdown table to
paste into docs/benchmarks.md, with the machine and load.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytics.facts.synthetic_reports import synthetic_reports  # noqa: E402
from catalog_pipelines.collectors.reports.folder import ReportFolderCollector  # noqa: E402

INSTANCES = {"security": ["sarif", "trivy"], "coverage": ["cobertura"], "tests": ["junit"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=5000)
    parser.add_argument("--smoke", action="store_true", help="50 repositories: proves the benchmark runs")
    args = parser.parse_args()
    repos = 50 if args.smoke else args.repos
    teams = [f"group:default/team-{t}" for t in range(max(1, repos // 25))]
    repositories = [(f"component:default/svc-{i}", f"acme/svc-{i}", teams[i % len(teams)]) for i in range(repos)]
    day = date(2026, 12, 7)
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)

    with tempfile.TemporaryDirectory(prefix="report-files-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        files = synthetic_reports(repositories, seed=7, day=day)
        generated = time.perf_counter() - started
        total_bytes = 0
        for rel, data in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            total_bytes += len(data)
        rows = []
        for name, formats in INSTANCES.items():
            collector = ReportFolderCollector(name, root, formats)
            wall, cpu = time.perf_counter(), time.process_time()
            batches = list(collector.collect(None, now))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            observations = sum(len(b.observations) for b in batches)
            rejections = sum(len(b.rejections) for b in batches)
            cursor = batches[-1].cursor
            read = sum(len(d) for rel, d in files.items() if _format_of(rel) in formats)
            again, again_cpu = time.perf_counter(), time.process_time()
            rerun = list(collector.collect(cursor, now))
            again, again_cpu = time.perf_counter() - again, time.process_time() - again_cpu
            assert not any(b.observations for b in rerun), "an unchanged re-run read something"
            rows.append((name, "+".join(formats), observations, rejections, read / 1e6, wall, cpu, read / 1e6 / cpu if cpu else 0.0, again, again_cpu))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    print(f"{repos} repositories, {len(files)} files, {total_bytes / 1e6:.1f} MB generated in {generated:.2f} s; peak RSS {rss_mb:.0f} MB\n")
    print("| instance | formats | targets | rejections | MB read | wall s | CPU s | MB/s (CPU) | unchanged re-run: wall s | CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, formats, obs, rej, mb, wall, cpu, rate, again, again_cpu in rows:
        print(f"| {name} | {formats} | {obs} | {rej} | {mb:.1f} | {wall:.2f} | {cpu:.2f} | {rate:.1f} | {again:.2f} | {again_cpu:.2f} |")


def _format_of(rel: str) -> str:
    return {"junit.xml": "junit", "coverage.xml": "cobertura", "codeql.sarif": "sarif", "trivy.json": "trivy"}[rel.rsplit("/", 1)[-1]]


if __name__ == "__main__":
    main()
