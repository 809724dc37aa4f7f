"""Report files that CI jobs already produce, read into facts.

One pure parser per format, `parse_<format>(data: bytes, name: str) -> dict` (no I/O: `name` only
labels errors), registered in `FORMATS`; `detect_format(name, head)` recognises a file by its
content (and, failing that, its name); `parse_report(format | None, path)` reads a file within the
size limit and parses it. Every failure is a `ReportError` (file, place, reason; one line).
`folder.ReportFolderCollector` (collector type `report_files`) watches a folder of them.

Parsers are imported lazily: the Dagster code location imports this package.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from catalog_pipelines.collectors.base import FactDecl
from catalog_pipelines.collectors.reports.errors import DEFAULT_MAX_FILE_BYTES, ReportError, read_limited

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "FACTS",
    "FORMATS",
    "FORMAT_FACTS",
    "ReportError",
    "detect_format",
    "facts_of",
    "parse_bytes",
    "parse_report",
]

# format -> (module, what it is). The module defines parse_<format>.
FORMATS: dict[str, str] = {
    "sarif": "SARIF 2.1.0 log (any static-analysis or security scanner)",
    "trivy": "Trivy JSON report",
    "grype": "Grype JSON report",
    "osv": "OSV-Scanner JSON report",
    "cobertura": "Cobertura XML coverage",
    "lcov": "LCOV tracefile",
    "jacoco": "JaCoCo XML coverage",
    "junit": "JUnit XML test report (or TestNG testng-results.xml)",
    "scorecard": "OpenSSF Scorecard JSON result",
}

_SEVERITY_KEYS = "{critical, high, medium, low, unknown}"
_D = FactDecl
FACTS: dict[str, FactDecl] = {
    d.name: d
    for d in (
        _D("results_total", "number", "SARIF results not suppressed, at every level (SARIF §3.27.10)"),
        _D("results_by_level", "object", "SARIF results by level {error, warning, note, none}; kind other than fail counts as none"),
        _D("results_suppressed", "number", "SARIF results with an accepted suppression (not in results_total)"),
        _D("tools", "list", "names of the tools that produced the reports (SARIF tool.driver.name, Trivy, Grype, OSV-Scanner)"),
        _D("vulnerabilities_by_severity", "object", f"vulnerabilities found by severity {_SEVERITY_KEYS}"),
        _D("vulnerabilities_total", "number", "vulnerabilities found (Trivy, Grype matches, OSV-Scanner alias groups)"),
        _D("misconfigurations_failed", "number", "Trivy misconfiguration checks that failed"),
        _D("secrets", "number", "secrets Trivy found"),
        _D("line_coverage_pct", "number", "covered lines / coverable lines, in percent (0..100)"),
        _D("branch_coverage_pct", "number", "covered branches / branches, in percent (absent where the report has no branch data)"),
        _D("lines_valid", "number", "coverable lines the coverage report counts"),
        _D("tests", "number", "test cases run (counted <testcase> elements, summary attributes ignored)"),
        _D("failures", "number", "test cases that failed"),
        _D("errors", "number", "test cases that errored"),
        _D("skipped", "number", "test cases skipped"),
        _D("flaky", "number", "test cases that failed, then passed on a rerun"),
        _D("score", "number", "OpenSSF Scorecard aggregate score (0..10)"),
        _D("checks", "object", "OpenSSF Scorecard checks {name: score 0..10, null when inconclusive}"),
    )
}

FORMAT_FACTS: dict[str, tuple[str, ...]] = {
    "sarif": ("results_total", "results_by_level", "results_suppressed", "tools"),
    "trivy": ("vulnerabilities_by_severity", "vulnerabilities_total", "tools", "misconfigurations_failed", "secrets"),
    "grype": ("vulnerabilities_by_severity", "vulnerabilities_total", "tools"),
    "osv": ("vulnerabilities_by_severity", "vulnerabilities_total", "tools"),
    "cobertura": ("line_coverage_pct", "branch_coverage_pct", "lines_valid"),
    "lcov": ("line_coverage_pct", "branch_coverage_pct", "lines_valid"),
    "jacoco": ("line_coverage_pct", "branch_coverage_pct", "lines_valid"),
    "junit": ("tests", "failures", "errors", "skipped", "flaky"),
    "scorecard": ("score", "checks"),
}


def facts_of(formats: Any) -> dict[str, FactDecl]:
    """The declared facts that files of `formats` can yield, in declaration order."""
    names = {fact for fmt in formats for fact in FORMAT_FACTS[fmt]}
    return {name: decl for name, decl in FACTS.items() if name in names}


def parser(fmt: str) -> Callable[[bytes, str], dict[str, Any]]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; known: {', '.join(FORMATS)}")
    module = importlib.import_module(f"catalog_pipelines.collectors.reports.{fmt}")
    return getattr(module, f"parse_{fmt}")


# ---------------------------------------------------------------------------------------------
# Detection

HEAD_BYTES = 64 * 1024
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_JSON_RULES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("sarif", re.compile(rb'"\$schema"\s*:\s*"[^"]*sarif|"version"\s*:\s*"2\.1\.0"[\s\S]*"runs"\s*:|"runs"\s*:[\s\S]*"tool"\s*:')),
    ("trivy", re.compile(rb'"SchemaVersion"\s*:|"ArtifactName"\s*:')),
    ("grype", re.compile(rb'^\{\s*"matches"\s*:|"matches"\s*:\s*\[[\s\S]*"vulnerability"\s*:[\s\S]*"artifact"\s*:')),
    ("scorecard", re.compile(rb'"scorecard"\s*:\s*\{|"checks"\s*:\s*\[[\s\S]*"documentation"\s*:')),
    ("osv", re.compile(rb'"results"\s*:\s*\[[\s\S]*("packages"\s*:|"source"\s*:\s*\{\s*"path")|^\{\s*"results"\s*:\s*\[\s*\]')),
)
_XML_ROOTS = {"coverage": "cobertura", "report": "jacoco", "testsuites": "junit", "testsuite": "junit", "testng-results": "junit"}
_NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sarif", re.compile(r"\.sarif(\.json)?$")),
    ("lcov", re.compile(r"(^lcov.*\.info$|\.lcov$|^lcov\.info$|\.info$)")),
    ("jacoco", re.compile(r"jacoco.*\.xml$")),
    ("cobertura", re.compile(r"(cobertura.*|^coverage)\.xml$")),
    ("junit", re.compile(r"(^TEST-.*|junit.*|testng-results|test-results?.*)\.xml$")),
    ("trivy", re.compile(r"trivy.*\.json$")),
    ("grype", re.compile(r"grype.*\.json$")),
    ("osv", re.compile(r"osv.*\.json$")),
    ("scorecard", re.compile(r"scorecard.*\.json$")),
)


def detect_format(name: str, head: bytes) -> str | None:
    """The format of a file from its first bytes (`head`, e.g. 64 KiB), else from its name; None
    when no format claims it. Content wins over the name: `results.json` may be any scanner's."""
    body = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    base = os.path.basename(name).lower()
    if body[:1] == b"{":
        for fmt, rule in _JSON_RULES:
            if rule.search(body):
                return fmt
    elif body[:1] == b"<":
        # Skip the prolog, comments and DOCTYPE: the first element name decides.
        text = re.sub(rb"<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<![^>]*>", b"", body)
        match = _XML_ROOT.search(text)
        if match:
            fmt = _XML_ROOTS.get(match.group(1).decode(errors="replace").rsplit(":", 1)[-1])
            if fmt:
                return fmt
    elif re.match(rb"(TN|SF|VER):", body):
        return "lcov"
    for fmt, rule in _NAME_RULES:
        if rule.search(base):
            return fmt
    return None


# ---------------------------------------------------------------------------------------------
# Reading


def parse_bytes(fmt: str | None, data: bytes, name: str) -> tuple[str, dict[str, Any]]:
    """(format, facts) of a report's bytes; `fmt` None detects it."""
    if fmt is None:
        fmt = detect_format(name, data[:HEAD_BYTES])
        if fmt is None:
            raise ReportError(name, "", f"no report format recognised (known: {', '.join(FORMATS)})")
    try:
        return fmt, parser(fmt)(data, name)
    except ReportError:
        raise
    except RecursionError:
        raise ReportError(name, "", f"nested too deeply to read as {fmt}") from None
    except Exception as exc:  # a parser bug or an input shape nobody foresaw: still one line
        raise ReportError(name, "", f"unreadable as {fmt}: {type(exc).__name__}: {exc}") from None


def parse_report(fmt: str | None, path: str | os.PathLike[str], *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, shown: str | None = None) -> tuple[str, dict[str, Any]]:
    """(format, facts) of the report file at `path`: refused before reading when larger than
    `max_file_bytes`; `fmt` None detects the format. `shown` is the name errors give (default the path)."""
    shown = shown or str(Path(path))
    data = read_limited(path, max_file_bytes, shown=shown)
    return parse_bytes(fmt, data, shown)
