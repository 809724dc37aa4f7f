"""LCOV tracefiles (`lcov --capture`, `coverage lcov`, Istanbul's `lcov.info`, `cargo llvm-cov --lcov`).

Facts: `line_coverage_pct` from the `DA:<line>,<hits>` records (a line of a file listed in several
records, as merged or per-test tracefiles have it, counts once, covered if any record hit it), and
`branch_coverage_pct` from `BRDA:<line>,<block>,<branch>,<taken>` (`-` = not taken), absent when
there is none. A record with no `DA` lines falls back to its `LF`/`LH` (and `BRF`/`BRH`) summary.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, pct

_KNOWN = {"TN", "SF", "VER", "FN", "FNDA", "FNF", "FNH", "FNL", "FNA", "DA", "LF", "LH", "BRDA", "BRF", "BRH", "MCDC", "MCF", "MCH", "end_of_record"}


def parse_lcov(data: bytes, name: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(name, f"byte {exc.start}", "not an LCOV tracefile: not UTF-8 text") from None
    lines: dict[tuple[str, int], bool] = {}
    branches: dict[tuple[str, str, str, str], bool] = {}
    summary_lines = [0, 0]  # found, hit from records without DA
    summary_branches = [0, 0]
    source = None
    record_da = record_brda = False
    record_summary = {"LF": 0, "LH": 0, "BRF": 0, "BRH": 0}
    records = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        key, _, value = line.partition(":")
        if key not in _KNOWN:
            raise ReportError(name, f"line {number}", f"not an LCOV tracefile: unknown record {line[:30]!r}")
        try:
            if key == "SF":
                source, record_da, record_brda = value, False, False
                record_summary = dict.fromkeys(record_summary, 0)
            elif key == "DA":
                parts = value.split(",")
                k = (source or "", int(parts[0]))
                lines[k] = lines.get(k, False) or int(parts[1]) > 0
                record_da = True
            elif key == "BRDA":
                line_no, block, branch, taken = value.split(",")[:4]
                bk = (source or "", line_no, block, branch)
                branches[bk] = branches.get(bk, False) or (taken not in ("-", "") and int(taken) > 0)
                record_brda = True
            elif key in record_summary:
                record_summary[key] = int(value)
            elif key == "end_of_record":
                records += 1
                if not record_da:
                    summary_lines[0] += record_summary["LF"]
                    summary_lines[1] += record_summary["LH"]
                if not record_brda:
                    summary_branches[0] += record_summary["BRF"]
                    summary_branches[1] += record_summary["BRH"]
                source = None
        except (ValueError, IndexError):
            raise ReportError(name, f"line {number}", f"malformed {key} record {line[:40]!r}") from None
    if not records and not lines:
        raise ReportError(name, "", "not an LCOV tracefile: no SF/DA/end_of_record records")
    found = len(lines) + summary_lines[0]
    hit = sum(lines.values()) + summary_lines[1]
    facts: dict[str, Any] = {"line_coverage_pct": pct(hit, found), "lines_valid": found}
    branch_found = len(branches) + summary_branches[0]
    if branch_found:
        facts["branch_coverage_pct"] = pct(sum(branches.values()) + summary_branches[1], branch_found)
    return facts
