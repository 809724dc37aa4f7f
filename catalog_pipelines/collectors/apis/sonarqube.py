"""SonarQube / SonarQube Cloud (web API): quality gate status and measures, per project.

Target: `sonarqube.org/project-key` = the project key. Projects: `projects: [KEY, ...]`, else every
project the token sees (`GET /api/components/search?qualifiers=TRK`, `p`/`ps` paging;
`organization` is sent when set, as SonarQube Cloud requires).

Endpoints (per project): `GET /api/measures/component?component=KEY&metricKeys=coverage,bugs,
vulnerabilities,code_smells,duplicated_lines_density` and `GET /api/qualitygates/project_status?
projectKey=KEY`. Auth: the token as Bearer (SonarQube 10+ and Cloud; `basic_auth: true` sends it as
the Basic user name, as older servers want). No window facts: measures are the latest analysis.

Written on httpx: there is no official Python client (python-sonarqube-api is community-kept and
retries nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog_pipelines.collectors.apis.common import ApiCollector, ApiParams, Unit, dig, targets
from catalog_pipelines.collectors.apis.http import ApiClient
from catalog_pipelines.collectors.base import FactDecl, Observation, Rejection

PROJECT_KEY = "sonarqube.org/project-key"
# SonarQube metric key -> fact name.
METRICS = {
    "coverage": "coverage_pct",
    "bugs": "bugs",
    "vulnerabilities": "vulnerabilities",
    "code_smells": "code_smells",
    "duplicated_lines_density": "duplicated_lines_density",
}

FACTS = (
    FactDecl("quality_gate", "string", "quality gate status of the latest analysis: OK, WARN, ERROR (NONE: no gate)"),
    FactDecl("coverage_pct", "number", "overall line+condition coverage, percent (metric `coverage`)"),
    FactDecl("bugs", "number", "bugs (metric `bugs`)"),
    FactDecl("vulnerabilities", "number", "vulnerabilities (metric `vulnerabilities`)"),
    FactDecl("code_smells", "number", "code smells (metric `code_smells`)"),
    FactDecl("duplicated_lines_density", "number", "duplicated lines, percent (metric `duplicated_lines_density`)"),
)


class SonarqubeParams(ApiParams):
    base_url: str = "https://sonarcloud.io"
    projects: list[str] = []
    organization: str | None = None
    basic_auth: bool = False


class SonarqubeCollector(ApiCollector):
    FACTS = FACTS
    Params = SonarqubeParams
    params: SonarqubeParams

    def headers(self) -> dict[str, str]:
        if self.params.token and not self.params.basic_auth:
            return {"Authorization": f"Bearer {self.params.token}"}
        return {}

    def auth(self) -> Any:
        return (self.params.token, "") if self.params.token and self.params.basic_auth else None

    def units(self, client: ApiClient) -> list[Unit]:
        if self.params.projects:
            return [Unit(key) for key in dict.fromkeys(self.params.projects)]
        query = [("qualifiers", "TRK")]
        if self.params.organization:
            query.append(("organization", self.params.organization))
        keys: dict[str, Unit] = {}
        for page in client.pages_numbered("/api/components/search", query, "components"):
            for component in page:
                key = dig(component, "key")
                if isinstance(key, str):
                    keys.setdefault(key, Unit(key, component))
        return list(keys.values())

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        facts: dict[str, Any] = {}
        rejections: list[Rejection] = []
        _, body, _ = client.get("/api/measures/component",
                                [("component", unit.key), ("metricKeys", ",".join(METRICS))])
        for measure in dig(body, "component", "measures") or []:
            name = METRICS.get(dig(measure, "metric"))
            value = dig(measure, "value")
            if name is None or value is None:
                continue
            try:
                facts[name] = float(value) if name.endswith(("_pct", "_density")) else int(float(value))
            except (TypeError, ValueError):
                rejections.append(Rejection(f"{self.name}:{unit.key}", f"measure {measure.get('metric')}: "
                                                                       f"not a number: {value!r:.40}"))
        _, body, _ = client.get("/api/qualitygates/project_status", [("projectKey", unit.key)])
        status = dig(body, "projectStatus", "status")
        if isinstance(status, str):
            facts["quality_gate"] = status
        return Observation(targets((PROJECT_KEY, unit.key)), facts, now,
                           f"{client.base_url}/dashboard?id={unit.key}"), rejections
