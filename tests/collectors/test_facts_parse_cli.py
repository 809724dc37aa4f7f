"""`catalog-pipelines facts parse FORMAT FILE [--json]`: the facts of one file, no catalog needed;
bad input is one line (or one JSON object) naming file, place and reason, and exit status 1."""

from __future__ import annotations

import json

from click.testing import CliRunner

from catalog_pipelines.cli import main
from test_report_parsers import BILLION_LAUGHS, DATA


def invoke(*args: str):
    return CliRunner().invoke(main, ["facts", "parse", *args])


def test_parse_prints_the_facts_as_json():
    result = invoke("junit", str(DATA / "junit" / "gotestsum-report.xml"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"tests": 60, "failures": 13, "errors": 0, "skipped": 5, "flaky": 0}


def test_parse_prints_a_table_for_people():
    result = invoke("scorecard", str(DATA / "scorecard" / "scorecard-check3.json"))
    assert result.exit_code == 0
    assert "checks" in result.output and "Check-Name3 None" in result.output


def test_auto_recognises_the_format():
    result = invoke("auto", str(DATA / "osv" / "osv-results-a.json"), "--json")
    assert json.loads(result.output)["format"] == "osv"


def test_bad_input_is_one_line_with_file_place_and_reason(tmp_path):
    bad = tmp_path / "trivy.json"
    bad.write_bytes((DATA / "trivy" / "debian-buster.json").read_bytes()[:400])
    result = invoke("trivy", str(bad))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: line ") and "truncated JSON" in lines[0]


def test_bad_input_with_json_is_a_json_error(tmp_path):
    bomb = tmp_path / "junit.xml"
    bomb.write_bytes(BILLION_LAUGHS)
    result = invoke("junit", str(bomb), "--json")
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["file"] == str(bomb) and error["place"] == "line 3" and "entity declaration" in error["reason"]


def test_wrong_format_and_missing_file_fail_cleanly(tmp_path):
    result = invoke("sarif", str(DATA / "junit" / "gotestsum-report.xml"))
    assert result.exit_code == 1 and "not a SARIF log" in result.output
    result = invoke("lcov", str(tmp_path / "nope.info"))
    assert result.exit_code == 1 and "cannot read" in result.output
