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
        self.files: dict[str, dict[str, bool]] = {}  # filename -> line number -> covered
        self.lines = self.files.setdefault("", {})
        self.filename = ""
        self.branches: dict[tuple[str, str], tuple[int, int]] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        # Called once per element: the <line> path is kept short (it is most of a report).
        if tag == "line":
            number_attr = attrs.get("number", "")
            hits = attrs.get("hits", "0")
            if hits == "0":
                self.lines.setdefault(number_attr, False)
            else:
                covered = int(hits) > 0 if hits.isdigit() else number(hits, self.name, f"<line number={number_attr!r}> in {self.filename!r}") > 0
                if covered:
                    self.lines[number_attr] = True
                else:
                    self.lines.setdefault(number_attr, False)
            if attrs.get("branch") == "true":
                match = _CONDITION.search(attrs.get("condition-coverage") or "")
                if match:
                    key = (self.filename, number_attr)
                    c, t = int(match.group(1)), int(match.group(2))
                    seen = self.branches.get(key)
                    self.branches[key] = (max(c, seen[0]), max(t, seen[1])) if seen else (c, t)
        elif tag == "class":
            self.filename = attrs.get("filename") or attrs.get("name") or ""
            self.lines = self.files.setdefault(self.filename, {})
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
    total = sum(len(lines) for lines in h.files.values())
    if total:
        facts["line_coverage_pct"] = pct(sum(sum(lines.values()) for lines in h.files.values()), total)
    else:
        facts["line_coverage_pct"] = round(100.0 * float(number(root.get("line-rate"), name, "<coverage line-rate>", default=0)), 2)
    if h.branches:
        branches = sum(t for _, t in h.branches.values())
        if branches:
            facts["branch_coverage_pct"] = pct(sum(c for c, _ in h.branches.values()), branches)
    elif not total and float(number(root.get("branches-valid"), name, "<coverage branches-valid>", default=0)) > 0:
        facts["branch_coverage_pct"] = round(100.0 * float(number(root.get("branch-rate"), name, "<coverage branch-rate>", default=0)), 2)
    facts["lines_valid"] = total if total else int(number(root.get("lines-valid"), name, "<coverage lines-valid>", default=0))
    return facts
