"""Every API collector against its vendor's own published description, served by Stoplight Prism
(static mode: the descriptions' own examples). A request Prism finds invalid fails the test (422
from Prism, or a logged request violation). SonarQube publishes no OpenAPI description: it is run
against its web API's documented example responses (from its repository) through the replay server.
GitLab's description could not be brought here (see tests/data/openapi/SOURCE.md): the GitLab
collector runs against the replay server in test_api_collectors_replay.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from catalog_pipelines.collectors.apis.github import GithubCollector
from catalog_pipelines.collectors.apis.gitlab import GitlabCollector
from catalog_pipelines.collectors.apis.jira import JiraCollector
from catalog_pipelines.collectors.apis.pagerduty import PagerdutyCollector
from catalog_pipelines.collectors.apis.sonarqube import SonarqubeCollector
from catalog_pipelines.collectors.base import ENTITY_REF, Batch
from catalog_pipelines.web.replay import serve_replay
import pytest

from prism import SPECS, prism_servers  # noqa: F401  (session fixture)

# The examples in the descriptions are from early 2020 (GitHub) and 2015-2020 (PagerDuty, Jira):
# a window ending here contains GitHub's example workflow run.
NOW = datetime(2020, 2, 1, tzinfo=timezone.utc)
# GitLab's examples are later: its pipeline example is from 2022-10-21, its deployment from 2016.
GITLAB_NOW = datetime(2022, 11, 1, tzinfo=timezone.utc)
PY_TYPES = {"number": (int, float), "boolean": (bool,), "string": (str,), "object": (dict,), "list": (list,)}


def run(collector: Any, cursor: Any = None, now: datetime = NOW) -> list[Batch]:
    return list(collector.collect(cursor, now))


def assert_typed(collector: Any, batches: list[Batch], now: datetime = NOW) -> None:
    """Every fact emitted is declared and has its declared type; the last batch closes the pass."""
    declared = collector.facts()
    for batch in batches:
        for obs in batch.observations:
            assert obs.targets and all(t.annotation != ENTITY_REF for t in obs.targets)
            for name, value in obs.facts.items():
                assert name in declared, name
                assert isinstance(value, PY_TYPES[declared[name].type]) and not (
                    declared[name].type == "number" and isinstance(value, bool)), (name, value)
    assert batches[-1].cursor == {"v": 1, "pass": None, "last_complete": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def make(cls: Any, base_url: str, **params: Any) -> Any:
    return cls("x", cls.Params.model_validate({"base_url": base_url, "token": "secret", "max_retries": 1, **params}),
               sleep=lambda seconds: None)


def test_github_collector_reads_the_examples_of_githubs_description_into_typed_facts(prism_servers):
    server = prism_servers["github"]
    server.mark()
    collector = make(GithubCollector, server.base_url, repositories=["acme/petstore"], org="acme")
    batches = run(collector)
    assert server.request_violations() == []
    assert_typed(collector, batches)
    # The org listing's example repository plus the configured one, in key order, one batch each.
    observations = [b.observations[0] for b in batches[:-1]]
    assert [o.origin.rsplit("/repos/", 1)[1] for o in observations] == ["acme/petstore", "octocat/Hello-World"]
    facts = observations[0].facts
    assert [(t.annotation, t.value) for t in observations[0].targets] == [
        ("github.com/project-slug", "octocat/Hello-World"), ("github.com/project-slug", "acme/petstore")]
    # From the examples: one workflow run (2020-01-22, in the window), one open pull request, a
    # protected branch, Dependabot alerts of high and medium severity, two code-scanning alerts
    # whose rules have severity `error` and no security severity.
    assert facts["workflow_runs"] == 1
    assert facts["open_pull_requests"] == 1
    assert facts["default_branch_protected"] is True
    assert facts["dependabot_alerts_open"] == {"critical": 0, "high": 1, "medium": 1, "low": 0}
    assert facts["code_scanning_alerts_open"]["error"] == 2
    assert batches[0].cursor["pass"]["after"] == "acme/petstore"


def test_pagerduty_collector_reads_services_oncalls_and_incidents_from_pagerdutys_description(prism_servers):
    server = prism_servers["pagerduty"]
    server.mark()
    collector = make(PagerdutyCollector, server.base_url)
    batches = run(collector)
    assert server.request_violations() == []
    assert_typed(collector, batches)
    (obs,) = batches[0].observations
    assert obs.targets[0].annotation == "pagerduty.com/service-id" and obs.targets[0].value == "PIJ90N7"
    assert obs.facts["has_escalation_policy"] is True
    assert obs.facts["service_status"] == "active"
    # The on-call example is at escalation level 2: nobody is first responder for the service.
    assert obs.facts["has_oncall"] is False and obs.facts["oncall_responders"] == 0
    assert set(obs.facts) == set(collector.facts())


@pytest.mark.parametrize("search_api,chosen", [("auto", "jql"), ("legacy", "legacy")])
def test_jira_collector_searches_through_search_jql_and_the_legacy_search(prism_servers, search_api, chosen):
    server = prism_servers["jira"]
    server.mark()
    collector = make(JiraCollector, server.base_url, email="bot@example.com", search_api=search_api,
                     projects=["PET"], scopes=[{"project": "PET", "component": "api", "label": "backend"}])
    batches = run(collector)
    assert server.request_violations() == []
    assert_typed(collector, batches)
    assert collector.search_api == chosen  # auto: the description serves /search/jql
    values = [b.observations[0].targets[0].value for b in batches[:-1]]
    assert values == ["PET", "PET;jira/component=api;jira/label=backend"]
    facts = batches[0].observations[0].facts
    # Each description example holds one issue (from 2020-2022, outside the window).
    assert facts["open_issues"] >= 1 and facts["issues_created"] == 0


def test_gitlab_collector_reads_group_projects_pipelines_merge_requests_and_deployments_from_gitlabs_description(
        prism_servers):
    server = prism_servers["gitlab"]
    server.mark()
    # A configured path (looked up with GET /projects/{url-encoded path}) and a group listing.
    collector = make(GitlabCollector, server.base_url, projects=["acme/petstore"], group="acme/platform")
    batches = run(collector, now=GITLAB_NOW)
    assert server.request_violations() == []
    assert_typed(collector, batches, GITLAB_NOW)
    observations = [b.observations[0] for b in batches[:-1]]
    # Units in key order: the configured path, then the group listing's example project. The project
    # lookup answers with the description's example project (id 1, namespace1/project1).
    assert len(observations) == 2
    for obs in observations:
        assert obs.origin.endswith("/api/v4/projects/1")
        assert [(t.annotation, t.value) for t in obs.targets] == [
            ("gitlab.com/project-slug", "namespace1/project1"), ("gitlab.com/project-id", "1")]
        # One example pipeline (2022-10-21, in the window) on `feature-branch`, not the example
        # project's default branch `main`: nothing to judge on the default branch. One merge request
        # listed as opened; the example deployment (2016) is outside the window.
        assert obs.facts == {"pipelines": 1, "open_merge_requests": 1, "deployments": 0}


def sonar_pages() -> dict[tuple[str, str, str], Any]:
    folder = SPECS / "sonarqube"

    def load(name: str) -> Any:
        return json.loads((folder / name).read_text())

    return {
        ("sonarqube", "/api/components/search", "qualifiers=TRK"): load("components-search-example.json"),
        ("sonarqube", "/api/measures/component", ""): load("measures-component-example.json"),
        ("sonarqube", "/api/qualitygates/project_status", "projectKey=project-key"):
            load("qualitygates-project_status-example.json"),
    }


def test_sonarqube_collector_reads_sonarqubes_documented_example_responses():
    with serve_replay(sonar_pages()) as replay:
        collector = make(SonarqubeCollector, replay.base_url("sonarqube"))
        batches = run(collector)
    assert_typed(collector, batches)
    (obs,) = batches[0].observations
    assert [(t.annotation, t.value) for t in obs.targets] == [("sonarqube.org/project-key", "project-key")]
    # The documented measures example carries other metrics (complexity, ncloc): none is invented.
    assert obs.facts == {"quality_gate": "ERROR"}


def test_trimmed_descriptions_hold_exactly_the_paths_the_collectors_call():
    github = json.loads((SPECS / "github" / "api.github.com.trimmed.json").read_text())
    assert sorted(github["paths"]) == sorted([
        "/orgs/{org}/repos", "/repos/{owner}/{repo}", "/repos/{owner}/{repo}/actions/runs",
        "/repos/{owner}/{repo}/pulls", "/repos/{owner}/{repo}/deployments",
        "/repos/{owner}/{repo}/branches/{branch}/protection", "/repos/{owner}/{repo}/dependabot/alerts",
        "/repos/{owner}/{repo}/code-scanning/alerts", "/repos/{owner}/{repo}/pulls/{pull_number}",
        "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "/repos/{owner}/{repo}/pulls/{pull_number}/commits",
        "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"])
    gitlab = json.loads((SPECS / "gitlab" / "openapi_v2.trimmed.json").read_text())
    assert gitlab["swagger"] == "2.0"
    assert sorted(gitlab["paths"]) == sorted([
        "/api/v4/groups/{id}/projects", "/api/v4/projects/{id}", "/api/v4/projects/{id}/pipelines",
        "/api/v4/projects/{id}/merge_requests", "/api/v4/projects/{id}/deployments"])
    assert all(list(item) == ["get"] for item in gitlab["paths"].values())
    assert (SPECS / "gitlab" / "LICENSE").is_file()
    for vendor in ("github", "pagerduty", "jira", "sonarqube", "gitlab"):
        assert (SPECS / vendor / "SOURCE.md").is_file(), vendor
    assert Path(SPECS / "trim.py").is_file()


def test_a_request_that_does_not_match_the_description_fails(prism_servers):
    """The guard the tests above rely on: Prism refuses, or logs, a request its description does
    not allow, and the tests see it."""
    from catalog_pipelines.collectors.apis.http import ApiClient, ApiError

    github = ApiClient(prism_servers["github"].base_url, {"Accept": "application/json"}, sleep=lambda s: None)
    # GitHub takes search syntax in `created`, its description a date-time: Prism answers 422.
    with pytest.raises(ApiError, match="HTTP 422"):
        github.get("/repos/acme/petstore/actions/runs", [("created", ">=2026-11-07")])
    github.close()
    # PagerDuty's description requires a Content-Type header even on GET: logged as a violation.
    server = prism_servers["pagerduty"]
    server.mark()
    pagerduty = ApiClient(server.base_url, {"Authorization": "Token token=t"}, sleep=lambda s: None)
    pagerduty.get("/services", allow=(400, 401, 415, 422))
    pagerduty.close()
    assert any("content-type" in line for line in server.request_violations())
    # GitLab spells the open state `opened`; GitHub's `open` is not in its enum: Prism answers 422.
    gitlab = ApiClient(prism_servers["gitlab"].base_url, {}, sleep=lambda s: None)
    with pytest.raises(ApiError, match="HTTP 422"):
        gitlab.get("/api/v4/projects/1/merge_requests", [("state", "open")])
    gitlab.close()


# -- delivery events (issue 22) against the same descriptions --------------------------------------

def events_of(batches: list[Batch]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for batch in batches:
        for event in batch.events:
            out.setdefault(event.kind, []).append(event)
    return out


def test_github_delivery_events_read_pull_requests_reviews_commits_deployment_statuses_and_runs(prism_servers):
    server = prism_servers["github"]
    server.mark()
    collector = make(GithubCollector, server.base_url, repositories=["acme/petstore"], facts=[],
                     events=["pull_requests", "reviews", "deployments", "pipeline_runs"], events_lookback_days=3650)
    batches = run(collector)
    assert server.request_violations() == []
    assert batches[-1].cursor["events"] == {"kinds": ["pull_requests", "reviews", "deployments", "pipeline_runs"],
                                            "complete": "2020-02-01T00:00:00Z"}
    events = events_of(batches)
    (pr,) = events["pull_requests"]
    a = pr.attributes
    assert pr.key == "acme/petstore#1347" and a["number"] == 1347 and a["author"] == "octocat"
    # Every time from the examples: the PR (2011-01-26), its first commit's author date, the review.
    assert a["created_at"] == datetime(2011, 1, 26, 19, 1, 12, tzinfo=timezone.utc)
    assert a["first_commit_at"] == datetime(2011, 4, 14, 16, 0, 49, tzinfo=timezone.utc)
    # The review example is by `octocat`, the author: not a first review, but still a review event.
    assert a["first_review_at"] is None and a["approved_at"] is None
    assert isinstance(a["additions"], int) and isinstance(a["changed_files"], int)
    assert [e.attributes["state"] for e in events["reviews"]] == ["APPROVED"]
    (deployment,) = events["deployments"]
    assert deployment.attributes["environment"] == "production" and deployment.attributes["is_production"] is True
    assert deployment.attributes["status"] == "success"
    (run_,) = events["pipeline_runs"]
    assert run_.attributes["conclusion"] and run_.attributes["started_at"] is not None
    assert all(e.targets[0].annotation == "github.com/project-slug" for kind in events.values() for e in kind)


def test_gitlab_delivery_events_read_merge_requests_deployments_and_pipelines(prism_servers):
    server = prism_servers["gitlab"]
    server.mark()
    collector = make(GitlabCollector, server.base_url, projects=["acme/petstore"], facts=[],
                     events=["pull_requests", "deployments", "pipeline_runs"], events_lookback_days=3650)
    batches = run(collector, now=GITLAB_NOW)
    assert server.request_violations() == []
    events = events_of(batches)
    assert {k: len(v) for k, v in events.items()} == {"pull_requests": 1, "deployments": 1, "pipeline_runs": 1}
    (mr,) = events["pull_requests"]
    assert mr.key.startswith("namespace1/project1!") and mr.attributes["first_review_at"] is None
    (deployment,) = events["deployments"]
    assert deployment.attributes["status"] in ("success", "failure", "inactive", "in_progress", "queued")


def test_pagerduty_incidents_events_read_start_resolve_and_service(prism_servers):
    server = prism_servers["pagerduty"]
    server.mark()
    collector = make(PagerdutyCollector, server.base_url, facts=[], events=["incidents"], events_lookback_days=3650)
    batches = run(collector)
    assert server.request_violations() == []
    (incident,) = events_of(batches)["incidents"]
    assert incident.keep_unmapped is True
    assert incident.attributes["service_id"] == "PIJ90N7" == incident.targets[0].value
    assert incident.attributes["started_at"] is not None
