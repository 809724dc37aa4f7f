"""benchmarks/collectors_prism.py keeps working at a tiny size (figures printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_collectors_benchmark_runs_at_tiny_size_and_the_429_run_keeps_its_facts(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "collectors_prism.py"), "--smoke"],
                            capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "CATALOG_PIPELINES_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {r["collector"] for r in rows if r["bench"] == "replay"} == {"github", "pagerduty", "jira", "sonarqube"}
    (faulty,) = [r for r in rows if r["bench"] == "429"]
    assert faulty["facts_unchanged"] is True
    (long,) = [r for r in rows if r["bench"] == "429-long"]
    assert long["stored_before_stop"] + long["resumed_units"] == long["units_total"]
