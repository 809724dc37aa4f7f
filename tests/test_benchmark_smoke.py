"""Every benchmark runs at a small size, so it keeps working (timings are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

SMOKE_RUNS = {
    "ingest_200k": ["--smoke"],
    "ingest_daemon_200k": ["--smoke"],
    "surveys": ["--responses", "400", "--waves", "2", "--ingest-waves", "1"],
    "scorecards": ["--size", "2000", "--store"],
    "graph": ["--size", "3000", "--queries", "5"],
    "dashboards": ["--smoke"],
    "usage": ["--events", "20000", "--days", "5", "--org-size", "2000"],
}


@pytest.mark.parametrize("name", sorted(SMOKE_RUNS))
def test_benchmark_runs_at_small_size_and_prints_figures(name, tmp_path):
    env_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *SMOKE_RUNS[name]],
        capture_output=True, text=True, cwd=REPO, timeout=400,
        env={**__import__("os").environ, "CATALOG_PIPELINES_DATA_DIR": str(env_dir), "DAGSTER_HOME": str(env_dir / "dh")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert any(ch.isdigit() for ch in result.stdout), result.stdout
