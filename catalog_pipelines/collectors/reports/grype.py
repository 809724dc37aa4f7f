"""Grype JSON reports (`grype ... -o json`).

Facts: `vulnerabilities_by_severity` {critical, high, medium, low, unknown} (one per entry of
`matches`, by `vulnerability.severity`; Grype's "Negligible" counts as low; `ignoredMatches` are
not counted), `vulnerabilities_total`, `tools` (["Grype"]).
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import SEVERITIES, as_dict, as_list, expect, load_json, severity_bucket, vulnerability_facts


def parse_grype(data: bytes, name: str) -> dict[str, Any]:
    doc = load_json(data, name, "Grype report")
    expect(isinstance(doc, dict) and "matches" in doc, name, "$", "not a Grype JSON report: no 'matches' array")
    counts = dict.fromkeys(SEVERITIES, 0)
    for m, match in enumerate(as_list(doc.get("matches"), name, "$.matches")):
        vuln = as_dict(as_dict(match, name, f"$.matches[{m}]").get("vulnerability"), name, f"$.matches[{m}].vulnerability")
        counts[severity_bucket(vuln.get("severity"))] += 1
    return vulnerability_facts(counts, "Grype")
