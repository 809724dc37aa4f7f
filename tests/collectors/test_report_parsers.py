"""Report parsers against the tools' own files (tests/data/reports/<format>/, see each SOURCE.md
for origin, licence and how the expected figures were hand-checked), the SARIF level rules of
§3.27.10, format detection, and the one-line errors on bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from catalog_pipelines.collectors.reports import FORMAT_FACTS, FORMATS, ReportError, detect_format, parse_bytes, parse_report

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"


def facts(fmt: str, name: str) -> dict:
    detected, found = parse_report(fmt, DATA / fmt / name)
    assert detected == fmt
    assert set(found) <= set(FORMAT_FACTS[fmt])
    return found


# ---------------------------------------------------------------------------------------------
# Real files


def test_sarif_sdk_levels_follow_kind_then_level_then_rule_default_then_warning():
    found = facts("sarif", "sdk-no-rule-default-configuration.sarif")
    assert found["results_by_level"] == {"error": 1, "warning": 1, "note": 1, "none": 2}
    assert found["results_total"] == 5
    assert found["tools"] == ["FailureLevelRoundtrippingTester"]


def test_sarif_codeql_results_take_the_level_of_their_rule_by_rule_index():
    found = facts("sarif", "codeql-action-valid.sarif")
    assert found["results_by_level"] == {"error": 0, "warning": 0, "note": 3, "none": 0}
    assert found["tools"] == ["LGTM.com", "CodeQL command-line toolchain"]


def test_sarif_written_by_trivy():
    found = facts("sarif", "trivy-alpine-310.sarif")
    assert found["results_total"] == 4
    assert found["results_by_level"]["warning"] == 4
    assert found["tools"] == ["Trivy"]


def test_trivy_counts_vulnerabilities_by_severity():
    found = facts("trivy", "debian-buster.json")
    assert found["vulnerabilities_by_severity"] == {"critical": 1, "high": 0, "medium": 0, "low": 1, "unknown": 0}
    assert found["vulnerabilities_total"] == 2
    assert found["tools"] == ["Trivy"]


def test_grype_counts_matches_by_severity():
    found = facts("grype", "grype-image.json")
    assert found["vulnerabilities_by_severity"] == {"critical": 1, "high": 0, "medium": 0, "low": 1, "unknown": 0}
    assert found["vulnerabilities_total"] == 2


def test_osv_scanner_counts_alias_groups_once_with_the_advisory_severity():
    found = facts("osv", "osv-results-a.json")
    assert found["vulnerabilities_by_severity"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 1}
    assert found["vulnerabilities_total"] == 2


def test_scorecard_score_and_checks_with_inconclusive_as_null():
    found = facts("scorecard", "scorecard-check3.json")
    assert found == {"score": 0, "checks": {"Check-Name": 0, "Check-Name2": 0, "Check-Name3": None}}


def test_cobertura_from_coverage_py_lines_and_branches():
    found = facts("cobertura", "coveragepy-y-xml-branch.xml")
    assert found["line_coverage_pct"] == 80.0
    assert found["branch_coverage_pct"] == 50.0


def test_lcov_counts_records_not_the_summaries():
    found = facts("lcov", "lcov-parse-parts.info")
    assert found["line_coverage_pct"] == 82.89  # 218 / 263
    assert found["branch_coverage_pct"] == 91.3  # 21 / 23 (the file's BRH says 22)


def test_jacoco_report_level_counters_and_no_branch_figure_without_branches():
    found = facts("jacoco", "dd-trace-java-maven-smoke.xml")  # carries JaCoCo's DOCTYPE
    assert found["line_coverage_pct"] == 33.33
    assert "branch_coverage_pct" not in found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the <testsuites> summary says tests=59 errors=1: a failing TestMain sits in a tests="0" suite
        ("gotestsum-report.xml", {"tests": 60, "failures": 13, "errors": 0, "skipped": 5, "flaky": 0}),
        # Surefire reruns: flakyFailure/flakyError without a failure is a pass (and flaky); summary says tests=1
        ("TEST-org.acme.FlakyTest.xml", {"tests": 2, "failures": 0, "errors": 0, "skipped": 0, "flaky": 1}),
        ("TEST-com.shape.CircleTest.xml", {"tests": 8, "failures": 1, "errors": 1, "skipped": 0, "flaky": 0}),
        ("jest-junit-readme-example.xml", {"tests": 1, "failures": 0, "errors": 0, "skipped": 0, "flaky": 0}),
        # TestNG's own testng-results.xml: data-provider runs count each
        ("testng-dp-result.xml", {"tests": 8, "failures": 4, "errors": 0, "skipped": 0, "flaky": 0}),
        # a failing configuration method is not a test; the root's summary says total=121 passed=121
        ("testng-failed-test-config.xml", {"tests": 1, "failures": 0, "errors": 0, "skipped": 1, "flaky": 0}),
    ],
)
def test_junit_counts_testcase_elements_not_summaries(name, expected):
    assert facts("junit", name) == expected


def test_every_fixture_is_recognised_by_content_and_every_format_has_a_real_file():
    seen = set()
    for path in sorted(DATA.glob("*/*")):
        if path.name.startswith(("LICENSE", "SOURCE")):
            continue
        head = path.read_bytes()[:65536]
        assert detect_format("report.bin", head) == path.parent.name, path  # content alone decides
        seen.add(path.parent.name)
    assert seen == set(FORMATS)


# ---------------------------------------------------------------------------------------------
# SARIF §3.27.10 cases the real files do not cover


def _sarif(results, driver_rules=(), extensions=()):
    tool = {"driver": {"name": "CodeQL", "rules": list(driver_rules)}}
    if extensions:
        tool["extensions"] = list(extensions)
    return orjson.dumps({"version": "2.1.0", "runs": [{"tool": tool, "results": results}]})


def test_sarif_rule_default_found_in_an_extension_through_tool_component():
    # CodeQL's shape: the rules live in query-pack extensions, results point at them by index.
    ext = {"name": "codeql/python-queries", "rules": [{"id": "py/a", "defaultConfiguration": {"level": "note"}}, {"id": "py/sql-injection", "defaultConfiguration": {"level": "error"}}]}
    results = [
        {"ruleId": "py/sql-injection", "rule": {"id": "py/sql-injection", "index": 1, "toolComponent": {"index": 0}}, "message": {"text": "x"}},
        {"ruleId": "py/a", "message": {"text": "found by id across extensions"}},
        {"ruleId": "py/unknown", "message": {"text": "no rule anywhere -> warning"}},
        {"ruleId": "py/sql-injection", "kind": "pass", "level": "error", "message": {"text": "kind pass -> none"}},
        {"ruleId": "py/a", "suppressions": [{"kind": "inSource"}], "message": {"text": "suppressed"}},
    ]
    _, found = parse_bytes("sarif", _sarif(results, extensions=[ext]), "codeql.sarif")
    assert found["results_by_level"] == {"error": 1, "warning": 1, "note": 1, "none": 1}
    assert found["results_suppressed"] == 1


def test_sarif_rule_index_wins_over_id_and_hierarchical_ids_fall_back_to_the_parent_rule():
    rules = [{"id": "R1", "defaultConfiguration": {"level": "error"}}, {"id": "R2", "defaultConfiguration": {"level": "note"}}]
    results = [{"ruleId": "R1", "ruleIndex": 1, "message": {"text": "a"}}, {"ruleId": "R1/sub", "message": {"text": "b"}}]
    _, found = parse_bytes("sarif", _sarif(results, driver_rules=rules), "x.sarif")
    assert found["results_by_level"] == {"error": 1, "warning": 0, "note": 1, "none": 0}


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming file, place and reason


def test_truncated_json_names_line_and_column():
    data = (DATA / "trivy" / "debian-buster.json").read_bytes()[:500]
    with pytest.raises(ReportError) as err:
        parse_bytes("trivy", data, "ci/trivy.json")
    assert err.value.file == "ci/trivy.json" and err.value.place.startswith("line ") and "truncated JSON" in err.value.reason
    assert "\n" not in str(err.value)


def test_truncated_xml_names_line_and_column():
    data = (DATA / "junit" / "gotestsum-report.xml").read_bytes()[:3000]
    with pytest.raises(ReportError) as err:
        parse_bytes("junit", data, "junit.xml")
    assert err.value.place.startswith("line ") and "truncated or malformed XML" in err.value.reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuite><testcase name="&lol3;"/></testsuite>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE coverage [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<coverage line-rate="1"><sources><source>&xxe;</source></sources></coverage>
"""
QUADRATIC_BLOWUP = b'<?xml version="1.0"?>\n<!DOCTYPE report [<!ENTITY a "' + b"x" * 10000 + b'">]>\n<report>' + b"&a;" * 1000 + b"</report>"


@pytest.mark.parametrize(("fmt", "data"), [("junit", BILLION_LAUGHS), ("cobertura", EXTERNAL_ENTITY), ("jacoco", QUADRATIC_BLOWUP)])
def test_xml_entity_attacks_are_refused_with_the_line_of_the_declaration(fmt, data):
    with pytest.raises(ReportError) as err:
        parse_bytes(fmt, data, "evil.xml")
    assert "entity declaration" in err.value.reason and err.value.place.startswith("line ")


@pytest.mark.parametrize(
    ("fmt", "fixture", "reason"),
    [
        ("trivy", "junit/gotestsum-report.xml", "the file is XML"),
        ("sarif", "trivy/debian-buster.json", "not a SARIF log"),
        ("junit", "cobertura/coveragepy-y-xml-branch.xml", "not a JUnit XML report"),
        ("cobertura", "jacoco/dd-trace-java-maven-smoke.xml", "not a Cobertura report"),
        ("lcov", "sarif/codeql-action-valid.sarif", "not an LCOV tracefile"),
        ("scorecard", "osv/osv-results-a.json", "not an OpenSSF Scorecard result"),
    ],
)
def test_wrong_format_says_what_the_file_is_not(fmt, fixture, reason):
    with pytest.raises(ReportError) as err:
        parse_report(fmt, DATA / fixture)
    assert reason in err.value.reason


def test_a_file_over_the_limit_is_refused_before_reading(tmp_path):
    big = tmp_path / "huge.sarif"
    with open(big, "wb") as handle:  # sparse: 2 GiB on paper, nothing on disk
        handle.truncate(2 * 1024**3)
    with pytest.raises(ReportError) as err:
        parse_report(None, big)
    assert "over the limit of" in err.value.reason and err.value.file == str(big)


def test_unrecognised_content_is_an_error_not_a_guess():
    with pytest.raises(ReportError) as err:
        parse_bytes(None, b'{"hello": "world"}', "notes.json")
    assert "no report format recognised" in err.value.reason


def test_junit_rerun_testcases_replace_the_failed_run_and_identical_passing_names_all_count():
    # gotestsum --rerun-fails repeats a failed test's <testcase>; jest allows two tests with one title.
    data = b"""<testsuites><testsuite name="pkg">
      <testcase classname="pkg" name="TestFlaky"><failure message="boom"/></testcase>
      <testcase classname="pkg" name="TestFlaky"/>
      <testcase classname="pkg" name="TestBroken"><failure message="boom"/></testcase>
      <testcase classname="pkg" name="TestBroken"><failure message="boom again"/></testcase>
      <testcase classname="pkg" name="works"/>
      <testcase classname="pkg" name="works"/>
      <testsuite name="nested"><testcase classname="pkg.nested" name="inner"><skipped/></testcase></testsuite>
    </testsuite></testsuites>"""
    _, found = parse_bytes("junit", data, "junit.xml")
    assert found == {"tests": 5, "failures": 1, "errors": 0, "skipped": 1, "flaky": 1}
