"""Reports made during the test run by the real tools, on this repository, then parsed:
pytest `--junitxml`, coverage.py `xml` and `lcov` (checked against coverage.py's own JSON
totals), and Bandit's SARIF (`bandit[sarif]`, a dev dependency) checked against the severities
Bandit writes in each result's properties. One subprocess per tool, a few seconds in all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_pipelines.collectors.reports import parse_report

REPO = Path(__file__).resolve().parents[2]

# A tiny suite over one real module of this repository: passes, a failure, an error, a skip, an xfail.
TINY_SUITE = '''
import pytest
from catalog_pipelines.collectors.reports.scorecard import parse_scorecard
from catalog_pipelines.collectors.reports.errors import ReportError

def test_scores():
    assert parse_scorecard(b'{"score": 7, "scorecard": {}, "checks": [{"name": "A", "score": 7}]}', "s.json")["score"] == 7

def test_inconclusive():
    assert parse_scorecard(b'{"score": 5, "scorecard": {}, "checks": [{"name": "B", "score": -1}]}', "s.json")["checks"] == {"B": None}

def test_refuses_a_list():
    with pytest.raises(ReportError):
        parse_scorecard(b'[]', "s.json")

def test_fails_on_purpose():
    assert parse_scorecard(b'{"score": 1, "scorecard": {}, "checks": []}', "s.json")["score"] == 2

@pytest.fixture
def broken():
    raise RuntimeError("fixture error on purpose")

def test_errors_on_purpose(broken):
    pass

@pytest.mark.skip(reason="skipped on purpose")
def test_skipped():
    pass

@pytest.mark.xfail(reason="expected to fail", strict=True)
def test_xfail():
    assert False
'''


def _run(args: list[str], cwd: Path, ok_codes: tuple[int, ...] = (0,)) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COVERAGE_FILE": str(cwd / ".coverage")}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in ok_codes, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("fresh")
    (work / "test_tiny.py").write_text(TINY_SUITE)
    (work / "pytest.ini").write_text("[pytest]\n")  # keep the project's addopts out of the tiny run
    _run(["-m", "coverage", "run", "--branch", "--include=*/collectors/reports/scorecard.py", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=junit.xml", "test_tiny.py"], work, ok_codes=(1,))
    # `coverage xml`, `coverage lcov` and `coverage json` in one process (the same API the commands call).
    _run(["-c", "import coverage; c = coverage.Coverage(); c.load(); c.xml_report(outfile='coverage.xml'); c.lcov_report(outfile='coverage.lcov'); c.json_report(outfile='coverage.json')"], work)
    return work


def test_pytest_junitxml_of_a_tiny_suite(tiny_run):
    fmt, found = parse_report(None, tiny_run / "junit.xml")
    # 7 tests: 3 pass, 1 failure, 1 error (fixture), 1 skip, 1 xfail (pytest writes it as skipped)
    assert fmt == "junit"
    assert found == {"tests": 7, "failures": 1, "errors": 1, "skipped": 2, "flaky": 0}


def test_coverage_py_xml_and_lcov_agree_with_its_own_totals(tiny_run):
    totals = json.loads((tiny_run / "coverage.json").read_text())["totals"]
    line_pct = round(100.0 * totals["covered_lines"] / totals["num_statements"], 2)
    branch_pct = round(100.0 * totals["covered_branches"] / totals["num_branches"], 2)
    assert 0 < line_pct < 100 and 0 < branch_pct < 100  # the tiny suite leaves some of the module unrun
    for name, fmt in (("coverage.xml", "cobertura"), ("coverage.lcov", "lcov")):
        detected, found = parse_report(None, tiny_run / name)
        assert detected == fmt
        assert found["line_coverage_pct"] == line_pct, name
        assert found["branch_coverage_pct"] == branch_pct, name


def test_bandit_sarif_of_this_repository(tmp_path):
    out = tmp_path / "bandit.sarif"
    # Bandit exits 1 when it finds issues; these tests always give some (B101: assert used).
    _run(["-m", "bandit", "-q", "-f", "sarif", "-o", str(out), "-r", str(REPO / "catalog_pipelines" / "model"), str(REPO / "tests" / "collectors")], tmp_path, ok_codes=(0, 1))
    fmt, found = parse_report(None, out)
    doc = json.loads(out.read_text())
    results = doc["runs"][0]["results"]
    # Bandit's own severities: HIGH -> error, MEDIUM -> warning (left out of the file, being
    # SARIF's default: found through §3.27.10's fallback), LOW -> note.
    expected = {"error": 0, "warning": 0, "note": 0, "none": 0}
    for result in results:
        expected[{"HIGH": "error", "MEDIUM": "warning", "LOW": "note"}[result["properties"]["issue_severity"]]] += 1
    assert fmt == "sarif" and found["tools"] == ["Bandit"]
    assert found["results_total"] == len(results) > 0
    assert found["results_by_level"] == expected
