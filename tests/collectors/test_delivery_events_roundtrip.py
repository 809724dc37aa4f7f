"""Delivery events end to end: the synthetic organisation's event frames served as GitHub, GitLab
and PagerDuty pages (`delivery_pages`, what the demo serves), read by the real collectors over
HTTP, mapped, pseudonymised and stored by `services.facts.collect`, and read back with
`read_events`: the same events, except what a vendor cannot say (listed in `expected`)."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import pandas as pd
import pytest

from analytics.delivery.synthetic import synthetic_delivery_events
from analytics.facts.synthetic_apis import delivery_pages
from analytics.pseudonymise import pseudonymise
from catalog_pipelines.model import delivery_events as ev
from catalog_pipelines.services import facts as service
from catalog_pipelines.settings import Settings
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.delivery_events import read_events
from catalog_pipelines.web.replay import serve_replay
from api_fake import Fault, FaultyApi
from catalog_pipelines.collectors.apis.http import RateLimited
from helpers import seed_catalog

END = datetime(2026, 11, 30, 17, 0, tzinfo=timezone.utc)
GITHUB = [f"svc-{n}" for n in range(4)]
GITLAB = ["gl-0"]
REPOSITORIES = [("github", f"acme/{n}") for n in GITHUB] + [("gitlab", f"acme/platform/{n}") for n in GITLAB]


def entities_frame() -> pd.DataFrame:
    rows = []
    for n, name in enumerate(GITHUB + GITLAB):
        gitlab = name in GITLAB
        rows.append({"ref": f"component:default/{name}", "kind": "Component", "name": name,
                     "owner": "group:default/team-a" if n % 2 else "group:default/team-b",
                     "source": "gitlab" if gitlab else "github",
                     "repository": f"acme/platform/{name}" if gitlab else f"acme/{name}",
                     "service_id": f"PSVC{n:03d}"})
    return pd.DataFrame(rows)


def catalog_entity(row: dict) -> dict:
    slug = "gitlab.com/project-slug" if row["source"] == "gitlab" else "github.com/project-slug"
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": row["name"], "annotations": {slug: row["repository"], "pagerduty.com/service-id": row["service_id"]}},
            "spec": {"type": "service", "lifecycle": "production", "owner": row["owner"]}}


def expected(frames: dict[str, pd.DataFrame], key: bytes) -> dict[str, pd.DataFrame]:
    """The synthetic frames as the collectors can see them."""
    out = {k: f.copy() for k, f in frames.items()}
    for frame in out.values():  # the generator may hand text as categoricals; stored text is plain
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype(object)
    for kind, person in ((ev.PULL_REQUESTS, "author"), (ev.REVIEWS, "reviewer")):
        # the synthetic tokens are what the vendor pages call logins: pseudonymised once more
        out[kind][person] = out[kind][person].map(lambda v: pseudonymise(v, key))
    prs = out[ev.PULL_REQUESTS]
    gitlab = prs["source"] == "gitlab"
    # GitLab's merge request list carries no review times and no diff size
    for column in ("first_review_at", "approved_at"):
        prs.loc[gitlab, column] = pd.NaT
    for column in ("additions", "deletions", "changed_files"):
        prs[column] = prs[column].astype("Int64")
        prs.loc[gitlab, column] = pd.NA
    out[ev.REVIEWS] = out[ev.REVIEWS][out[ev.REVIEWS]["source"] != "gitlab"]
    deployments = out[ev.DEPLOYMENTS]
    # a deployment still running at the end of the history has no final status yet; GitLab has no `error`
    deployments.loc[deployments["finished_at"].isna(), "status"] = "in_progress"
    deployments.loc[(deployments["source"] == "gitlab") & (deployments["status"] == "error"), "status"] = "failure"
    runs = out[ev.PIPELINE_RUNS]
    runs.loc[runs["finished_at"].isna(), "conclusion"] = "in_progress"
    return out


def normalised(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    frame = frame[list(ev.COLUMNS[kind])].sort_values(["source", *ev.KEYS[kind]], kind="stable").reset_index(drop=True)
    for column in ev.INT_COLUMNS[kind]:
        frame[column] = frame[column].astype("Int64")
    for column in frame.columns:
        if column not in ev.TIME_COLUMNS[kind] and column not in ev.INT_COLUMNS[kind] and column not in ev.BOOL_COLUMNS[kind]:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


@pytest.fixture
def delivery_org(catalog_url, tmp_path):
    entities = entities_frame()
    frames = synthetic_delivery_events(entities, days=28, seed=3, end=END)
    # an incident on a PagerDuty service no entity carries (stored, with no entity)
    orphan = pd.DataFrame([{"entity_ref": None, "source": "pagerduty", "incident_id": "QORPHAN1", "service_id": "PXORPHAN",
                            "urgency": "high", "started_at": pd.Timestamp("2026-11-20T03:04:05Z"),
                            "resolved_at": pd.Timestamp("2026-11-20T05:00:00Z")}])
    frames[ev.INCIDENTS] = pd.concat([frames[ev.INCIDENTS], orphan], ignore_index=True)
    seed_catalog(catalog_url, [catalog_entity(r) for r in entities.to_dict("records")])
    return get_engine(catalog_url), frames, tmp_path


def write_config(tmp_path, server, retention: str = "") -> object:
    config = tmp_path / "collectors.yaml"
    config.write_text(textwrap.dedent(f"""
        {retention}
        collectors:
          - name: github
            type: github
            params: {{base_url: "{server.base_url('github')}", token: t, repositories: [{", ".join(f"acme/{n}" for n in GITHUB)}],
                     facts: [], events: [pull_requests, reviews, deployments, pipeline_runs], events_lookback_days: 40,
                     backoff_base: 0}}
          - name: gitlab
            type: gitlab
            params: {{base_url: "{server.base_url('gitlab')}", token: t, projects: [{", ".join(f"acme/platform/{n}" for n in GITLAB)}],
                     facts: [], events: [pull_requests, deployments, pipeline_runs], events_lookback_days: 40}}
          - name: pagerduty
            type: pagerduty
            params: {{base_url: "{server.base_url('pagerduty')}", token: t, facts: [], events: [incidents],
                     events_lookback_days: 40, ids_per_request: 2}}
    """))
    return config


def test_synthetic_events_served_as_vendor_pages_come_back_from_the_collectors_unchanged(delivery_org):
    engine, frames, tmp_path = delivery_org
    assert all(len(frames[k]) for k in ev.KINDS), "the small org has events of every kind"
    with serve_replay(delivery_pages(frames, REPOSITORIES)) as server:
        config = write_config(tmp_path, server)
        runs = {name: service.collect(engine, name, config_path=config, environ={}, now=END) for name in ("github", "gitlab", "pagerduty")}
    assert all(r["rejected"] == 0 for r in runs.values()), [r["rejections"] for r in runs.values()]
    want = expected(frames, Settings.from_env().pseudonym_key)
    for kind in ev.KINDS:
        got = read_events(engine, kind)
        assert str(got["created_at" if "created_at" in got else ev.TIME_COLUMNS[kind][0]].dtype) == "datetime64[ns, UTC]"
        pd.testing.assert_frame_equal(normalised(got, kind), normalised(want[kind], kind), check_dtype=False, obj=kind)
    # every event mapped to its entity, except incidents of services no entity carries: kept, no entity
    orphans = int(want[ev.INCIDENTS]["entity_ref"].isna().sum())
    assert runs["pagerduty"]["events_kept_unmapped"] == orphans
    assert runs["github"]["events_unmapped"] == 0 and runs["github"]["events_mapped"] == sum(
        len(want[k][want[k]["source"] == "github"]) for k in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.PIPELINE_RUNS))
    # no raw login is stored: every person is a keyed pseudonym
    people = pd.concat([read_events(engine, ev.PULL_REQUESTS)["author"], read_events(engine, ev.REVIEWS)["reviewer"]])
    assert people.str.fullmatch(r"p_[0-9a-f]{32}").all()


def test_a_second_run_reopens_only_pull_requests_updated_since_and_stores_no_duplicates(delivery_org):
    engine, frames, tmp_path = delivery_org
    pages = delivery_pages(frames, REPOSITORIES)
    with serve_replay(pages) as server:
        config = write_config(tmp_path, server)
        service.collect(engine, "github", config_path=config, environ={}, now=END)
        first = [r for r in server.requests if "/reviews" in r]
        counts = {k: len(read_events(engine, k)) for k in ev.KINDS}
        before = len(server.requests)
        service.collect(engine, "github", config_path=config, environ={}, now=END)
        second = [r for r in server.requests[before:] if "/reviews" in r]
    assert {k: len(read_events(engine, k)) for k in ev.KINDS} == counts
    # the cursor moved `since` to the first pass less events_refresh_days (3 days)
    since = "2026-11-27T17:00:00Z"
    recent = sum(p["updated_at"] >= since for (vendor, path, _), body in pages.items()
                 if vendor == "github" and path.endswith("/pulls") and isinstance(body, list) and _ == "direction=desc&sort=updated&state=all"
                 for p in body)
    assert len(first) == len(frames[ev.PULL_REQUESTS].query("source == 'github'"))
    assert len(second) == recent < len(first)


def test_a_rate_limit_mid_pull_request_list_stops_the_run_and_the_next_resumes_from_the_cursor_without_duplicates(delivery_org):
    engine, frames, tmp_path = delivery_org
    prs = frames[ev.PULL_REQUESTS].query("source == 'github'")
    with_prs = sorted(prs["repository"].unique())
    assert len(with_prs) >= 2
    target = with_prs[1]  # its pull request list fails half-way: after the first pull request
    state = {"reviews": 0, "limited": False, "errored": False}

    def fault(number: int, path: str) -> Fault | None:
        if f"/repos/{with_prs[0]}/pulls?" in path and not state["errored"]:
            state["errored"] = True
            return Fault("503")  # retried (backoff_base 0): the run goes on
        if f"/repos/{target}/pulls/" in path and path.split("?")[0].endswith("/reviews"):
            state["reviews"] += 1
            if state["reviews"] == 2 and not state["limited"]:
                state["limited"] = True
                return Fault("429", retry_after="3600")  # beyond max_retry_after: stop, resume later
        return None

    with FaultyApi(delivery_pages(frames, REPOSITORIES), fault_for=fault) as api:
        config = write_config(tmp_path, api)
        with pytest.raises(RateLimited):
            service.collect(engine, "github", config_path=config, environ={}, now=END)
        stored = read_events(engine, ev.PULL_REQUESTS)
        assert set(stored["repository"]) == {r for r in with_prs if r < target}  # the stored units only
        before = len(api.requests)
        service.collect(engine, "github", config_path=config, environ={}, now=END)
        resumed = [p for _, p, _ in api.requests[before:]]
    assert state["errored"] and state["limited"]
    assert not any(f"/repos/{r}/" in p for p in resumed for r in with_prs if r < target)  # not read again
    for kind in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.PIPELINE_RUNS):
        got = read_events(engine, kind)
        want = frames[kind].query("source == 'github'")
        assert len(got) == len(want), kind
        assert not got.duplicated(list(ev.KEYS[kind])).any(), kind


def test_events_older_than_their_kinds_max_age_in_collectors_yaml_are_pruned_after_a_run(delivery_org):
    engine, frames, tmp_path = delivery_org
    with serve_replay(delivery_pages(frames, REPOSITORIES)) as server:
        config = write_config(tmp_path, server, retention="delivery_events: {max_age_days: {pull_requests: 7}}")
        run = service.collect(engine, "github", config_path=config, environ={}, now=END)
    kept = read_events(engine, ev.PULL_REQUESTS)
    cutoff = (END.date() - pd.Timedelta(days=7))
    days = kept[["merged_at", "closed_at", "created_at"]].bfill(axis=1)["merged_at"].dt.date
    assert len(kept) and (days >= cutoff).all()
    assert run["events_pruned"] == len(frames[ev.PULL_REQUESTS].query("source == 'github'")) - len(kept) > 0
    # the other kinds keep their default (760 days): nothing of this month-long history goes
    assert len(read_events(engine, ev.REVIEWS)) == len(frames[ev.REVIEWS].query("source == 'github'"))


def test_events_since_reaches_the_look_back_first_then_the_last_complete_pass_less_the_refresh_days():
    from datetime import timedelta

    from catalog_pipelines.collectors.apis.github import GithubCollector

    collector = GithubCollector("github", GithubCollector.Params.model_validate(
        {"repositories": ["acme/api"], "events": ["pull_requests", "deployments"], "events_lookback_days": 90,
         "events_refresh_days": 3}))
    kinds = ["pull_requests", "deployments"]
    assert collector.events_since(None, END) == END - timedelta(days=90)
    last = {"events": {"kinds": kinds, "complete": "2026-11-30T09:00:00Z"}}
    assert collector.events_since(last, END) == END - timedelta(days=3)  # re-reads the refresh days
    week_ago = {"events": {"kinds": kinds, "complete": "2026-11-23T17:00:00Z"}}
    assert collector.events_since(week_ago, END) == END - timedelta(days=7)
    long_ago = {"events": {"kinds": kinds, "complete": "2025-01-01T00:00:00Z"}}
    assert collector.events_since(long_ago, END) == END - timedelta(days=90)  # never past the look-back
    other_kinds = {"events": {"kinds": ["pull_requests"], "complete": "2026-11-30T09:00:00Z"}}
    assert collector.events_since(other_kinds, END) == END - timedelta(days=90)  # a kind added: read it all


def test_a_pagerduty_incident_resolved_after_the_refresh_days_is_read_again_with_its_resolution():
    """A long outage: created ten days ago (outside the run's range), resolved an hour ago. The
    run's second query (resolved incidents, newest resolution first) brings it back resolved, and
    stops paging at the first page resolved entirely before the run's start."""
    from datetime import UTC, timedelta
    from urllib.parse import parse_qsl

    import httpx

    from catalog_pipelines.collectors.apis.pagerduty import PagerdutyCollector

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def at(**delta) -> str:
        return (now - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")

    service = {"id": "PSVC1", "name": "api", "integrations": []}
    incidents = [{"id": "QLONG", "created_at": at(days=10), "resolved_at": at(hours=1), "status": "resolved"},
                 {"id": "QNEW", "created_at": at(days=1), "resolved_at": at(hours=2), "status": "resolved"},
                 {"id": "QOPEN", "created_at": at(days=20), "resolved_at": None, "status": "acknowledged"},
                 *({"id": f"QOLD{i}", "created_at": at(days=40, hours=i), "resolved_at": at(days=39, hours=i), "status": "resolved"}
                   for i in range(150))]
    for incident in incidents:
        incident.update(service={"id": "PSVC1"}, urgency="high")
    resolved_queries = []

    def pagerduty(request: httpx.Request) -> httpx.Response:
        q = parse_qsl(request.url.query.decode())
        params = dict(q)
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 25))
        if request.url.path.endswith("/services"):
            items, key = [service], "services"
        else:
            key, items = "incidents", list(incidents)
            if params.get("date_range") == "all":
                statuses = {v for k, v in q if k == "statuses[]"}
                items = [i for i in items if i["status"] in statuses]
                if params.get("sort_by") == "resolved_at:desc":
                    items.sort(key=lambda i: i["resolved_at"], reverse=True)
                    resolved_queries.append(offset)
            else:
                items = [i for i in items if params["since"] <= i["created_at"] <= params["until"]]
        page = items[offset:offset + limit]
        return httpx.Response(200, json={key: page, "offset": offset, "limit": limit, "more": offset + limit < len(items)})

    collector = PagerdutyCollector("pd", PagerdutyCollector.Params.model_validate(
        {"base_url": "http://pd.test", "token": "t", "facts": [], "events": ["incidents"], "events_lookback_days": 90}),
        transport=httpx.MockTransport(pagerduty))
    client = collector.client()
    unit = collector.units(client)[0]
    events, _ = collector.events(client, unit, now - timedelta(days=3), now)
    got = {e.key: e.attributes for e in events}
    assert set(got) == {"QLONG", "QNEW"}
    assert got["QLONG"]["resolved_at"] == now - timedelta(hours=1) and got["QLONG"]["started_at"] == now - timedelta(days=10)
    assert len(resolved_queries) <= 2  # newest resolutions first: stopped at the first page resolved before the start
