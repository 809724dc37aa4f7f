"""How the API collectors behave when the vendor fails: retries with the project's policy, waits the
server asks for (recorded, never slept), GitHub's rate limits, hangs against the timeout and the
run's deadline, bodies cut short, and a run that stops mid-way resuming from its cursor."""

from __future__ import annotations

import email.utils
from datetime import date, datetime, timezone
from typing import Any

import httpx
import pytest

from analytics.facts.synthetic_apis import vendor_pages
from api_fake import Fault, FaultyApi
from catalog_pipelines.collectors.apis.github import GithubCollector
from catalog_pipelines.collectors.apis.http import ApiClient, ApiError, DeadlineExceeded, RateLimited, next_link
from catalog_pipelines.collectors.apis.pagerduty import PagerdutyCollector
from catalog_pipelines.model.retry import RetryPolicy

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
CLOCK = NOW.timestamp()
REPOS = [f"acme/svc-{n}" for n in range(3)]
ENTITIES = [{"ref": f"component:default/svc-{n}",
             "annotations": {"github.com/project-slug": f"acme/svc-{n}", "pagerduty.com/service-id": f"PSVC{n:04d}"}}
            for n in range(3)]
PAGES = vendor_pages(ENTITIES, as_of=date(2026, 12, 7), seed=5)


class Recorder:
    """Injected sleep and clocks: sleeping advances the monotonic clock, nobody waits."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.elapsed = 0.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds

    def monotonic(self) -> float:
        return self.elapsed

    def options(self) -> dict[str, Any]:
        return {"sleep": self.sleep, "monotonic": self.monotonic, "clock": lambda: CLOCK}


def github(api: FaultyApi, recorder: Recorder, **params: Any) -> GithubCollector:
    return GithubCollector("github", GithubCollector.Params.model_validate(
        {"base_url": api.base_url("github"), "token": "t", "repositories": REPOS, **params}), **recorder.options())


def run(collector: Any, cursor: Any = None) -> list[Any]:
    return list(collector.collect(cursor, NOW))


def test_5xx_responses_are_retried_with_jittered_exponential_backoff_and_the_run_completes():
    recorder = Recorder()
    with FaultyApi(PAGES, faults={2: Fault("500"), 3: Fault("503")}) as api:
        batches = run(github(api, recorder, backoff_base=1))
    assert len([b for b in batches if b.observations]) == 3
    # Two retries of one request: steps 1 and 2, each between half and all of 1 * 2**(step - 1).
    assert len(recorder.sleeps) == 2
    assert 0.5 <= recorder.sleeps[0] <= 1 and 1 <= recorder.sleeps[1] <= 2


def test_429_retry_after_is_honoured_exactly_in_seconds_and_as_an_http_date():
    recorder = Recorder()
    date_header = email.utils.formatdate(CLOCK + 42, usegmt=True)
    with FaultyApi(PAGES, faults={1: Fault("429", retry_after="7"), 4: Fault("429", retry_after=date_header)}) as api:
        run(github(api, recorder))
    assert recorder.sleeps == [7.0, 42.0]


def test_github_primary_rate_limit_403_waits_until_the_reset_header():
    recorder = Recorder()
    with FaultyApi(PAGES, faults={2: Fault("403-ratelimit", reset=CLOCK + 30)}) as api:
        batches = run(github(api, recorder))
    assert recorder.sleeps == [30.0]
    assert len([b for b in batches if b.observations]) == 3


def test_github_secondary_rate_limit_403_with_retry_after_is_waited_for():
    recorder = Recorder()
    with FaultyApi(PAGES, faults={3: Fault("403-secondary", retry_after="61")}) as api:
        run(github(api, recorder))
    assert recorder.sleeps == [61.0]


def test_a_rate_limit_longer_than_max_retry_after_stops_the_run_and_the_next_run_resumes_from_the_cursor():
    recorder = Recorder()
    # Every request for the second repository is rate limited for an hour.
    with FaultyApi(PAGES, fault_for=lambda n, path: Fault("403-ratelimit", reset=CLOCK + 3600)
                   if "/repos/acme/svc-1" in path else None) as api:
        stored: list[Any] = []
        with pytest.raises(RateLimited, match="3600 s"):
            for batch in github(api, recorder, max_retry_after=120).collect(None, NOW):
                stored.append(batch)  # the caller persists each batch, then its cursor
        assert recorder.sleeps == []  # not sat through
        assert [b.observations[0].targets[-1].value for b in stored] == ["acme/svc-0"]
        cursor = stored[-1].cursor
        assert cursor["pass"]["after"] == "acme/svc-0"

    with FaultyApi(PAGES) as api:
        batches = run(github(api, Recorder()), cursor)
        read = {p.split("/")[4].split("?")[0] for p in api.paths() if p.startswith("/github/repos/")}
    assert read == {"svc-1", "svc-2"}  # svc-0 is not read again
    assert [b.observations[0].targets[-1].value for b in batches if b.observations] == ["acme/svc-1", "acme/svc-2"]
    assert batches[-1].cursor == {"v": 1, "pass": None, "last_complete": "2026-12-07T12:00:00Z"}


def test_a_source_that_stays_down_fails_the_run_after_the_retries_keeping_the_last_cursor():
    recorder = Recorder()
    with FaultyApi(PAGES, fault_for=lambda n, path: Fault("503") if "svc-2" in path else None) as api:
        stored = []
        with pytest.raises(ApiError, match="failed after 3 attempts; last: HTTP 503"):
            for batch in github(api, recorder, max_retries=2).collect(None, NOW):
                stored.append(batch)
    assert stored[-1].cursor["pass"]["after"] == "acme/svc-1"
    assert len(recorder.sleeps) == 2


def test_a_hanging_server_trips_the_per_request_timeout_and_is_retried():
    recorder = Recorder()
    with FaultyApi(PAGES, faults={1: Fault("hang", seconds=3)}) as api:
        batches = run(github(api, recorder, timeout=0.3))
    assert len(recorder.sleeps) == 1
    assert len([b for b in batches if b.observations]) == 3


def test_the_run_deadline_stops_retrying_before_it_is_passed():
    recorder = Recorder()
    with FaultyApi(PAGES, fault_for=lambda n, path: Fault("500")) as api:
        with pytest.raises(DeadlineExceeded, match="deadline"):
            run(github(api, recorder, deadline=5, backoff_base=2, max_retries=10))
    # Waits of 1-2 s, 2-4 s, 4-8 s…: the run stops at the first wait that would pass 5 s, without
    # taking it (ten retries were allowed).
    assert 1 <= len(recorder.sleeps) <= 2 and sum(recorder.sleeps) < 5


def test_a_truncated_body_is_retried_and_counted_once():
    recorder = Recorder()
    with FaultyApi(PAGES, faults={2: Fault("truncate")}) as api:
        batches = run(github(api, recorder))
    facts = [b.observations[0].facts for b in batches if b.observations]
    runs = PAGES[("github", "/repos/acme/svc-0/actions/runs", "")]["workflow_runs"]
    assert facts[0]["workflow_runs"] == len([r for r in runs if r["created_at"] >= "2026-11-07T12:00:00Z"])
    assert len(recorder.sleeps) == 1


def test_pagerduty_429_without_retry_after_backs_off_and_the_counts_are_unchanged():
    recorder = Recorder()
    params = {"base_url": "", "token": "t"}
    with FaultyApi(PAGES) as api:
        params["base_url"] = api.base_url("pagerduty")
        clean = {o.targets[0].value: o.facts for b in run(PagerdutyCollector(
            "pd", PagerdutyCollector.Params.model_validate(params), **Recorder().options())) for o in b.observations}
    with FaultyApi(PAGES, faults={1: Fault("429", retry_after=None), 3: Fault("429", retry_after=None)}) as api:
        params["base_url"] = api.base_url("pagerduty")
        faulty = {o.targets[0].value: o.facts for b in run(PagerdutyCollector(
            "pd", PagerdutyCollector.Params.model_validate(params), **recorder.options())) for o in b.observations}
    assert faulty == clean and len(recorder.sleeps) == 2


def test_a_client_error_is_not_retried_and_names_the_url():
    recorder = Recorder()
    with FaultyApi({}) as api:
        client = ApiClient(api.base_url("github"), policy=RetryPolicy(max_retries=3), **recorder.options())
        with pytest.raises(ApiError, match="HTTP 404 .*not retried") as info:
            client.get("/repos/acme/missing")
    assert info.value.status == 404 and recorder.sleeps == []


def test_a_missing_repository_is_a_rejection_and_the_other_repositories_land():
    recorder = Recorder()
    with FaultyApi(PAGES) as api:
        collector = GithubCollector("github", GithubCollector.Params.model_validate(
            {"base_url": api.base_url("github"), "repositories": [*REPOS, "acme/gone"]}), **recorder.options())
        batches = run(collector)
    rejections = [str(r) for b in batches for r in b.rejections]
    assert any(r.startswith("github:acme/gone: GET") and "HTTP 404" in r for r in rejections)
    assert len([b for b in batches if b.observations]) == 3


def test_next_page_links_are_followed_on_the_configured_origin_only():
    assert next_link('<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"') \
        == "https://api.github.com/x?page=2"
    assert next_link('<https://a/x?page=1>; rel="prev"') is None
    client = ApiClient("http://127.0.0.1:9/github")
    assert client._same_origin("https://evil.example/github/x?page=2") == "http://127.0.0.1:9/github/x?page=2"
    client.close()


def test_a_paging_loop_is_an_error_not_an_endless_walk():
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[1], headers={"Link": '<http://h/x?page=2>; rel="next"'})

    client = ApiClient("http://h", transport=httpx.MockTransport(loop))
    with pytest.raises(ApiError, match="loops back"):
        list(client.pages_link("/x"))


def test_a_rate_limit_that_outlasts_the_retries_stops_the_run_instead_of_rejecting_the_repository():
    recorder = Recorder()
    with FaultyApi(PAGES, fault_for=lambda n, path: Fault("429", retry_after="2") if "svc-1" in path else None) as api:
        stored = []
        with pytest.raises(RateLimited, match="failed after 3 attempts; last: HTTP 429"):
            for batch in github(api, recorder, max_retries=2).collect(None, NOW):
                stored.append(batch)
    assert recorder.sleeps == [2.0, 2.0]
    assert stored[-1].cursor["pass"]["after"] == "acme/svc-0" and all(not b.rejections for b in stored)
