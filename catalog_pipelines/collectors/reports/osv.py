"""OSV-Scanner JSON reports (`osv-scanner --format json`).

Facts: `vulnerabilities_by_severity` {critical, high, medium, low, unknown}, `vulnerabilities_total`,
`tools` (["OSV-Scanner"]).

OSV-Scanner lists, per package, every advisory and `groups` of advisory ids that are aliases of
one another (GO-2021-0053 = GHSA-c3h9-896r-86jm = CVE-2021-3121). One group is one vulnerability,
as OSV-Scanner's own table output counts them. A group's severity is its `max_severity` (a CVSS
score, written by OSV-Scanner 1.7+), else the highest `database_specific.severity` word among its
advisories (GitHub's CRITICAL/HIGH/MODERATE/LOW), else unknown. A package without `groups` (older
versions) counts each advisory once.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import SEVERITIES, as_dict, as_list, cvss_bucket, expect, load_json, severity_bucket, vulnerability_facts

_RANK = {s: i for i, s in enumerate(SEVERITIES)}  # lower is worse


def _advisory_bucket(vuln: dict[str, Any]) -> str:
    specific = vuln.get("database_specific")
    return severity_bucket(specific.get("severity")) if isinstance(specific, dict) else "unknown"


def parse_osv(data: bytes, name: str) -> dict[str, Any]:
    doc = load_json(data, name, "OSV-Scanner report")
    expect(isinstance(doc, dict) and "results" in doc, name, "$", "not an OSV-Scanner JSON report: no 'results' array")
    counts = dict.fromkeys(SEVERITIES, 0)
    for r, result in enumerate(as_list(doc.get("results"), name, "$.results")):
        result = as_dict(result, name, f"$.results[{r}]")
        for p, package in enumerate(as_list(result.get("packages"), name, f"$.results[{r}].packages")):
            place = f"$.results[{r}].packages[{p}]"
            package = as_dict(package, name, place)
            advisories = {v.get("id"): v for v in as_list(package.get("vulnerabilities"), name, f"{place}.vulnerabilities") if isinstance(v, dict)}
            groups = as_list(package.get("groups"), name, f"{place}.groups")
            if not groups:
                for vuln in advisories.values():
                    counts[_advisory_bucket(vuln)] += 1
                continue
            for g, group in enumerate(groups):
                group = as_dict(group, name, f"{place}.groups[{g}]")
                bucket = "unknown"
                max_severity = group.get("max_severity")
                if isinstance(max_severity, (int, float, str)) and str(max_severity).strip():
                    try:
                        bucket = cvss_bucket(float(max_severity))
                    except ValueError:
                        bucket = "unknown"
                if bucket == "unknown":
                    ids = as_list(group.get("ids"), name, f"{place}.groups[{g}].ids")
                    words = [_advisory_bucket(advisories[i]) for i in ids if i in advisories]
                    bucket = min(words, key=_RANK.__getitem__, default="unknown")
                counts[bucket] += 1
    return vulnerability_facts(counts, "OSV-Scanner")
