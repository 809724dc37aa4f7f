"""GitLab (REST API v4): pipelines, merge requests and deployments, per project.

Targets: `gitlab.com/project-slug` = `group/sub/project` (path_with_namespace), then
`gitlab.com/project-id` = the numeric id. Projects: `projects: [path or id, ...]` and/or
`group: PATH` (`GET /groups/{id}/projects?include_subgroups=true`, archived ones only with
`include_archived: true`).

Endpoints (per project): `GET /api/v4/projects/{id}` (when not listed from a group),
`/pipelines?updated_after=WINDOW_START` (window; duration = updated_at - created_at of finished
pipelines, the list carries no `duration`), `/merge_requests?state=opened`,
`/deployments?updated_after=WINDOW_START&order_by=updated_at`. Paging: `Link: rel="next"` (keyset or offset), else
`x-next-page`. Auth: `PRIVATE-TOKEN`.

Delivery events (`events: [pull_requests, deployments, pipeline_runs]`, docs/facts.md, "Delivery
events"), per project, from the run's `since`: merge requests as pull requests
(`/merge_requests?state=all&updated_after=SINCE&order_by=updated_at&sort=desc`: number = `iid`,
author = `author.username`, created/merged/closed_at, draft, merge_commit_sha (or
squash_commit_sha); the list carries no diff size and no review or approval times, so additions,
deletions, changed_files, first_commit_at, first_review_at and approved_at stay empty: reading
them costs one to three requests per merge request (`/approvals`, `/notes`, `/commits`), not done
here); deployments (`/deployments?updated_after=SINCE&order_by=updated_at&sort=desc`: status as
GitLab says it (created, running, success, failed, canceled, blocked), finished_at =
`deployable.finished_at`, else `updated_at` of a finished one; production = environment name in
`production_environments`); pipelines as pipeline runs (`/pipelines?updated_after=SINCE`:
workflow = `name` (GitLab 16+), else `source`; branch = `ref`; conclusion = `status` in the same
words (failed → failure, canceled → cancelled, running → in_progress); finished_at = `updated_at`
once finished). GitLab has no review events here.

Written on httpx, not python-gitlab: python-gitlab sleeps on 429 itself (`obey_rate_limit`, no
injectable clock, no total deadline, no cut-off for long waits), so a run could not stop and resume
from its cursor; the endpoints used are three plain GETs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import model_validator

from catalog_pipelines.collectors.apis.common import (
    ApiCollector, ApiParams, Unit, duration, in_window, iso, median, parse_time, targets,
)
from catalog_pipelines.collectors.apis.http import ApiClient
from catalog_pipelines.collectors.base import Event, FactDecl, Observation, Rejection
from catalog_pipelines.model import delivery_events as ev

SLUG = "gitlab.com/project-slug"
PROJECT_ID = "gitlab.com/project-id"
FINISHED = ("success", "failed", "canceled", "skipped")
JUDGED = ("success", "failed")

FACTS = (
    FactDecl("pipelines", "number", "pipelines created in the look-back window (all refs)"),
    FactDecl("pipeline_success_rate", "number",
             "share (0..1) of finished default-branch pipelines in the window with status `success` "
             "(among success and failed)"),
    FactDecl("last_pipeline_status", "string", "status of the newest default-branch pipeline in the window"),
    FactDecl("median_pipeline_duration_seconds", "number",
             "median of created_at..updated_at of finished default-branch pipelines in the window"),
    FactDecl("open_merge_requests", "number", "merge requests open now"),
    FactDecl("deployments", "number", "deployments created in the look-back window"),
)


class GitlabParams(ApiParams):
    base_url: str = "https://gitlab.com"
    projects: list[str | int] = []
    group: str | None = None
    include_archived: bool = False
    production_environments: list[str] = ["production", "prod"]

    @model_validator(mode="after")
    def _something_to_read(self) -> GitlabParams:
        if not self.projects and not self.group:
            raise ValueError("set `projects` (path or id list) or `group`")
        return self


FINAL_DEPLOYMENTS = ("success", "failed", "canceled")
# GitLab's status words in the event frames' vocabulary (GitHub's: docs/facts.md, "Delivery events").
DEPLOYMENT_STATUS = {"success": "success", "failed": "failure", "canceled": "inactive", "running": "in_progress",
                     "created": "queued", "blocked": "queued"}
PIPELINE_CONCLUSION = {"success": "success", "failed": "failure", "canceled": "cancelled", "skipped": "skipped",
                       "running": "in_progress", "pending": "queued", "created": "queued"}


class GitlabCollector(ApiCollector):
    FACTS = FACTS
    EVENT_KINDS = (ev.PULL_REQUESTS, ev.DEPLOYMENTS, ev.PIPELINE_RUNS)
    Params = GitlabParams
    params: GitlabParams

    def headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.params.token} if self.params.token else {}

    def units(self, client: ApiClient) -> list[Unit]:
        units = {str(p).lower(): Unit(str(p)) for p in self.params.projects}
        if self.params.group:
            query = [("include_subgroups", "true"), ("per_page", "100"), ("order_by", "id"), ("sort", "asc")]
            if not self.params.include_archived:
                query.append(("archived", "false"))
            for body, _ in client.pages_link(f"/api/v4/groups/{quote(self.params.group, safe='')}/projects", query):
                for project in body if isinstance(body, list) else []:
                    path = project.get("path_with_namespace") if isinstance(project, dict) else None
                    if isinstance(path, str):
                        units.setdefault(path.lower(), Unit(path, project))
        return list(units.values())

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        project = self._project(client, unit)
        ident = project.get("id", unit.key)
        base = f"/api/v4/projects/{quote(str(ident), safe='')}"
        default_branch = project.get("default_branch")
        since = [("updated_after", iso(window_start)), ("per_page", "100")]
        facts: dict[str, Any] = {}

        pipelines = [p for body, _ in client.pages_link(f"{base}/pipelines", since)
                     for p in (body if isinstance(body, list) else []) if isinstance(p, dict)]
        pipelines = [p for p in pipelines if in_window(p.get("created_at"), window_start, now)]
        facts["pipelines"] = len(pipelines)
        on_default = [p for p in pipelines if default_branch is None or p.get("ref") == default_branch]
        judged = [p for p in on_default if p.get("status") in JUDGED]
        if judged:
            facts["pipeline_success_rate"] = sum(p["status"] == "success" for p in judged) / len(judged)
        if on_default:
            newest = max(on_default, key=lambda p: parse_time(p.get("created_at")) or window_start)
            if isinstance(newest.get("status"), str):
                facts["last_pipeline_status"] = newest["status"]
        durations = [d for p in on_default if p.get("status") in FINISHED
                     if (d := duration(p.get("created_at"), p.get("updated_at"))) is not None]
        if (m := median(durations)) is not None:
            facts["median_pipeline_duration_seconds"] = m

        facts["open_merge_requests"] = sum(
            len(body) if isinstance(body, list) else 0
            for body, _ in client.pages_link(f"{base}/merge_requests", [("state", "opened"), ("per_page", "100")]))

        # GitLab accepts updated_after on deployments only together with order_by=updated_at.
        deployments = [d for body, _ in client.pages_link(f"{base}/deployments",
                                                          [*since, ("order_by", "updated_at"), ("sort", "desc")])
                       for d in (body if isinstance(body, list) else []) if isinstance(d, dict)]
        facts["deployments"] = sum(in_window(d.get("created_at"), window_start, now) for d in deployments)

        slug = project.get("path_with_namespace") or (None if str(unit.key).isdigit() else unit.key)
        observation = Observation(targets((SLUG, slug), (PROJECT_ID, project.get("id"))), facts, now,
                                  f"{client.base_url}{base}")
        return observation, []

    def _project(self, client: ApiClient, unit: Unit) -> dict[str, Any]:
        """The unit's project (read once: facts and events share it)."""
        if "id" not in unit.data:
            _, project, _ = client.get(f"/api/v4/projects/{quote(unit.key, safe='')}")
            unit.data.update(project if isinstance(project, dict) else {"id": unit.key})
        return unit.data

    # -- delivery events -----------------------------------------------------------------------

    def events(self, client: ApiClient, unit: Unit, since: datetime,
               now: datetime) -> tuple[list[Event], list[Rejection]]:
        project = self._project(client, unit)
        ident = project.get("id", unit.key)
        base = f"/api/v4/projects/{quote(str(ident), safe='')}"
        slug = project.get("path_with_namespace") or str(unit.key)
        names = targets((SLUG, project.get("path_with_namespace") or (None if str(unit.key).isdigit() else unit.key)),
                        (PROJECT_ID, project.get("id")))
        since_q = [("updated_after", iso(since)), ("per_page", "100")]
        out: list[Event] = []
        if ev.PULL_REQUESTS in self._events:
            query = [("state", "all"), *since_q, ("order_by", "updated_at"), ("sort", "desc")]
            for body, _ in client.pages_link(f"{base}/merge_requests", query):
                for mr in body if isinstance(body, list) else []:
                    if not isinstance(mr, dict) or not isinstance(mr.get("iid"), int):
                        continue
                    merged = parse_time(mr.get("merged_at"))
                    out.append(Event(ev.PULL_REQUESTS, names, f"{slug}!{mr['iid']}", {
                        "repository": slug, "number": mr["iid"], "url": mr.get("web_url"),
                        "author": (mr.get("author") or {}).get("username") if isinstance(mr.get("author"), dict) else None,
                        "created_at": parse_time(mr.get("created_at")), "first_commit_at": None,
                        "first_review_at": None, "approved_at": None, "merged_at": merged,
                        "closed_at": parse_time(mr.get("closed_at")) or (merged if mr.get("state") == "merged" else None),
                        "additions": None, "deletions": None, "changed_files": None,
                        "merge_commit_sha": (mr.get("merge_commit_sha") or mr.get("squash_commit_sha")) if merged else None,
                        "draft": bool(mr.get("draft") or mr.get("work_in_progress")),
                    }, str(mr.get("web_url") or f"{client.base_url}{base}/merge_requests/{mr['iid']}")))
        if ev.DEPLOYMENTS in self._events:
            production = {e.lower() for e in self.params.production_environments}
            query = [*since_q, ("order_by", "updated_at"), ("sort", "desc")]
            for body, _ in client.pages_link(f"{base}/deployments", query):
                for d in body if isinstance(body, list) else []:
                    if not isinstance(d, dict) or d.get("id") is None:
                        continue
                    environment = str((d.get("environment") or {}).get("name") or "") if isinstance(d.get("environment"), dict) else ""
                    status = d.get("status")
                    finished = parse_time((d.get("deployable") or {}).get("finished_at")) if isinstance(d.get("deployable"), dict) else None
                    if finished is None and status in FINAL_DEPLOYMENTS:
                        finished = parse_time(d.get("updated_at"))
                    out.append(Event(ev.DEPLOYMENTS, names, f"{slug}/deployments/{d['id']}", {
                        "repository": slug, "deployment_id": str(d["id"]), "environment": environment,
                        "is_production": environment.lower() in production,
                        "status": DEPLOYMENT_STATUS.get(str(status), status),
                        "commit_sha": d.get("sha"), "created_at": parse_time(d.get("created_at")),
                        "finished_at": finished if status in FINAL_DEPLOYMENTS else None,
                        "is_rollback": "rollback" in str(d.get("ref") or "").lower(),
                    }, f"{client.base_url}{base}/deployments/{d['id']}"))
        if ev.PIPELINE_RUNS in self._events:
            for body, _ in client.pages_link(f"{base}/pipelines", since_q):
                for p in body if isinstance(body, list) else []:
                    if not isinstance(p, dict) or p.get("id") is None:
                        continue
                    status = p.get("status")
                    out.append(Event(ev.PIPELINE_RUNS, names, f"{slug}/pipelines/{p['id']}", {
                        "repository": slug, "run_id": str(p["id"]), "workflow": p.get("name") or p.get("source"),
                        "branch": p.get("ref"), "conclusion": PIPELINE_CONCLUSION.get(str(status), status),
                        "started_at": parse_time(p.get("created_at")),
                        "finished_at": parse_time(p.get("updated_at")) if status in FINISHED else None,
                    }, str(p.get("web_url") or f"{client.base_url}{base}/pipelines/{p['id']}")))
        return out, []
