"""Trivy JSON reports (`trivy ... --format json`, SchemaVersion 2).

Facts: `vulnerabilities_by_severity` {critical, high, medium, low, unknown} (one per entry of
`Results[].Vulnerabilities`, by its `Severity`), `vulnerabilities_total`, `tools` (["Trivy"]),
`misconfigurations_failed` (`Results[].Misconfigurations` with Status FAIL) and `secrets`
(`Results[].Secrets`).
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import SEVERITIES, as_dict, as_list, expect, load_json, severity_bucket, vulnerability_facts


def parse_trivy(data: bytes, name: str) -> dict[str, Any]:
    doc = load_json(data, name, "Trivy report")
    expect(isinstance(doc, dict) and ("SchemaVersion" in doc or "Results" in doc), name, "$", "not a Trivy JSON report: no 'SchemaVersion' or 'Results'")
    schema = doc.get("SchemaVersion")
    expect(schema in (None, 2), name, "$.SchemaVersion", f"Trivy SchemaVersion {schema!r} is not supported (only 2)")
    counts = dict.fromkeys(SEVERITIES, 0)
    misconfigurations = secrets = 0
    for r, result in enumerate(as_list(doc.get("Results"), name, "$.Results")):
        place = f"$.Results[{r}]"
        result = as_dict(result, name, place)
        for v, vuln in enumerate(as_list(result.get("Vulnerabilities"), name, f"{place}.Vulnerabilities")):
            counts[severity_bucket(as_dict(vuln, name, f"{place}.Vulnerabilities[{v}]").get("Severity"))] += 1
        misconfigurations += sum(1 for m in as_list(result.get("Misconfigurations"), name, f"{place}.Misconfigurations") if isinstance(m, dict) and m.get("Status") == "FAIL")
        secrets += len(as_list(result.get("Secrets"), name, f"{place}.Secrets"))
    return {**vulnerability_facts(counts, "Trivy"), "misconfigurations_failed": misconfigurations, "secrets": secrets}
