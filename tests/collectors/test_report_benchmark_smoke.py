"""benchmarks/report_files.py runs at a small size (figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_report_files_benchmark_runs_at_small_size():
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "report_files.py"), "--smoke"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| security | sarif+trivy |" in result.stdout and "| tests | junit | " in result.stdout
