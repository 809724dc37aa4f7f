"""GitHub (REST API, version 2022-11-28): Actions workflow runs, pull requests, deployments, branch
protection, Dependabot alerts and code-scanning alerts, per repository.

Target: `github.com/project-slug` = `owner/repo`. Repositories: `repositories: [owner/repo, ...]`
and/or `org: NAME` (every repository of the organisation, `GET /orgs/{org}/repos`; archived ones
only with `include_archived: true`).

Endpoints (per repository): `GET /repos/{o}/{r}` (default branch, when not listed from the org),
`/actions/runs` (newest first, paging stops at the window start), `/pulls?state=open`, `/deployments` (newest first; paging
stops at the window start), `/branches/{default}/protection` (404 = not protected),
`/dependabot/alerts?state=open`, `/code-scanning/alerts?state=open`. Paging: `Link: rel="next"`.
A repository where Dependabot or code scanning is off (403/404) gets no such fact and a rejection
saying why; the other facts still land.

Written on httpx, not PyGithub: PyGithub retries through urllib3's `Retry` on its own clock (no
injectable sleep, no total deadline, no `max_retry_after` cut-off for a resumable run) and follows
pagination lazily without exposing the `Link` header to a run-level deadline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import model_validator

from catalog_pipelines.collectors.apis.common import (
    ApiCollector, ApiParams, Unit, count_by, dig, duration, in_window, median, parse_time, targets,
)
from catalog_pipelines.collectors.apis.http import ApiClient, ApiError
from catalog_pipelines.collectors.base import FactDecl, Observation, Rejection

SLUG = "github.com/project-slug"
DEPENDABOT_LEVELS = ("critical", "high", "medium", "low")
CODE_SCANNING_LEVELS = ("critical", "high", "medium", "low", "error", "warning", "note")
# Conclusions that say nothing about whether the code works.
NEUTRAL_CONCLUSIONS = ("skipped", "neutral", "stale", "cancelled")
WORKFLOW_FACTS = {"workflow_runs", "workflow_success_rate", "last_workflow_conclusion", "median_workflow_duration_seconds"}

FACTS = (
    FactDecl("workflow_runs", "number", "GitHub Actions workflow runs created in the look-back window (all branches)"),
    FactDecl("workflow_success_rate", "number",
             "share (0..1) of completed default-branch runs in the window that concluded `success` "
             "(skipped, neutral, stale and cancelled runs not counted)"),
    FactDecl("last_workflow_conclusion", "string", "conclusion of the newest completed default-branch run in the window"),
    FactDecl("median_workflow_duration_seconds", "number",
             "median of run_started_at..updated_at of completed default-branch runs in the window"),
    FactDecl("open_pull_requests", "number", "pull requests open now"),
    FactDecl("default_branch_protected", "boolean", "the default branch has branch protection"),
    FactDecl("deployments", "number", "deployments created in the look-back window"),
    FactDecl("dependabot_alerts_open", "object", "open Dependabot alerts by advisory severity {critical, high, medium, low}"),
    FactDecl("code_scanning_alerts_open", "object",
             "open code-scanning alerts by security severity {critical, high, medium, low} or, for "
             "rules without one, by rule severity {error, warning, note}"),
)


class GithubParams(ApiParams):
    base_url: str = "https://api.github.com"
    repositories: list[str] = []
    org: str | None = None
    include_archived: bool = False
    api_version: str = "2022-11-28"

    @model_validator(mode="after")
    def _something_to_read(self) -> GithubParams:
        if not self.repositories and not self.org:
            raise ValueError("set `repositories` (owner/repo list) or `org`")
        bad = [r for r in self.repositories if r.count("/") != 1]
        if bad:
            raise ValueError(f"repositories must be owner/repo: {bad}")
        return self


class GithubCollector(ApiCollector):
    FACTS = FACTS
    Params = GithubParams
    params: GithubParams

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json, application/json", "X-GitHub-Api-Version": self.params.api_version}
        if self.params.token:
            headers["Authorization"] = f"Bearer {self.params.token}"
        return headers

    def units(self, client: ApiClient) -> list[Unit]:
        units = {slug.lower(): Unit(slug) for slug in self.params.repositories}
        if self.params.org:
            for body, _ in client.pages_link(f"/orgs/{quote(self.params.org)}/repos",
                                             [("type", "all"), ("per_page", "100")]):
                for repo in body if isinstance(body, list) else []:
                    name = repo.get("full_name") if isinstance(repo, dict) else None
                    if isinstance(name, str) and (self.params.include_archived or not repo.get("archived")):
                        units.setdefault(name.lower(), Unit(name, repo))
        return list(units.values())

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        slug = unit.key
        base = f"/repos/{slug}"
        where = f"{self.name}:{slug}"
        rejections: list[Rejection] = []
        repo = unit.data
        if not repo.get("default_branch"):
            _, repo, _ = client.get(base)
            repo = repo if isinstance(repo, dict) else {}
        default_branch = repo.get("default_branch")
        facts: dict[str, Any] = {}
        wanted = self._facts  # an endpoint whose facts are all deselected is not called

        if wanted.keys() & WORKFLOW_FACTS:
            self._workflow_facts(client, base, default_branch, window_start, now, facts)
        if "open_pull_requests" in wanted:
            facts["open_pull_requests"] = sum(
                len(body) if isinstance(body, list) else 0
                for body, _ in client.pages_link(f"{base}/pulls", [("state", "open"), ("per_page", "100")]))
        if "deployments" in wanted:
            facts["deployments"] = sum(in_window(d.get("created_at"), window_start, now)
                                       for d in self._newest_first(client, f"{base}/deployments", None, window_start))
        if default_branch and "default_branch_protected" in wanted:
            status, _, _ = client.get(f"{base}/branches/{quote(str(default_branch), safe='')}/protection",
                                      allow=(403, 404))
            if status == 403:
                rejections.append(Rejection(where, "branch protection: HTTP 403 (the token may not read it)"))
            else:
                facts["default_branch_protected"] = status < 400
        if "dependabot_alerts_open" in wanted:
            alerts = self._optional_list(client, f"{base}/dependabot/alerts", where, "Dependabot alerts", rejections)
            if alerts is not None:
                facts["dependabot_alerts_open"] = count_by(
                    alerts, lambda a: dig(a, "security_advisory", "severity") or dig(a, "security_vulnerability", "severity"),
                    DEPENDABOT_LEVELS)
        if "code_scanning_alerts_open" in wanted:
            alerts = self._optional_list(client, f"{base}/code-scanning/alerts", where, "code-scanning alerts", rejections)
            if alerts is not None:
                facts["code_scanning_alerts_open"] = count_by(
                    alerts, lambda a: dig(a, "rule", "security_severity_level") or dig(a, "rule", "severity"),
                    CODE_SCANNING_LEVELS)

        # The API's own name first (canonical after a rename or in other case), then the name asked for.
        observation = Observation(targets((SLUG, repo.get("full_name")), (SLUG, slug)), facts, now,
                                  f"{client.base_url}{base}")
        return observation, rejections

    def _workflow_facts(self, client: ApiClient, base: str, default_branch: Any, window_start: datetime,
                        now: datetime, facts: dict[str, Any]) -> None:
        runs = self._newest_first(client, f"{base}/actions/runs", "workflow_runs", window_start)
        runs = [r for r in runs if in_window(r.get("created_at"), window_start, now)]
        facts["workflow_runs"] = len(runs)
        on_default = [r for r in runs if r.get("status") == "completed"
                      and (default_branch is None or r.get("head_branch") == default_branch)]
        judged = [r for r in on_default if r.get("conclusion") not in NEUTRAL_CONCLUSIONS and r.get("conclusion")]
        if judged:
            facts["workflow_success_rate"] = sum(r.get("conclusion") == "success" for r in judged) / len(judged)
        if on_default:
            newest = max(on_default, key=lambda r: parse_time(r.get("created_at")) or window_start)
            if newest.get("conclusion"):
                facts["last_workflow_conclusion"] = newest["conclusion"]
        durations = [d for r in on_default
                     if (d := duration(r.get("run_started_at") or r.get("created_at"), r.get("updated_at"))) is not None]
        if (m := median(durations)) is not None:
            facts["median_workflow_duration_seconds"] = m

    def _newest_first(self, client: ApiClient, path: str, key: str | None,
                      window_start: datetime) -> list[dict[str, Any]]:
        """Items of a newest-first listing down to the window start: paging stops at the first page
        reaching past it (the API's `created` filter takes search syntax its description types as a
        date-time, so the window is cut here)."""
        items: list[dict[str, Any]] = []
        for body, _ in client.pages_link(path, [("per_page", "100")]):
            page = (body or {}).get(key) if key else body
            page = [i for i in page if isinstance(i, dict)] if isinstance(page, list) else []
            items += page
            times = [t for i in page if (t := parse_time(i.get("created_at"))) is not None]
            if not page or (times and min(times) < window_start):
                break
        return items

    def _optional_list(self, client: ApiClient, path: str, where: str, what: str,
                       rejections: list[Rejection]) -> list[Any] | None:
        """Open alerts of a feature that may be off for the repository (403/404: no fact)."""
        items: list[Any] = []
        try:
            for body, _ in client.pages_link(path, [("state", "open"), ("per_page", "100")]):
                items += [a for a in body if isinstance(a, dict)] if isinstance(body, list) else []
        except ApiError as exc:
            if exc.status in (403, 404):
                rejections.append(Rejection(where, f"{what}: HTTP {exc.status} (off for this repository, or the "
                                                   f"token may not read them)"))
                return None
            raise
        return items
