"""JaCoCo XML coverage (`jacoco:report`, Gradle's `jacocoTestReport`).

Facts: `line_coverage_pct` and `branch_coverage_pct` from the report-level `<counter type="LINE">`
and `<counter type="BRANCH">` (covered / (covered + missed)); a report without report-level
counters sums the package-level ones. `branch_coverage_pct` is absent when the code has no
branches. `lines_valid`: covered + missed lines.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, XmlHandler, local, number, parse_xml, pct


class _JaCoCo(XmlHandler):
    def __init__(self, name: str):
        self.name = name
        self.stack: list[str] = []
        self.report_level: dict[str, list[int]] = {}
        self.package_level: dict[str, list[int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        if not stack and local(tag) != "report":
            raise ReportError(self.name, "line 1", f"not a JaCoCo report: the root element is <{tag}>, not <report>")
        if tag == "counter" and stack[-1] in ("report", "package"):
            parent = stack[-1]
            kind = attrs.get("type", "")
            place = f"<counter type={kind!r}> in <{parent}>"
            sums = (self.report_level if parent == "report" else self.package_level).setdefault(kind, [0, 0])
            sums[0] += int(number(attrs.get("covered"), self.name, place, default=0))
            sums[1] += int(number(attrs.get("missed"), self.name, place, default=0))
        stack.append(tag)

    def end(self, tag: str) -> None:
        self.stack.pop()


def parse_jacoco(data: bytes, name: str) -> dict[str, Any]:
    h = _JaCoCo(name)
    parse_xml(data, name, h)
    counters = h.report_level or h.package_level
    line = counters.get("LINE", [0, 0])
    facts: dict[str, Any] = {"line_coverage_pct": pct(line[0], line[0] + line[1]), "lines_valid": line[0] + line[1]}
    branch = counters.get("BRANCH")
    if branch and branch[0] + branch[1]:
        facts["branch_coverage_pct"] = pct(branch[0], branch[0] + branch[1])
    return facts
