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

from catalog_pipelines.collectors.reports.errors import ReportError, XmlHandler, local, parse_xml

_OUTCOMES = ("failure", "error", "skipped")


class _JUnit(XmlHandler):
    def __init__(self, name: str):
        self.name = name
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "flaky": 0}
        self.failed_before: dict[tuple[str, str, str], str] = {}  # test cases whose last run failed/errored
        self.root: str | None = None
        self.case: tuple[str, str, str] | None = None
        self.children: set[str] = set()

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.case is not None:
            self.children.add(local(tag))
        elif tag == "testcase":
            self.case = (attrs.get("classname", ""), attrs.get("name", ""), attrs.get("file", ""))
            self.children = set()
        elif tag == "test-method" and self.root == "testng-results":
            _testng_method(attrs, self.counts)
        elif self.root is None:
            root = local(tag)
            if root not in ("testsuites", "testsuite", "testng-results"):
                raise ReportError(self.name, "line 1", f"not a JUnit XML report: the root element is <{tag}>, not <testsuites>/<testsuite>")
            self.root = root

    def end(self, tag: str) -> None:
        if tag == "testcase" and self.case is not None:
            _count_case(self.case, self.children, self.counts, self.failed_before)
            self.case = None


def parse_junit(data: bytes, name: str) -> dict[str, Any]:
    h = _JUnit(name)
    parse_xml(data, name, h)
    return h.counts


def _outcome(children: set[str]) -> str:
    for outcome in _OUTCOMES:
        if outcome in children:
            return outcome
    return "passed"


def _count_case(key: tuple[str, str, str], children: set[str], counts: dict[str, int], failed_before: dict[tuple[str, str, str], str]) -> None:
    outcome = _outcome(children)
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


def _testng_method(attrs: Any, counts: dict[str, int]) -> None:
    if attrs.get("is-config") == "true":
        return
    counts["tests"] += 1
    status = (attrs.get("status") or "").upper()
    if status == "FAIL":
        counts["failures"] += 1
    elif status == "SKIP":
        counts["skipped"] += 1
