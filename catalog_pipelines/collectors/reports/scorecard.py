"""OpenSSF Scorecard JSON results (`scorecard --format json`, and the REST API's result).

Facts: `score` (the aggregate, 0..10), `checks` {check name: score 0..10, or null where Scorecard
says -1: inconclusive / not applicable}.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, as_dict, as_list, expect, load_json, number


def parse_scorecard(data: bytes, name: str) -> dict[str, Any]:
    doc = load_json(data, name, "Scorecard result")
    expect(isinstance(doc, dict) and "checks" in doc and ("scorecard" in doc or "score" in doc), name, "$", "not an OpenSSF Scorecard result: no 'checks' and 'score'")
    score = number(doc.get("score"), name, "$.score")
    expect(-1 <= score <= 10, name, "$.score", f"score {score} is outside 0..10")
    checks: dict[str, float | None] = {}
    for c, check in enumerate(as_list(doc.get("checks"), name, "$.checks")):
        check = as_dict(check, name, f"$.checks[{c}]")
        check_name = check.get("name")
        if not isinstance(check_name, str) or not check_name:
            raise ReportError(name, f"$.checks[{c}].name", "a check has no name")
        value = number(check.get("score"), name, f"$.checks[{c}].score")
        expect(-1 <= value <= 10, name, f"$.checks[{c}].score", f"score {value} is outside -1..10")
        checks[check_name] = None if value < 0 else value
    return {"score": None if score < 0 else score, "checks": checks}
