"""JaCoCo XML coverage (`jacoco:report`, Gradle's `jacocoTestReport`).

Facts: `line_coverage_pct` and `branch_coverage_pct` from the report-level `<counter type="LINE">`
and `<counter type="BRANCH">` (covered / (covered + missed)); a report without report-level
counters sums the package-level ones. `branch_coverage_pct` is absent when the code has no branches.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, iter_xml, local, number, pct


def parse_jacoco(data: bytes, name: str) -> dict[str, Any]:
    stack: list[str] = []
    report_level: dict[str, list[int]] = {}
    package_level: dict[str, list[int]] = {}
    for event, elem in iter_xml(data, name):
        tag = local(elem.tag)
        if event == "start":
            if not stack and tag != "report":
                raise ReportError(name, "line 1", f"not a JaCoCo report: the root element is <{tag}>, not <report>")
            stack.append(tag)
            continue
        stack.pop()
        if tag == "counter" and stack:
            parent = stack[-1]
            if parent in ("report", "package"):
                kind = elem.get("type", "")
                place = f"<counter type={kind!r}> in <{parent}>"
                sums = (report_level if parent == "report" else package_level).setdefault(kind, [0, 0])
                sums[0] += int(number(elem.get("covered"), name, place, default=0))
                sums[1] += int(number(elem.get("missed"), name, place, default=0))
        elif tag in ("package", "class", "sourcefile", "method", "group"):
            elem.clear()
    counters = report_level or package_level
    line = counters.get("LINE", [0, 0])
    facts: dict[str, Any] = {"line_coverage_pct": pct(line[0], line[0] + line[1]), "lines_valid": line[0] + line[1]}
    branch = counters.get("BRANCH")
    if branch and branch[0] + branch[1]:
        facts["branch_coverage_pct"] = pct(branch[0], branch[0] + branch[1])
    return facts
