"""The API collectors end to end against the replay server serving the synthetic organisation's
vendor-shaped pages (what `make demo` runs), with the vendors' paging: GitHub/GitLab `Link`,
PagerDuty `offset/more`, Jira `nextPageToken` and `startAt/total`, SonarQube `p/ps`."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from analytics.facts.synthetic_apis import vendor_pages
from catalog_pipelines.collectors.apis.github import GithubCollector
from catalog_pipelines.collectors.apis.gitlab import GitlabCollector
from catalog_pipelines.collectors.apis.jira import JiraCollector
from catalog_pipelines.collectors.apis.pagerduty import PagerdutyCollector
from catalog_pipelines.collectors.apis.sonarqube import SonarqubeCollector
from catalog_pipelines.web.replay import serve_replay

AS_OF = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
ENTITIES = [
    {"ref": f"component:default/svc-{n}", "annotations": {
        "github.com/project-slug": f"acme/svc-{n}", "pagerduty.com/service-id": f"PSVC{n:04d}",
        "jira/project-key": f"SVC{n}", "sonarqube.org/project-key": f"acme_svc-{n}"}}
    for n in range(7)
]


def make(cls: Any, base_url: str, **params: Any) -> Any:
    return cls("x", cls.Params.model_validate({"base_url": base_url, "token": "t", **params}),
               sleep=lambda seconds: None)


def observations(collector: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for batch in collector.collect(None, NOW):
        assert batch.rejections == [] or all("HTTP 404" in r.reason for r in batch.rejections)
        for obs in batch.observations:
            out[obs.targets[0].value] = dict(obs.facts)
    return out


@pytest.fixture(scope="module")
def replay():
    pages = vendor_pages(ENTITIES, as_of=AS_OF, seed=3)
    with serve_replay(pages) as server:
        yield server, pages


def test_github_org_listing_and_link_paging_yield_every_repository_with_window_counts(replay):
    server, pages = replay
    collector = make(GithubCollector, server.base_url("github"), org="acme")
    got = observations(collector)
    assert sorted(got) == [f"acme/svc-{n}" for n in range(7)]
    for n in range(7):
        runs = pages[("github", f"/repos/acme/svc-{n}/actions/runs", "")]["workflow_runs"]
        in_window = [r for r in runs if r["created_at"] >= "2026-11-07T12:00:00Z"]
        assert got[f"acme/svc-{n}"]["workflow_runs"] == len(in_window)
        assert got[f"acme/svc-{n}"]["open_pull_requests"] == len(pages[("github", f"/repos/acme/svc-{n}/pulls", "state=open")])
        protected = ("github", f"/repos/acme/svc-{n}/branches/main/protection", "") in pages
        assert got[f"acme/svc-{n}"]["default_branch_protected"] is protected
    # Some repositories have more runs than one page of 100 holds: `Link: rel="next"` was followed.
    assert any(len(p["workflow_runs"]) > 100 for k, p in pages.items() if k[1].endswith("/actions/runs"))
    assert any("/actions/runs" in r and "page=2" in r for r in server.requests)


def test_pagerduty_offset_paging_and_chunked_incident_queries_count_per_service(replay):
    server, pages = replay
    collector = make(PagerdutyCollector, server.base_url("pagerduty"), ids_per_request=3)
    got = observations(collector)
    assert sorted(got) == [f"PSVC{n:04d}" for n in range(7)]
    incidents = pages[("pagerduty", "/incidents", "")]["incidents"]
    for key, facts in got.items():
        mine = [i for i in incidents if i["service"]["id"] == key]
        assert facts["open_incidents"] == sum(i["status"] != "resolved" for i in mine)
        assert facts["incidents"] == len(mine)


@pytest.mark.parametrize("search_api", ["jql", "legacy"])
def test_jira_counts_are_the_same_through_next_page_token_and_start_at_paging(replay, search_api):
    server, pages = replay
    collector = make(JiraCollector, server.base_url("jira"), projects=[f"SVC{n}" for n in range(7)],
                     search_api=search_api)
    got = observations(collector)
    assert sorted(got) == sorted(f"SVC{n}" for n in range(7))
    for n in range(7):
        (open_issues,) = [b["issues"] for (v, p, q), b in pages.items()
                          if p == "/rest/api/3/search/jql" and f'"SVC{n}"' in q and "Done" in q]
        assert got[f"SVC{n}"]["open_issues"] == len(open_issues)
        assert got[f"SVC{n}"]["open_bugs"] == sum(i["fields"]["issuetype"]["name"] == "Bug" for i in open_issues)


def test_jira_auto_detection_uses_search_jql_where_it_is_served(replay):
    server, _ = replay
    collector = make(JiraCollector, server.base_url("jira"), projects=["SVC1"])
    observations(collector)
    assert collector.search_api == "jql"


def test_sonarqube_project_listing_and_measures_become_typed_facts(replay):
    server, pages = replay
    got = observations(make(SonarqubeCollector, server.base_url("sonarqube")))
    assert sorted(got) == sorted(f"acme_svc-{n}" for n in range(7))
    for facts in got.values():
        assert facts["quality_gate"] in ("OK", "WARN", "ERROR")
        assert isinstance(facts["coverage_pct"], float) and isinstance(facts["bugs"], int)


def test_gitlab_collector_reads_pipelines_merge_requests_and_deployments_with_link_paging():
    project = {"id": 42, "path_with_namespace": "acme/platform/api", "default_branch": "main"}
    pipelines = [{"id": n, "status": "success" if n % 3 else "failed", "ref": "main" if n % 2 else "dev",
                  "created_at": f"2026-12-0{1 + n % 6}T10:00:00.000Z", "updated_at": f"2026-12-0{1 + n % 6}T10:05:00.000Z"}
                 for n in range(1, 150)] + [{"id": 99, "status": "success", "ref": "main",
                                            "created_at": "2026-10-01T10:00:00Z", "updated_at": "2026-10-01T10:05:00Z"}]
    pages = {
        ("gitlab", "/api/v4/groups/acme/projects", "archived=false&include_subgroups=true&order_by=id&sort=asc"): [project],
        ("gitlab", "/api/v4/projects/42/pipelines", ""): pipelines,
        ("gitlab", "/api/v4/projects/42/merge_requests", "state=opened"): [{"iid": 1, "state": "opened"}] * 3,
        ("gitlab", "/api/v4/projects/42/deployments", ""): [{"id": 1, "created_at": "2026-12-02T00:00:00Z"},
                                                            {"id": 2, "created_at": "2026-09-02T00:00:00Z"}],
    }
    with serve_replay(pages) as server:
        collector = make(GitlabCollector, server.base_url("gitlab"), group="acme")
        batches = list(collector.collect(None, NOW))
        assert any("/pipelines" in r and "page=2" in r for r in server.requests)  # 150 over pages of 100
    (obs,) = batches[0].observations
    assert [(t.annotation, t.value) for t in obs.targets] == [
        ("gitlab.com/project-slug", "acme/platform/api"), ("gitlab.com/project-id", "42")]
    assert obs.facts["pipelines"] == 149  # the October one is outside the window
    on_main = [p for p in pipelines[:-1] if p["ref"] == "main"]
    assert obs.facts["pipeline_success_rate"] == sum(p["status"] == "success" for p in on_main) / len(on_main)
    assert obs.facts["median_pipeline_duration_seconds"] == 300
    assert obs.facts["open_merge_requests"] == 3 and obs.facts["deployments"] == 1


def test_github_endpoints_of_deselected_facts_are_not_called(replay):
    server, _ = replay
    server.requests.clear()
    collector = make(GithubCollector, server.base_url("github"), repositories=["acme/svc-1"],
                     facts=["open_pull_requests", "default_branch_protected"])
    got = observations(collector)
    assert set(got["acme/svc-1"]) == {"open_pull_requests", "default_branch_protected"}
    called = {r.split("?")[0].removeprefix("/github/repos/acme/svc-1") for r in server.requests}
    assert called == {"", "/pulls", "/branches/main/protection"}


def test_the_demo_params_run_every_collector_over_the_generated_pages(replay):
    from analytics.facts.synthetic_apis import collector_params
    from catalog_pipelines.collectors.apis import API_COLLECTORS
    from importlib import import_module

    server, _ = replay
    params = collector_params(ENTITIES, {v: server.base_url(v) for v in ("github", "pagerduty", "jira", "sonarqube")})
    assert sorted(params) == ["github", "jira", "pagerduty", "sonarqube"]
    for type_name, config in params.items():
        module, _, attr = API_COLLECTORS[type_name].partition(":")
        cls_name, _, factory = attr.partition(".")
        collector = getattr(getattr(import_module(module), cls_name), factory)(type_name, config, None)
        batches = list(collector.collect(None, NOW))
        assert sum(len(b.observations) for b in batches) == 7, type_name
        assert not [r for b in batches for r in b.rejections], type_name
