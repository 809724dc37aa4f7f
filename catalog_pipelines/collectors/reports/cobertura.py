"""Cobertura XML coverage (coverage.py `coverage xml`, Istanbul/nyc, gcovr, pycobertura...).

Facts: `line_coverage_pct` (lines with hits > 0 / lines), `branch_coverage_pct` (covered / valid
branches from `condition-coverage="50% (1/2)"`; absent when no line has branch data).

Figures are computed from the `<line>` elements (a line listed under several classes of one file,
as Java tools write for inner classes, counts once, covered if any listing has hits); the root's
`line-rate` / `branch-rate` are used only for a report without any `<line>` element.
"""

from __future__ import annotations

import re
from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, iter_xml, local, number, pct

_CONDITION = re.compile(r"\((\d+)/(\d+)\)")


def parse_cobertura(data: bytes, name: str) -> dict[str, Any]:
    lines: dict[tuple[str, str], bool] = {}
    branches: dict[tuple[str, str], tuple[int, int]] = {}
    root_attrs: dict[str, str] | None = None
    filename = ""
    for event, elem in iter_xml(data, name):
        tag = local(elem.tag)
        if event == "start":
            if root_attrs is None:
                if tag != "coverage":
                    raise ReportError(name, "line 1", f"not a Cobertura report: the root element is <{tag}>, not <coverage>")
                root_attrs = dict(elem.attrib)
            elif tag == "class":
                filename = elem.get("filename") or elem.get("name") or ""
            continue
        if tag == "line":
            key = (filename, elem.get("number", ""))
            hits = number(elem.get("hits"), name, f"<line number={key[1]!r}> in {filename!r}", default=0)
            lines[key] = lines.get(key, False) or hits > 0
            if elem.get("branch") == "true":
                match = _CONDITION.search(elem.get("condition-coverage") or "")
                if match:
                    covered, total = int(match.group(1)), int(match.group(2))
                    seen = branches.get(key)
                    branches[key] = (max(covered, seen[0]), max(total, seen[1])) if seen else (covered, total)
            elem.clear()
        elif tag in ("class", "package"):
            elem.clear()
    if root_attrs is None:  # pragma: no cover - expat refuses a document without an element
        raise ReportError(name, "", "empty XML document")
    facts: dict[str, Any] = {}
    if lines:
        facts["line_coverage_pct"] = pct(sum(lines.values()), len(lines))
    else:
        facts["line_coverage_pct"] = round(100.0 * float(number(root_attrs.get("line-rate"), name, "<coverage line-rate>", default=0)), 2)
    if branches:
        total = sum(t for _, t in branches.values())
        if total:
            facts["branch_coverage_pct"] = pct(sum(c for c, _ in branches.values()), total)
    elif not lines and float(number(root_attrs.get("branches-valid"), name, "<coverage branches-valid>", default=0)) > 0:
        facts["branch_coverage_pct"] = round(100.0 * float(number(root_attrs.get("branch-rate"), name, "<coverage branch-rate>", default=0)), 2)
    facts["lines_valid"] = len(lines) if lines else int(number(root_attrs.get("lines-valid"), name, "<coverage lines-valid>", default=0))
    return facts
