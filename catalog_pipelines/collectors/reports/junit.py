"""JUnit XML test reports (pytest `--junitxml`, Maven Surefire/Failsafe, jest-junit, gotestsum,
TestNG's JUnit reports, Ant...), and TestNG's own `testng-results.xml`.

Facts: `tests`, `failures`, `errors`, `skipped`, `flaky`. Only `<testcase>` elements are counted
(at any depth: `<testsuites>` may nest `<testsuite>`s); the `tests=`/`failures=` summary attributes
are never read, real tools get them wrong (gotestsum counts a failing TestMain in no suite, Surefire
counts a flaky test's reruns...).

A test case's outcome, first match wins: a `<failure>` child -> failure; `<error>` -> error;
`<skipped>` -> skipped; otherwise passed. Reruns:
- Surefire's `<flakyFailure>`/`<flakyError>` (failed, then passed on a rerun) -> passed, and counted
  in `flaky`; `<rerunFailure>`/`<rerunError>` beside a `<failure>`/`<error>` -> still one failure.
- Tools that repeat the `<testcase>` element for a rerun (gotestsum `--rerun-fails`, pytest-rerunfailures
  in some setups): a test case with the same classname, name and file as an earlier one that failed
  is that test's rerun and replaces it (a pass after a failure also counts in `flaky`). Repeated
  test cases that passed are distinct tests and all count.

In `testng-results.xml`, each `<test-method>` that is not a configuration method (`is-config`)
is a test: status FAIL -> failure, SKIP -> skipped, PASS -> passed.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, iter_xml, local

_OUTCOMES = ("failure", "error", "skipped")


def parse_junit(data: bytes, name: str) -> dict[str, Any]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "flaky": 0}
    failed_before: dict[tuple[str, str, str], str] = {}  # test cases whose last run failed/errored
    root: str | None = None
    depth_case = 0
    children: set[str] = set()
    for event, elem in iter_xml(data, name):
        tag = local(elem.tag)
        if root is None:
            if tag not in ("testsuites", "testsuite", "testng-results"):
                raise ReportError(name, "line 1", f"not a JUnit XML report: the root element is <{tag}>, not <testsuites>/<testsuite>")
            root = tag
        if root == "testng-results":
            if event == "end" and tag == "test-method":
                _testng_method(elem, counts)
                elem.clear()
            continue
        if tag == "testcase":
            if event == "start":
                depth_case += 1
                children = set()
                continue
            depth_case -= 1
            _count_case(elem, children, counts, failed_before)
            elem.clear()
        elif event == "end" and depth_case:
            children.add(tag)
        elif event == "end" and tag == "testsuite":
            elem.clear()
    counts["tests"] = max(counts["tests"], 0)
    return counts


def _outcome(children: set[str]) -> str:
    for outcome in _OUTCOMES:
        if outcome in children:
            return outcome
    return "passed"


def _count_case(elem: Any, children: set[str], counts: dict[str, int], failed_before: dict[tuple[str, str, str], str]) -> None:
    outcome = _outcome(children)
    key = (elem.get("classname", ""), elem.get("name", ""), elem.get("file", ""))
    previous = failed_before.pop(key, None)
    if previous is not None:
        # A rerun of a test case that failed: it replaces the earlier run.
        counts["tests"] -= 1
        counts[_PLURAL[previous]] -= 1
        if outcome == "passed":
            counts["flaky"] += 1
    elif outcome == "passed" and children & {"flakyFailure", "flakyError"}:
        counts["flaky"] += 1
    counts["tests"] += 1
    if outcome != "passed":
        counts[_PLURAL[outcome]] += 1
        if outcome in ("failure", "error"):
            failed_before[key] = outcome


_PLURAL = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def _testng_method(elem: Any, counts: dict[str, int]) -> None:
    if elem.get("is-config") == "true":
        return
    counts["tests"] += 1
    status = (elem.get("status") or "").upper()
    if status == "FAIL":
        counts["failures"] += 1
    elif status == "SKIP":
        counts["skipped"] += 1
