"""Cobertura XML coverage (coverage.py `coverage xml`, Istanbul/nyc, gcovr, pycobertura...).

Facts: `line_coverage_pct` (lines with hits > 0 / lines), `branch_coverage_pct` (covered / valid
branches from `condition-coverage="50% (1/2)"`; absent when no line has branch data), `lines_valid`.

Figures are computed from the `<line>` elements (a line listed under several classes of one file,
as Java tools write for inner classes, counts once, covered if any listing has hits); the root's
`line-rate` / `branch-rate` are used only for a report without any `<line>` element.
"""

from __future__ import annotations

import re
from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, XmlHandler, local, number, parse_xml, pct

_CONDITION = re.compile(r"\((\d+)/(\d+)\)")


class _Cobertura(XmlHandler):
    wants_end = False
    def __init__(self, name: str):
        self.name = name
        self.root: dict[str, str] | None = None
        self.filename = ""
        self.lines: dict[tuple[str, str], bool] = {}
        self.branches: dict[tuple[str, str], tuple[int, int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "line":
            key = (self.filename, attrs.get("number", ""))
            hits = attrs.get("hits") or "0"
            covered = int(hits) > 0 if hits.isdigit() else number(hits, self.name, f"<line number={key[1]!r}> in {self.filename!r}", default=0) > 0
            lines = self.lines
            if covered or key not in lines:
                lines[key] = covered
            if attrs.get("branch") == "true":
                match = _CONDITION.search(attrs.get("condition-coverage") or "")
                if match:
                    c, t = int(match.group(1)), int(match.group(2))
                    seen = self.branches.get(key)
                    self.branches[key] = (max(c, seen[0]), max(t, seen[1])) if seen else (c, t)
        elif tag == "class":
            self.filename = attrs.get("filename") or attrs.get("name") or ""
        elif self.root is None:
            if local(tag) != "coverage":
                raise ReportError(self.name, "line 1", f"not a Cobertura report: the root element is <{tag}>, not <coverage>")
            self.root = attrs


def parse_cobertura(data: bytes, name: str) -> dict[str, Any]:
    h = _Cobertura(name)
    parse_xml(data, name, h)
    root = h.root
    if root is None:  # pragma: no cover - expat refuses a document without an element
        raise ReportError(name, "", "empty XML document")
    facts: dict[str, Any] = {}
    if h.lines:
        facts["line_coverage_pct"] = pct(sum(h.lines.values()), len(h.lines))
    else:
        facts["line_coverage_pct"] = round(100.0 * float(number(root.get("line-rate"), name, "<coverage line-rate>", default=0)), 2)
    if h.branches:
        total = sum(t for _, t in h.branches.values())
        if total:
            facts["branch_coverage_pct"] = pct(sum(c for c, _ in h.branches.values()), total)
    elif not h.lines and float(number(root.get("branches-valid"), name, "<coverage branches-valid>", default=0)) > 0:
        facts["branch_coverage_pct"] = round(100.0 * float(number(root.get("branch-rate"), name, "<coverage branch-rate>", default=0)), 2)
    facts["lines_valid"] = len(h.lines) if h.lines else int(number(root.get("lines-valid"), name, "<coverage lines-valid>", default=0))
    return facts
