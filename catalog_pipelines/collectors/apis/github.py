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

Delivery events (`events: [pull_requests, reviews, deployments, pipeline_runs]`, docs/facts.md,
"Delivery events"), per repository, from the run's `since` (common.py `events_since`):
- pull requests: `/pulls?state=all&sort=updated&direction=desc` down to the first page reaching
  past `since` (by `updated_at`); for each pull request updated since: `/pulls/{n}` (additions,
  deletions, changed_files, merge_commit_sha), `/pulls/{n}/reviews` (every page) and the first page
  of `/pulls/{n}/commits` (first_commit_at = earliest `commit.author.date` there; the page holds
  the oldest commits). first_review_at = earliest `submitted_at` of a review not by the author
  (any state but PENDING); approved_at = earliest APPROVED review not by the author.
- reviews: each review of those pull requests in state APPROVED, CHANGES_REQUESTED or COMMENTED
  (PENDING is not submitted; DISMISSED has lost its verdict).
- deployments: `/deployments` newest first down to `since` (`created_at`); `/deployments/{id}/statuses`
  (the newest status wins: status = its `state`, finished_at = its `created_at` when final);
  production = `production_environment` is true or the environment is one of
  `production_environments` (default production, prod; case-insensitive); rollback = `task`,
  `description` or `ref` mentions "rollback" (GitHub has no rollback flag), or, with
  `rollback_on_redeploy: true`, the deployment redeploys a sha the environment had before a newer
  one (within the deployments read; off by default: a re-run of a deploy looks the same).
- pipeline runs: `/actions/runs` newest first down to `since` (`created_at`); started_at =
  `run_started_at`, finished_at = `updated_at` of a completed run, conclusion = `conclusion` (the
  `status` while not completed).

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
from catalog_pipelines.collectors.base import Event, FactDecl, Observation, Rejection
from catalog_pipelines.model import delivery_events as ev

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
    production_environments: list[str] = ["production", "prod"]
    rollback_on_redeploy: bool = False

    @model_validator(mode="after")
    def _something_to_read(self) -> GithubParams:
        if not self.repositories and not self.org:
            raise ValueError("set `repositories` (owner/repo list) or `org`")
        bad = [r for r in self.repositories if r.count("/") != 1]
        if bad:
            raise ValueError(f"repositories must be owner/repo: {bad}")
        return self


FINAL_DEPLOYMENT_STATES = ("success", "failure", "error", "inactive")
REVIEW_STATES = frozenset(ev.REVIEW_STATES)


class GithubCollector(ApiCollector):
    FACTS = FACTS
    EVENT_KINDS = (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.PIPELINE_RUNS)
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

    # -- delivery events -----------------------------------------------------------------------

    def events(self, client: ApiClient, unit: Unit, since: datetime,
               now: datetime) -> tuple[list[Event], list[Rejection]]:
        slug = unit.key
        base = f"/repos/{slug}"
        names = (SLUG, unit.data.get("full_name")), (SLUG, slug)
        out: list[Event] = []
        if ev.PULL_REQUESTS in self._events or ev.REVIEWS in self._events:
            out += self._pull_request_events(client, base, slug, targets(*names), since)
        if ev.DEPLOYMENTS in self._events:
            out += self._deployment_events(client, base, slug, targets(*names), since)
        if ev.PIPELINE_RUNS in self._events:
            for run in self._newest_first(client, f"{base}/actions/runs", "workflow_runs", since):
                started = parse_time(run.get("run_started_at")) or parse_time(run.get("created_at"))
                if started is None or started < since or run.get("id") is None:
                    continue
                completed = run.get("status") == "completed"
                out.append(Event(ev.PIPELINE_RUNS, targets(*names), f"{slug}/runs/{run['id']}", {
                    "repository": slug, "run_id": str(run["id"]), "workflow": run.get("name") or run.get("path"),
                    "branch": run.get("head_branch"),
                    "conclusion": (run.get("conclusion") if completed else run.get("status")),
                    "started_at": started, "finished_at": parse_time(run.get("updated_at")) if completed else None,
                }, f"{client.base_url}{base}/actions/runs/{run['id']}"))
        return out, []

    def _pull_request_events(self, client: ApiClient, base: str, slug: str, names: tuple, since: datetime) -> list[Event]:
        out: list[Event] = []
        for body, _ in client.pages_link(f"{base}/pulls", [("state", "all"), ("sort", "updated"),
                                                           ("direction", "desc"), ("per_page", "100")]):
            page = [p for p in body if isinstance(p, dict)] if isinstance(body, list) else []
            for listed in page:
                updated = parse_time(listed.get("updated_at")) or parse_time(listed.get("created_at"))
                if updated is None or updated < since or not isinstance(listed.get("number"), int):
                    continue
                out += self._pull_request(client, base, slug, names, listed)
            times = [t for p in page if (t := parse_time(p.get("updated_at"))) is not None]
            if not page or (times and min(times) < since):
                break
        return out

    def _pull_request(self, client: ApiClient, base: str, slug: str, names: tuple,
                      listed: dict[str, Any]) -> list[Event]:
        number = listed["number"]
        path = f"{base}/pulls/{number}"
        _, detail, _ = client.get(path)
        pr = {**listed, **(detail if isinstance(detail, dict) else {})}
        author = dig(pr, "user", "login")
        reviews = [r for body, _ in client.pages_link(f"{path}/reviews", [("per_page", "100")])
                   for r in (body if isinstance(body, list) else []) if isinstance(r, dict)]
        submitted = [(t, r) for r in reviews if (t := parse_time(r.get("submitted_at"))) is not None
                     and r.get("state") != "PENDING"]
        by_others = [(t, r) for t, r in submitted if dig(r, "user", "login") != author]
        first_commit = None
        for body, _ in client.pages_link(f"{path}/commits", [("per_page", "100")]):
            dates = [t for c in (body if isinstance(body, list) else [])
                     if (t := parse_time(dig(c, "commit", "author", "date"))) is not None]
            first_commit = min(dates) if dates else None
            break  # the first page holds the oldest commits
        out: list[Event] = []
        if ev.PULL_REQUESTS in self._events:
            out.append(Event(ev.PULL_REQUESTS, names, f"{slug}#{number}", {
                "repository": slug, "number": number, "url": pr.get("html_url"), "author": author,
                "created_at": parse_time(pr.get("created_at")), "first_commit_at": first_commit,
                "first_review_at": min((t for t, _ in by_others), default=None),
                "approved_at": min((t for t, r in by_others if r.get("state") == "APPROVED"), default=None),
                "merged_at": parse_time(pr.get("merged_at")), "closed_at": parse_time(pr.get("closed_at")),
                "additions": _int(pr.get("additions")), "deletions": _int(pr.get("deletions")),
                "changed_files": _int(pr.get("changed_files")),
                "merge_commit_sha": pr.get("merge_commit_sha") if pr.get("merged_at") else None,
                "draft": bool(pr.get("draft")),
            }, f"{client.base_url}{path}"))
        if ev.REVIEWS in self._events:
            for moment, review in submitted:
                if review.get("state") in REVIEW_STATES and review.get("id") is not None:
                    out.append(Event(ev.REVIEWS, names, f"{slug}#{number}/reviews/{review['id']}", {
                        "repository": slug, "number": number, "reviewer": dig(review, "user", "login"),
                        "submitted_at": moment, "state": review["state"],
                    }, f"{client.base_url}{path}/reviews/{review['id']}"))
        return out

    def _deployment_events(self, client: ApiClient, base: str, slug: str, names: tuple, since: datetime) -> list[Event]:
        production_names = {e.lower() for e in self.params.production_environments}
        deployments = [d for d in self._newest_first(client, f"{base}/deployments", None, since)
                       if d.get("id") is not None and (t := parse_time(d.get("created_at"))) is not None and t >= since]
        deployments.sort(key=lambda d: (parse_time(d["created_at"]), d["id"]))
        seen: dict[str, list[str]] = {}  # environment -> shas in deployment order
        out: list[Event] = []
        for d in deployments:
            statuses = [s for body, _ in client.pages_link(f"{base}/deployments/{d['id']}/statuses", [("per_page", "100")])
                        for s in (body if isinstance(body, list) else []) if isinstance(s, dict)]
            newest = max(statuses, key=lambda s: (parse_time(s.get("created_at")) or datetime.min.replace(tzinfo=since.tzinfo),
                                                  s.get("id") or 0), default=None)
            state = newest.get("state") if newest else "pending"
            environment = str(d.get("environment") or "")
            sha = d.get("sha")
            history = seen.setdefault(environment, [])
            redeploy = self.params.rollback_on_redeploy and bool(sha) and sha in history and history[-1] != sha
            words = " ".join(str(d.get(k) or "") for k in ("task", "description", "ref")).lower()
            history.append(sha)
            out.append(Event(ev.DEPLOYMENTS, names, f"{slug}/deployments/{d['id']}", {
                "repository": slug, "deployment_id": str(d["id"]), "environment": environment,
                "is_production": bool(d.get("production_environment")) or environment.lower() in production_names,
                "status": state, "commit_sha": sha, "created_at": parse_time(d.get("created_at")),
                "finished_at": parse_time(newest.get("created_at")) if newest and state in FINAL_DEPLOYMENT_STATES else None,
                "is_rollback": "rollback" in words or redeploy,
            }, f"{client.base_url}{base}/deployments/{d['id']}"))
        return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
