"""Jira Cloud (REST API v3): open issues, open bugs, the oldest open issue and issues created in
the window, per project (optionally narrowed by component and/or label), through JQL search.

Targets: `jira/project-key` = `KEY` for a whole project. A narrowed scope (config `scopes:
[{project, component, label}]`, matching entities annotated with `jira/component` and/or
`jira/label` besides `jira/project-key`) is named `KEY;jira/component=NAME;jira/label=NAME` (only
the parts set, in that order): the mapping matches it against the entity's three annotations.

Search API (`search_api`): `jql` = `GET /rest/api/3/search/jql` (`nextPageToken`/`isLast`, the API
Atlassian moved to in 2024/25), `legacy` = `GET /rest/api/3/search` (`startAt`/`maxResults`/`total`,
still served by Jira Data Center and older clouds), `auto` (default) = try `jql` once, and use
`legacy` when the server answers 404/405/410 for it. Queries (fields `created,issuetype` only):
`project = "KEY" [AND component = "C"] [AND labels = "L"] AND statusCategory != Done ORDER BY
created ASC` and `… AND created >= -{lookback_days}d`. Auth: `email` + `token` (Basic, Jira Cloud),
or `token` alone (Bearer, a Data Center personal access token). Jira answers 429 with
`Retry-After` when rate limited: honoured by the client.

Written on httpx, not the `jira` package: it targets `/rest/api/2/search` with startAt paging
(no `nextPageToken`), and retries 429s with its own sleeping loop (no injectable clock, no deadline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from catalog_pipelines.collectors.apis.common import ApiCollector, ApiParams, Unit, dig, in_window, parse_time
from catalog_pipelines.collectors.apis.http import ApiClient, ApiError
from catalog_pipelines.collectors.base import FactDecl, Observation, Rejection, Target

PROJECT_KEY = "jira/project-key"
SEARCH_JQL = "/rest/api/3/search/jql"
SEARCH_LEGACY = "/rest/api/3/search"

FACTS = (
    FactDecl("open_issues", "number", "issues whose status category is not Done"),
    FactDecl("open_bugs", "number", "open issues whose type is one of `bug_types` (default: Bug)"),
    FactDecl("oldest_open_issue_days", "number", "age in days of the oldest open issue (absent when none is open)"),
    FactDecl("issues_created", "number", "issues created in the look-back window"),
)


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    component: str | None = None
    label: str | None = None

    def target_value(self) -> str:
        parts = [self.project]
        if self.component:
            parts.append(f"jira/component={self.component}")
        if self.label:
            parts.append(f"jira/label={self.label}")
        return ";".join(parts)

    def jql(self) -> str:
        clauses = [f"project = {_quote(self.project)}"]
        if self.component:
            clauses.append(f"component = {_quote(self.component)}")
        if self.label:
            clauses.append(f"labels = {_quote(self.label)}")
        return " AND ".join(clauses)


class JiraParams(ApiParams):
    email: str | None = None
    projects: list[str] = []
    scopes: list[Scope] = []
    search_api: Literal["auto", "jql", "legacy"] = "auto"
    bug_types: list[str] = ["Bug"]
    max_issues: int = 10000

    @model_validator(mode="after")
    def _something_to_read(self) -> JiraParams:
        if not self.projects and not self.scopes:
            raise ValueError("set `projects` (project keys) or `scopes`")
        return self


class JiraCollector(ApiCollector):
    FACTS = FACTS
    Params = JiraParams
    params: JiraParams

    def __init__(self, name: str, params: JiraParams, **client_options: Any) -> None:
        super().__init__(name, params, **client_options)
        self.search_api = params.search_api  # "auto" turns into the detected one on first use

    def headers(self) -> dict[str, str]:
        if self.params.token and not self.params.email:
            return {"Authorization": f"Bearer {self.params.token}"}
        return {}

    def auth(self) -> Any:
        if self.params.token and self.params.email:
            return (self.params.email, self.params.token)
        return None

    def units(self, client: ApiClient) -> list[Unit]:
        scopes = [Scope(project=key) for key in self.params.projects] + list(self.params.scopes)
        return [Unit(s.target_value(), {"scope": s}) for s in scopes]

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        scope: Scope = unit.data["scope"]
        rejections: list[Rejection] = []
        bug_types = {t.lower() for t in self.params.bug_types}
        open_issues = self._search(client, f"{scope.jql()} AND statusCategory != Done ORDER BY created ASC",
                                   unit.key, rejections)
        created = self._search(client, f"{scope.jql()} AND created >= -{self.params.lookback_days}d",
                               unit.key, rejections)
        facts: dict[str, Any] = {
            "open_issues": len(open_issues),
            "open_bugs": sum(str(dig(i, "fields", "issuetype", "name") or "").lower() in bug_types for i in open_issues),
            "issues_created": sum(in_window(dig(i, "fields", "created"), window_start, now) for i in created),
        }
        times = [t for i in open_issues if (t := parse_time(dig(i, "fields", "created"))) is not None]
        if times:
            facts["oldest_open_issue_days"] = round(max(0.0, (now - min(times)).total_seconds() / 86400), 2)
        return Observation((Target(PROJECT_KEY, unit.key),), facts, now,
                           f"{client.base_url}{SEARCH_JQL if self.search_api == 'jql' else SEARCH_LEGACY}"), rejections

    def _search(self, client: ApiClient, jql: str, key: str, rejections: list[Rejection]) -> list[dict[str, Any]]:
        params = [("jql", jql), ("fields", "created,issuetype")]
        if self.search_api == "auto":
            try:
                issues = self._collect(client.pages_token(SEARCH_JQL, params, "issues"))
                self.search_api = "jql"
                return self._capped(issues, key, rejections)
            except ApiError as exc:
                if exc.status not in (404, 405, 410):
                    raise
                self.search_api = "legacy"
        pages = (client.pages_token(SEARCH_JQL, params, "issues") if self.search_api == "jql"
                 else client.pages_start_at(SEARCH_LEGACY, params, "issues"))
        return self._capped(self._collect(pages), key, rejections)

    def _collect(self, pages: Any) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        for page in pages:
            issues += [i for i in page if isinstance(i, dict)]
            if len(issues) > self.params.max_issues:
                break
        return issues

    def _capped(self, issues: list[dict[str, Any]], key: str, rejections: list[Rejection]) -> list[dict[str, Any]]:
        if len(issues) > self.params.max_issues:
            rejections.append(Rejection(f"{self.name}:{key}", f"more than max_issues={self.params.max_issues} "
                                                              f"issues match; counted the first {self.params.max_issues}"))
            return issues[: self.params.max_issues]
        return issues


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
