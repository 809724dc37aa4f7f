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
                 lookback_days: int = 30) -> dict[tuple[str, str, str], Any]:
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
    return pages


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
                     lookback_days: int = 30) -> dict[str, dict[str, Any]]:
    """The `params` of each API collector type (`github`, `pagerduty`, `jira`, `sonarqube`) reading
    what `vendor_pages` generates for `entities`, given each vendor's base URL (e.g.
    `ReplayServer.base_url(vendor)`). Explicit lists, so no listing endpoint is needed."""
    annotations = [_annotations(e) for e in entities]
    values = {key: sorted({a[key] for a in annotations if a.get(key)}) for key in (GITHUB, PAGERDUTY, JIRA, SONAR)}
    params: dict[str, dict[str, Any]] = {}
    common = {"token": "demo", "lookback_days": lookback_days}
    if values[GITHUB] and "github" in base_urls:
        params["github"] = {"base_url": base_urls["github"], "repositories": values[GITHUB], **common}
    if values[PAGERDUTY] and "pagerduty" in base_urls:
        params["pagerduty"] = {"base_url": base_urls["pagerduty"], "services": values[PAGERDUTY], **common}
    if values[JIRA] and "jira" in base_urls:
        params["jira"] = {"base_url": base_urls["jira"], "projects": values[JIRA], "search_api": "jql", **common}
    if values[SONAR] and "sonarqube" in base_urls:
        params["sonarqube"] = {"base_url": base_urls["sonarqube"], "projects": values[SONAR], **common}
    return params
