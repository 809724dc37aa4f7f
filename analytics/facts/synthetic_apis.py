"""Vendor-shaped API responses for the synthetic organisation's annotated entities, so the demo runs
the real API collectors end to end (served by `catalog_pipelines.web.replay.serve_replay`).

`vendor_pages(entities, as_of=…)` returns `{(vendor, path, query): body}` for every entity that
carries a vendor annotation:
- `github.com/project-slug`: the org's repository listing, the repository, Actions workflow runs,
  open pull requests, deployments, default-branch protection (absent = 404, not protected), open
  Dependabot and code-scanning alerts;
- `pagerduty.com/service-id`: the services listing and each service (with an Events API
  integration), on-calls (some services have nobody at level 1), incidents (open and resolved);
- `jira/project-key`: the JQL searches the Jira collector sends (open issues, issues created in
  the window), for both `/search/jql` and the legacy `/search`;
- `sonarqube.org/project-key`: measures, quality gate status, the project listing.
Bodies follow the vendors' documented shapes (the fields the collectors read, and the usual
neighbours). Everything is a function of `(seed, entity, as_of)`: the same day gives the same
pages; a team-independent per-entity "quality" in [0, 1) drives failure rates and backlog sizes.

With `delivery=` (the event frames of `analytics.delivery.synthetic.synthetic_delivery_events`,
whose people are already tokens, served as logins) the pages also carry those events the way the
vendors serve them, replacing the random ones above: GitHub pull requests (`state=all` listing,
detail, reviews, commits), deployments with their statuses, workflow runs; GitLab projects, merge
requests, deployments, pipelines; PagerDuty services (incl. services no entity carries) and
incidents. `delivery_pages(frames)` builds those alone; the round trip frames → pages → collectors
→ stored events gives the frames back (tests/collectors/test_delivery_events_roundtrip.py), except
what a vendor cannot say (docs/facts.md, "Delivery events").

Queries are written as the collectors send them (after `canonical_query` drops paging
parameters); the JQL strings mirror `JiraCollector` (a round-trip test checks they match). Pure: no
I/O, imports nothing of the project (analytics may import the model only).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

GITHUB = "github.com/project-slug"
GITLAB = "gitlab.com/project-slug"
PAGERDUTY = "pagerduty.com/service-id"
JIRA = "jira/project-key"
SONAR = "sonarqube.org/project-key"
SONAR_METRICS = "coverage,bugs,vulnerabilities,code_smells,duplicated_lines_density"


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jira_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _annotations(entity: Mapping[str, Any]) -> Mapping[str, str]:
    annotations = entity.get("annotations")
    if annotations is None:
        annotations = (entity.get("metadata") or {}).get("annotations")
    return annotations or {}


def _ref(entity: Mapping[str, Any]) -> str:
    ref = entity.get("ref")
    if ref:
        return str(ref)
    meta = entity.get("metadata") or {}
    return f"{str(entity.get('kind', 'component')).lower()}:{meta.get('namespace', 'default')}/{meta.get('name')}"


def vendor_pages(entities: Iterable[Mapping[str, Any]], *, as_of: date, seed: int = 7,
                 lookback_days: int = 30, delivery: Mapping[str, Any] | None = None) -> dict[tuple[str, str, str], Any]:
    """Responses for the entities' annotations (an entity: `{"ref", "annotations"}` or a catalog
    entity document with `metadata.annotations`). `as_of`: the demo's day; events lie before noon
    UTC of that day."""
    now = datetime.combine(as_of, time(12, 0), tzinfo=timezone.utc)
    pages: dict[tuple[str, str, str], Any] = {}
    repos_by_owner: dict[str, list[dict[str, Any]]] = {}
    services: list[dict[str, Any]] = []
    oncalls: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    sonar_projects: list[dict[str, Any]] = []
    for entity in sorted(entities, key=_ref):
        ref, annotations = _ref(entity), _annotations(entity)
        quality = _rng(seed, ref, "quality").random()
        if slug := annotations.get(GITHUB):
            repo = _github(pages, slug, quality, _rng(seed, ref, "github", as_of.isoformat()), now, lookback_days)
            repos_by_owner.setdefault(slug.split("/")[0], []).append(repo)
        if service_id := annotations.get(PAGERDUTY):
            _pagerduty(service_id, ref, quality, _rng(seed, ref, "pagerduty", as_of.isoformat()), now, lookback_days,
                       services, oncalls, incidents)
        if key := annotations.get(JIRA):
            _jira(pages, key, quality, _rng(seed, ref, "jira", as_of.isoformat()), now, lookback_days)
        if key := annotations.get(SONAR):
            _sonar(pages, key, quality, _rng(seed, ref, "sonar", as_of.isoformat()))
            sonar_projects.append({"key": key, "qualifier": "TRK", "name": key, "project": key})
    for owner, repos in repos_by_owner.items():
        pages[("github", f"/orgs/{owner}/repos", "type=all")] = repos
    if services:
        pages[("pagerduty", "/services", "include[]=integrations")] = {"services": services}
        for service in services:
            pages[("pagerduty", f"/services/{service['id']}", "include[]=integrations")] = {"service": service}
        pages[("pagerduty", "/oncalls", "")] = {"oncalls": oncalls}
        pages[("pagerduty", "/incidents", "")] = {"incidents": sorted(incidents, key=lambda i: i["created_at"])}
    if sonar_projects:
        pages[("sonarqube", "/api/components/search", "qualifiers=TRK")] = {"components": sonar_projects}
    if delivery is not None:
        extra = delivery_pages(delivery, [("github", r["full_name"]) for repos in repos_by_owner.values() for r in repos])
        known = {s["id"] for s in services}
        for key, body in extra.items():
            if key[:2] == ("pagerduty", "/services"):
                listed = {s["id"]: s for s in services}
                for service in body["services"]:
                    listed.setdefault(service["id"], service)
                pages[key] = {"services": sorted(listed.values(), key=lambda s: s["id"])}
                for service in body["services"]:
                    if service["id"] not in known:
                        pages[("pagerduty", f"/services/{service['id']}", "include[]=integrations")] = {"service": service}
            else:
                pages[key] = body
    return pages


# -- delivery events as the vendors serve them --------------------------------------------------

# The contract's status words (GitHub's) as GitLab says them.
_GITLAB_DEPLOYMENT = {"success": "success", "failure": "failed", "error": "failed", "inactive": "canceled",
                      "in_progress": "running", "queued": "created", "pending": "created"}
_GITLAB_PIPELINE = {"success": "success", "failure": "failed", "cancelled": "canceled", "skipped": "skipped",
                    "in_progress": "running"}


def _t(value: Any) -> str | None:
    """A frame time as the vendors write it (`_records` formatted them already); None when missing."""
    if value is None or value != value:  # NaT/NaN compare unequal to themselves
        return None
    if isinstance(value, str):
        return value
    return _iso(value.to_pydatetime() if hasattr(value, "to_pydatetime") else value)


def _id(value: Any) -> Any:
    """A frame id as the vendor's JSON holds it: a number when it is one."""
    text = str(value)
    return int(text) if text.isdigit() else text


def _records(frame: Any) -> list[dict[str, Any]]:
    """The frame's rows as dicts, its times formatted once per column (not once per value)."""
    if frame is None or len(frame) == 0:
        return []
    frame = frame.copy()
    for column in frame.columns:
        if str(frame[column].dtype).startswith("datetime64"):
            text = frame[column].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            frame[column] = text.astype(object).where(frame[column].notna(), None)
    return frame.to_dict("records")


def _gitlab_path(path: str) -> str:
    from urllib.parse import quote

    return f"/api/v4/projects/{quote(path, safe='')}"


def _project_id(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:4], "little") % 10**8 + 1


def delivery_pages(frames: Mapping[str, Any], repositories: Iterable[tuple[str, str]] = ()) -> dict[tuple[str, str, str], Any]:
    """The vendor pages that hold the events of `frames` (`{kind: frame}` of the delivery event
    contract): GitHub for rows whose `source` is github, GitLab for gitlab, PagerDuty for
    incidents. Lists are served newest first where the collectors page newest first.
    `repositories` (`(source, repository)`): repositories that get (empty) pages even without events."""
    pages: dict[tuple[str, str, str], Any] = {}
    reviews_of: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for n, r in enumerate(_records(frames.get("reviews"))):
        reviews_of.setdefault((r["repository"], int(r["number"])), []).append({**r, "id": n + 1})
    by_repo: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {key: {} for key in repositories}
    for kind in ("pull_requests", "deployments", "pipeline_runs"):
        for row in _records(frames.get(kind)):
            by_repo.setdefault((row["source"], row["repository"]), {}).setdefault(kind, []).append(row)
    for (source, repo), kinds in sorted(by_repo.items()):
        if source == "gitlab":
            _gitlab_delivery(pages, repo, kinds)
        else:
            _github_delivery(pages, repo, kinds, reviews_of)
    incidents = _records(frames.get("incidents"))
    if incidents:
        services = sorted({str(i["service_id"]) for i in incidents})
        pages[("pagerduty", "/services", "include[]=integrations")] = {"services": [
            {"id": sid, "type": "service", "name": sid, "summary": sid, "status": "active", "integrations": []}
            for sid in services]}
        pages[("pagerduty", "/incidents", "")] = {"incidents": sorted((
            {"id": str(i["incident_id"]), "type": "incident", "status": "resolved" if _t(i["resolved_at"]) else "triggered",
             "urgency": i["urgency"], "created_at": _t(i["started_at"]), "resolved_at": _t(i["resolved_at"]),
             "last_status_change_at": _t(i["resolved_at"]) or _t(i["started_at"]),
             "service": {"id": str(i["service_id"]), "type": "service_reference"},
             "html_url": f"https://acme.pagerduty.com/incidents/{i['incident_id']}"}
            for i in incidents), key=lambda i: (i["created_at"], i["id"]))}
    return pages


def _github_delivery(pages: dict, repo: str, kinds: dict[str, list[dict[str, Any]]],
                     reviews_of: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    base = f"/repos/{repo}"
    listed, open_now = [], []
    for pr in kinds.get("pull_requests", []):
        number = int(pr["number"])
        reviews = reviews_of.get((repo, number), [])
        times = [t for t in (_t(pr[c]) for c in ("created_at", "first_review_at", "approved_at", "merged_at", "closed_at")) if t]
        times += [t for r in reviews if (t := _t(r["submitted_at"]))]
        state = "closed" if _t(pr["closed_at"]) or _t(pr["merged_at"]) else "open"
        item = {"number": number, "state": state, "title": f"Change {number}", "html_url": pr["url"],
                "user": {"login": pr["author"], "type": "User"}, "draft": bool(pr["draft"]),
                "created_at": _t(pr["created_at"]), "updated_at": max(times), "closed_at": _t(pr["closed_at"]),
                "merged_at": _t(pr["merged_at"]), "merge_commit_sha": pr["merge_commit_sha"]}
        listed.append(item)
        if state == "open":
            open_now.append(item)
        pages[("github", f"{base}/pulls/{number}", "")] = {
            **item, "merged": item["merged_at"] is not None, "additions": _int(pr["additions"]),
            "deletions": _int(pr["deletions"]), "changed_files": _int(pr["changed_files"])}
        pages[("github", f"{base}/pulls/{number}/reviews", "")] = [
            {"id": r["id"], "user": {"login": r["reviewer"], "type": "User"}, "state": r["state"],
             "submitted_at": _t(r["submitted_at"]), "body": ""} for r in reviews]
        first = _t(pr["first_commit_at"])
        pages[("github", f"{base}/pulls/{number}/commits", "")] = [] if first is None else [
            {"sha": hashlib.sha1(f"{repo}#{number}".encode()).hexdigest(),
             "commit": {"author": {"name": "dev", "date": first}, "committer": {"name": "dev", "date": first},
                        "message": f"Change {number}"}}]
    listed.sort(key=lambda p: (p["updated_at"], p["number"]), reverse=True)
    pages[("github", f"{base}/pulls", "direction=desc&sort=updated&state=all")] = listed
    pages[("github", f"{base}/pulls", "state=open")] = open_now
    deployments = []
    for d in kinds.get("deployments", []):
        ident = _id(d["deployment_id"])
        deployments.append({"id": ident, "sha": d["commit_sha"], "ref": "main", "environment": d["environment"],
                            "production_environment": bool(d["is_production"]),
                            "task": "deploy:rollback" if d["is_rollback"] else "deploy",
                            "description": "rollback" if d["is_rollback"] else "", "created_at": _t(d["created_at"]),
                            "updated_at": _t(d["finished_at"]) or _t(d["created_at"])})
        statuses = [{"id": 1, "state": "in_progress", "created_at": _t(d["created_at"]), "environment": d["environment"]}]
        if _t(d["finished_at"]):
            statuses.insert(0, {"id": 2, "state": d["status"], "created_at": _t(d["finished_at"]), "environment": d["environment"]})
        pages[("github", f"{base}/deployments/{ident}/statuses", "")] = statuses
    deployments.sort(key=lambda d: (d["created_at"], str(d["id"])), reverse=True)
    pages[("github", f"{base}/deployments", "")] = deployments
    runs = []
    for r in kinds.get("pipeline_runs", []):
        done = _t(r["finished_at"])
        runs.append({"id": _id(r["run_id"]), "name": r["workflow"], "head_branch": r["branch"], "event": "push",
                     "status": "completed" if done else "in_progress", "conclusion": r["conclusion"] if done else None,
                     "created_at": _t(r["started_at"]), "run_started_at": _t(r["started_at"]),
                     "updated_at": done or _t(r["started_at"])})
    runs.sort(key=lambda r: (r["created_at"], str(r["id"])), reverse=True)
    pages[("github", f"{base}/actions/runs", "")] = {"total_count": len(runs), "workflow_runs": runs}


def _gitlab_delivery(pages: dict, repo: str, kinds: dict[str, list[dict[str, Any]]]) -> None:
    ident = _project_id(repo)
    project = {"id": ident, "path_with_namespace": repo, "name": repo.rsplit("/", 1)[-1], "default_branch": "main",
               "web_url": f"https://gitlab.acme.example/{repo}", "archived": False}
    pages[("gitlab", _gitlab_path(repo), "")] = project
    base = f"/api/v4/projects/{ident}"
    requests, open_now = [], []
    for pr in kinds.get("pull_requests", []):
        merged, closed = _t(pr["merged_at"]), _t(pr["closed_at"])
        state = "merged" if merged else ("closed" if closed else "opened")
        times = [t for t in (_t(pr[c]) for c in ("created_at", "merged_at", "closed_at")) if t]
        item = {"id": ident * 1000 + int(pr["number"]), "iid": int(pr["number"]), "project_id": ident, "state": state,
                "title": f"Change {pr['number']}", "web_url": pr["url"], "author": {"username": pr["author"]},
                "created_at": _t(pr["created_at"]), "updated_at": max(times), "merged_at": merged,
                "closed_at": None if merged else closed, "draft": bool(pr["draft"]),
                "merge_commit_sha": pr["merge_commit_sha"] if merged else None}
        requests.append(item)
        if state == "opened":
            open_now.append(item)
    requests.sort(key=lambda m: (m["updated_at"], m["iid"]), reverse=True)
    pages[("gitlab", f"{base}/merge_requests", "")] = requests
    pages[("gitlab", f"{base}/merge_requests", "state=opened")] = open_now
    deployments = []
    for d in kinds.get("deployments", []):
        done = _t(d["finished_at"])
        status = _GITLAB_DEPLOYMENT.get(str(d["status"]), "success") if done else "running"
        deployments.append({"id": _id(d["deployment_id"]), "iid": len(deployments) + 1,
                            "ref": "rollback" if d["is_rollback"] else "main", "sha": d["commit_sha"],
                            "status": status, "created_at": _t(d["created_at"]), "updated_at": done or _t(d["created_at"]),
                            "environment": {"id": 1, "name": d["environment"]},
                            "deployable": {"status": status, "finished_at": done}})
    deployments.sort(key=lambda d: (d["updated_at"], str(d["id"])), reverse=True)
    pages[("gitlab", f"{base}/deployments", "")] = deployments
    pipelines = []
    for r in kinds.get("pipeline_runs", []):
        done = _t(r["finished_at"])
        pipelines.append({"id": _id(r["run_id"]), "iid": len(pipelines) + 1, "project_id": ident, "sha": "",
                          "ref": r["branch"], "status": _GITLAB_PIPELINE.get(str(r["conclusion"]), "failed") if done else "running",
                          "source": "push", "name": r["workflow"], "created_at": _t(r["started_at"]),
                          "updated_at": done or _t(r["started_at"]), "web_url": f"https://gitlab.acme.example/{repo}/-/pipelines/{r['run_id']}"})
    pipelines.sort(key=lambda p: (p["updated_at"], str(p["id"])), reverse=True)
    pages[("gitlab", f"{base}/pipelines", "")] = pipelines


def _int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def _github(pages: dict, slug: str, quality: float, rng: random.Random, now: datetime, lookback: int) -> dict[str, Any]:
    owner, name = slug.split("/", 1)
    repo = {"id": rng.randrange(10**6, 10**8), "name": name, "full_name": slug, "private": True,
            "owner": {"login": owner, "type": "Organization"}, "default_branch": "main", "archived": False,
            "html_url": f"https://github.com/{slug}"}
    base = f"/repos/{slug}"
    pages[("github", base, "")] = repo
    runs = []
    for index in range(rng.randrange(0, 5 * lookback)):
        created = now - timedelta(minutes=rng.randrange(5, lookback * 24 * 60 + 3 * 24 * 60))
        branch = "main" if rng.random() < 0.6 else f"feature/{rng.randrange(100)}"
        conclusion = "success" if rng.random() < 0.55 + 0.44 * quality else rng.choice(["failure", "failure", "cancelled"])
        started = created + timedelta(seconds=rng.randrange(2, 60))
        runs.append({"id": rng.randrange(10**9), "name": "CI", "head_branch": branch, "event": "push",
                     "status": "completed", "conclusion": conclusion, "run_number": index + 1,
                     "created_at": _iso(created), "run_started_at": _iso(started),
                     "updated_at": _iso(started + timedelta(seconds=rng.randrange(60, 1800)))})
    runs.sort(key=lambda r: r["created_at"], reverse=True)
    pages[("github", f"{base}/actions/runs", "")] = {"total_count": len(runs), "workflow_runs": runs}
    pages[("github", f"{base}/pulls", "state=open")] = [
        {"number": n + 1, "state": "open", "title": f"Change {n + 1}", "draft": False,
         "created_at": _iso(now - timedelta(days=rng.randrange(0, 40)))}
        for n in range(rng.randrange(0, 2 + int(8 * (1 - quality))))]
    pages[("github", f"{base}/deployments", "")] = sorted(
        ({"id": rng.randrange(10**9), "environment": "production", "ref": "main",
          "created_at": _iso(now - timedelta(hours=rng.randrange(1, (lookback + 10) * 24)))}
         for _ in range(rng.randrange(0, 20))), key=lambda d: d["created_at"], reverse=True)
    if rng.random() < 0.4 + 0.6 * quality:
        pages[("github", f"{base}/branches/main/protection", "")] = {
            "url": f"https://api.github.com{base}/branches/main/protection",
            "required_pull_request_reviews": {"required_approving_review_count": 1},
            "enforce_admins": {"enabled": True}}
    severities = ["critical", "high", "medium", "low"]
    weights = [0.05, 0.2, 0.45, 0.3]
    pages[("github", f"{base}/dependabot/alerts", "state=open")] = [
        {"number": n + 1, "state": "open",
         "security_advisory": {"severity": sev}, "security_vulnerability": {"severity": sev},
         "created_at": _iso(now - timedelta(days=rng.randrange(0, 90)))}
        for n, sev in enumerate(rng.choices(severities, weights, k=rng.randrange(0, 1 + int(12 * (1 - quality)))))]
    pages[("github", f"{base}/code-scanning/alerts", "state=open")] = [
        {"number": n + 1, "state": "open",
         "rule": {"id": f"rule-{n}", "severity": "error" if sev in ("critical", "high") else "warning",
                  "security_severity_level": sev},
         "tool": {"name": "CodeQL"}, "created_at": _iso(now - timedelta(days=rng.randrange(0, 90)))}
        for n, sev in enumerate(rng.choices(severities, weights, k=rng.randrange(0, 1 + int(6 * (1 - quality)))))]
    return repo


def _pagerduty(service_id: str, ref: str, quality: float, rng: random.Random, now: datetime, lookback: int,
               services: list, oncalls: list, incidents: list) -> None:
    policy = f"EP{service_id[-5:]}"
    has_policy = rng.random() < 0.9
    service = {"id": service_id, "type": "service", "summary": ref, "name": ref.split("/")[-1],
               "status": "active" if rng.random() < 0.85 else rng.choice(["warning", "critical"]),
               "html_url": f"https://acme.pagerduty.com/service-directory/{service_id}",
               "integrations": [{"id": f"PI{service_id[-5:]}", "type": "events_api_v2_inbound_integration",
                                 "integration_key": hashlib.sha256(service_id.encode()).hexdigest()[:32]}]}
    if has_policy:
        service["escalation_policy"] = {"id": policy, "type": "escalation_policy_reference"}
    services.append(service)
    if has_policy and rng.random() < 0.5 + 0.5 * quality:
        for person in range(rng.randrange(1, 3)):
            oncalls.append({"escalation_policy": {"id": policy, "type": "escalation_policy_reference"},
                            "escalation_level": 1, "user": {"id": f"PU{service_id[-4:]}{person}", "type": "user_reference"},
                            "start": _iso(now - timedelta(days=1)), "end": _iso(now + timedelta(days=6))})
    for n in range(rng.randrange(0, 2 + int(10 * (1 - quality)))):
        created = now - timedelta(hours=rng.randrange(1, lookback * 24))
        status = "resolved" if rng.random() < 0.85 else rng.choice(["triggered", "acknowledged"])
        incidents.append({"id": f"Q{service_id[-5:]}{n:03d}", "type": "incident", "incident_number": n + 1,
                          "status": status, "urgency": "high", "created_at": _iso(created),
                          "service": {"id": service_id, "type": "service_reference"}})


def jira_queries(key: str, lookback_days: int) -> tuple[str, str]:
    """The two JQL queries `JiraCollector` sends for a whole project: open issues, created in window."""
    scope = f'project = "{key}"'
    return (f"{scope} AND statusCategory != Done ORDER BY created ASC",
            f"{scope} AND created >= -{lookback_days}d")


def _jira(pages: dict, key: str, quality: float, rng: random.Random, now: datetime, lookback: int) -> None:
    def issue(n: int, created: datetime) -> dict[str, Any]:
        kind = "Bug" if rng.random() < 0.35 else rng.choice(["Story", "Task"])
        return {"id": str(10000 + n), "key": f"{key}-{n}", "self": f"https://acme.atlassian.net/rest/api/3/issue/{10000 + n}",
                "fields": {"created": _jira_time(created), "issuetype": {"name": kind, "subtask": False}}}

    open_issues = [issue(n, now - timedelta(days=rng.randrange(0, 30 + int(300 * (1 - quality)))))
                   for n in range(1, 1 + rng.randrange(0, 5 + int(40 * (1 - quality))))]
    open_issues.sort(key=lambda i: i["fields"]["created"])
    created = [issue(500 + n, now - timedelta(hours=rng.randrange(1, lookback * 24)))
               for n in range(rng.randrange(0, 30))]
    open_jql, created_jql = jira_queries(key, lookback)
    for path in ("/rest/api/3/search/jql", "/rest/api/3/search"):
        pages[("jira", path, f"fields=created,issuetype&jql={open_jql}")] = {"issues": open_issues}
        pages[("jira", path, f"fields=created,issuetype&jql={created_jql}")] = {"issues": created}


def _sonar(pages: dict, key: str, quality: float, rng: random.Random) -> None:
    coverage = round(min(100.0, max(0.0, 35 + 60 * quality + rng.uniform(-8, 8))), 1)
    values = {"coverage": coverage, "bugs": rng.randrange(0, 2 + int(20 * (1 - quality))),
              "vulnerabilities": rng.randrange(0, 1 + int(6 * (1 - quality))),
              "code_smells": rng.randrange(0, 50 + int(400 * (1 - quality))),
              "duplicated_lines_density": round(rng.uniform(0, 3 + 12 * (1 - quality)), 1)}
    pages[("sonarqube", "/api/measures/component", f"component={key}&metricKeys={SONAR_METRICS}")] = {
        "component": {"key": key, "name": key, "qualifier": "TRK",
                      "measures": [{"metric": m, "value": str(v), "bestValue": False} for m, v in values.items()]}}
    status = "OK" if coverage >= 70 and values["bugs"] < 5 else ("WARN" if coverage >= 55 else "ERROR")
    pages[("sonarqube", "/api/qualitygates/project_status", f"projectKey={key}")] = {
        "projectStatus": {"status": status, "ignoredConditions": False, "conditions": []}}


def collector_params(entities: Iterable[Mapping[str, Any]], base_urls: Mapping[str, str],
                     lookback_days: int = 30, *, services: Iterable[str] = (),
                     events_lookback_days: int | None = None) -> dict[str, dict[str, Any]]:
    """The `params` of each API collector type (`github`, `gitlab`, `pagerduty`, `jira`,
    `sonarqube`) reading what `vendor_pages` generates for `entities`, given each vendor's base URL
    (e.g. `ReplayServer.base_url(vendor)`). Explicit lists, so no listing endpoint is needed
    (`services`: PagerDuty services no entity carries, read too). With `events_lookback_days`, the
    GitHub, GitLab and PagerDuty collectors also collect delivery events that far back."""
    annotations = [_annotations(e) for e in entities]
    values = {key: sorted({a[key] for a in annotations if a.get(key)}) for key in (GITHUB, GITLAB, PAGERDUTY, JIRA, SONAR)}
    params: dict[str, dict[str, Any]] = {}
    common = {"token": "demo", "lookback_days": lookback_days}

    def events(*kinds: str) -> dict[str, Any]:
        return {} if events_lookback_days is None else {"events": list(kinds), "events_lookback_days": events_lookback_days}

    if values[GITHUB] and "github" in base_urls:
        params["github"] = {"base_url": base_urls["github"], "repositories": values[GITHUB], **common,
                            **events("pull_requests", "reviews", "deployments", "pipeline_runs")}
    if values[GITLAB] and "gitlab" in base_urls and events_lookback_days is not None:
        # The demo serves GitLab for its delivery history only.
        params["gitlab"] = {"base_url": base_urls["gitlab"], "projects": values[GITLAB], **common,
                            **events("pull_requests", "deployments", "pipeline_runs")}
    if (values[PAGERDUTY] or services) and "pagerduty" in base_urls:
        params["pagerduty"] = {"base_url": base_urls["pagerduty"], "services": sorted({*values[PAGERDUTY], *services}),
                               **common, **events("incidents")}
    if values[JIRA] and "jira" in base_urls:
        params["jira"] = {"base_url": base_urls["jira"], "projects": values[JIRA], "search_api": "jql", **common}
    if values[SONAR] and "sonarqube" in base_urls:
        params["sonarqube"] = {"base_url": base_urls["sonarqube"], "projects": values[SONAR], **common}
    return params
