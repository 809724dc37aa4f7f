"""Delivery metrics on hand-computed cases (analytics/delivery/metrics.py, docs/delivery.md)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics.delivery.config import Band, DeliveryConfig, DeliveryConfigError, MinEvents, load_config, parse_config
from analytics.delivery.metrics import (
    Scopes,
    band_of,
    daily_facts,
    delivery_metrics,
    first_changed_day,
    merge_facts,
    open_pull_requests,
)
from analytics.org import OrgGraph
from catalog_pipelines.model.delivery_events import COLUMNS

TEAM = "group:default/alpha"
OTHER = "group:default/bravo"
API = "component:default/alpha-api"
WEB = "component:default/alpha-web"
SHOP = "component:default/bravo-shop"


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def frame(kind: str, rows: list[dict]) -> pd.DataFrame:
    columns = COLUMNS[kind]
    out = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=list(columns))
    for c in columns:
        if c.endswith("_at"):
            out[c] = pd.to_datetime(out[c], utc=True)
    return out


def pr(number: int, created: str, merged: str | None, sha: str | None, first_commit: str | None = None, *, entity: str = API,
       repo: str = "acme/alpha-api", review: str | None = None, approved: str | None = None, closed: str | None = None,
       additions: int = 10, deletions: int = 2) -> dict:
    return {"entity_ref": entity, "source": "github", "repository": repo, "number": number,
            "url": f"https://github.com/{repo}/pull/{number}", "author": "p_author", "created_at": T(created),
            "first_commit_at": T(first_commit) if first_commit else None, "first_review_at": T(review) if review else None,
            "approved_at": T(approved) if approved else None, "merged_at": T(merged) if merged else None,
            "closed_at": T(closed or merged) if (closed or merged) else None, "additions": additions, "deletions": deletions,
            "changed_files": 1, "merge_commit_sha": sha, "draft": False}


def deploy(i: int, at: str, sha: str, *, entity: str = API, repo: str = "acme/alpha-api", finished: str | None = None,
           rollback: bool = False, production: bool = True, status: str = "success") -> dict:
    return {"entity_ref": entity, "source": "github", "repository": repo, "deployment_id": f"d{i}",
            "environment": "production" if production else "staging", "is_production": production, "status": status,
            "commit_sha": sha, "created_at": T(at), "finished_at": T(finished) if finished else T(at), "is_rollback": rollback}


def incident(i: str, start: str, resolved: str | None, entity: str | None = API) -> dict:
    return {"entity_ref": entity, "source": "pagerduty", "incident_id": i, "service_id": "PX" if entity is None else "P1",
            "urgency": "high", "started_at": T(start), "resolved_at": T(resolved) if resolved else None}


def events(prs=(), reviews=(), deployments=(), incidents=()) -> dict[str, pd.DataFrame]:
    return {"pull_requests": frame("pull_requests", list(prs)), "reviews": frame("reviews", list(reviews)),
            "deployments": frame("deployments", list(deployments)), "incidents": frame("incidents", list(incidents)),
            "pipeline_runs": frame("pipeline_runs", [])}


ENTITIES = pd.DataFrame({"ref": [API, WEB, SHOP], "kind": "component", "name": ["alpha-api", "alpha-web", "bravo-shop"],
                         "owner": [TEAM, TEAM, OTHER]})
ORG = OrgGraph.from_frames(pd.DataFrame({"group_ref": [TEAM, OTHER], "parent_ref": [None, None], "display_name": ["Alpha", "Bravo"]}),
                           pd.DataFrame({"user_ref": [], "group_ref": []}))
LOW_N = DeliveryConfig(min_events=MinEvents(lead_time=1, change_failure_rate=1, time_to_restore=1, pr_flow=1))


def metrics(ev, config=LOW_N, as_of=date(2025, 6, 1)):
    facts = daily_facts(ev, config)
    return delivery_metrics(facts, ENTITIES, ORG, config, as_of=as_of,
                            open_prs=open_pull_requests(ev["pull_requests"], pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)))


def key(tables, metric, scope_ref, scope_type="team"):
    s = tables["dora_summary"]
    row = s[(s["metric"] == metric) & (s["scope_ref"] == scope_ref) & (s["scope_type"] == scope_type)]
    assert len(row) == 1, (metric, scope_ref, s)
    return row.iloc[0]


def test_lead_time_runs_from_first_commit_to_the_deployment_that_ships_the_merge_commit_or_a_later_one():
    ev = events(
        prs=[pr(1, "2025-05-20 10:00", "2025-05-20 12:00", "aaa", first_commit="2025-05-20 08:00"),
             pr(2, "2025-05-20 11:00", "2025-05-20 13:00", "bbb", first_commit="2025-05-20 09:00"),
             pr(3, "2025-05-21 09:00", "2025-05-21 10:00", "ccc")],  # GitLab-like: no commit time, from creation
        deployments=[deploy(1, "2025-05-20 14:00", "bbb", finished="2025-05-20 14:30"),  # ships PRs 1 and 2
                     deploy(2, "2025-05-21 12:00", "ccc", finished="2025-05-21 12:00"),  # ships PR 3
                     deploy(3, "2025-05-22 12:00", "zzz")])  # a config deploy: no PR's merge commit
    facts = daily_facts(ev, LOW_N)
    changes = facts["changes"].sort_values("number")
    assert changes["lead_time_h"].tolist() == [6.5, 5.5, 3.0]
    assert changes["start"].tolist() == ["first_commit", "first_commit", "pr_created"]
    lead = key(metrics(ev), "lead_time", TEAM)
    assert lead["value"] == 5.5 and lead["events"] == 3
    assert lead["excluded"] == 1  # the unlinked deployment is counted and excluded


def test_deployments_with_no_linked_change_are_counted_not_timed():
    ev = events(deployments=[deploy(1, "2025-05-20 14:00", "nope"), deploy(2, "2025-05-21 14:00", "nada")])
    tables = metrics(ev)
    lead = key(tables, "lead_time", TEAM)
    assert np.isnan(lead["value"]) and lead["excluded"] == 2
    assert lead["reason"] == "not enough data: 0 changes < 1"
    assert tables["incidents_summary"].iloc[0]["unlinked_deployments"] == 2
    assert key(tables, "deployment_frequency", TEAM)["events"] == 2


def test_a_deployed_commit_is_looked_up_among_its_own_repositorys_merge_commits_only():
    """A sha that is the merge commit of a PR of another repository (a mirror, a copied history)
    links nothing: a deployment ships its own repository's changes (what lets a new day read only
    the deploying repositories' look-back)."""
    ev = events(
        prs=[pr(1, "2025-05-20 10:00", "2025-05-20 12:00", "shared", entity=SHOP, repo="acme/bravo-shop"),
             pr(2, "2025-05-20 10:00", "2025-05-20 13:00", "own")],
        deployments=[deploy(1, "2025-05-20 14:00", "shared"),  # alpha-api deploys a sha of bravo-shop's history
                     deploy(2, "2025-05-21 14:00", "own")])
    facts = daily_facts(ev, LOW_N)
    assert facts["changes"]["number"].tolist() == [2]
    assert facts["deploy_days"].sort_values("day")["unlinked"].tolist() == [1, 0]


def test_change_failure_blames_the_latest_deployment_before_an_incident_or_rollback_within_the_window():
    ev = events(
        deployments=[deploy(1, "2025-05-12 10:00", "a"), deploy(2, "2025-05-13 10:00", "b"),
                     deploy(3, "2025-05-14 10:00", "c"), deploy(4, "2025-05-14 11:00", "b", rollback=True),
                     deploy(5, "2025-05-20 10:00", "d"),
                     deploy(6, "2025-05-21 10:00", "e", status="failure")],  # a failed attempt is no deployment
        incidents=[incident("i1", "2025-05-13 12:00", "2025-05-13 13:30"),  # 2 h after deploy 2
                   incident("i2", "2025-05-25 12:00", "2025-05-25 12:30")])  # 5 days after deploy 5: outside 24 h
    tables = metrics(ev)
    cfr = key(tables, "change_failure_rate", TEAM)
    assert cfr["events"] == 4  # four changes deployed; the rollback is a deployment but not a change
    assert cfr["value"] == pytest.approx(2 / 4)
    assert key(tables, "deployment_frequency", TEAM)["events"] == 5
    assert tables["incidents_summary"].iloc[0]["rollbacks"] == 1


def test_time_to_restore_excludes_and_counts_unresolved_incidents_and_keeps_incidents_with_no_service_at_org_level():
    ev = events(incidents=[incident("i1", "2025-05-10 10:00", "2025-05-10 11:00"),
                           incident("i2", "2025-05-11 10:00", "2025-05-11 13:00"),
                           incident("i3", "2025-05-12 10:00", None),
                           incident("i4", "2025-05-12 10:00", "2025-05-12 20:00", entity=None)])
    tables = metrics(ev)
    team = key(tables, "time_to_restore", TEAM)
    assert team["value"] == 2.0 and team["events"] == 2 and team["excluded"] == 1
    org = key(tables, "time_to_restore", "org", "org")
    assert org["value"] == 3.0 and org["events"] == 3  # 1, 3 and 10 hours
    assert tables["incidents_summary"].iloc[0]["without_service"] == 1
    assert key(tables, "time_to_restore", OTHER)["events"] == 0


def test_weeks_without_deployments_count_as_zero():
    ev = events(deployments=[deploy(1, "2025-05-06 10:00", "a"), deploy(2, "2025-05-07 10:00", "b"),
                             deploy(3, "2025-05-21 10:00", "c")])
    weekly = metrics(ev)["dora_weekly"]
    team = weekly[(weekly["scope_ref"] == TEAM) & (weekly["metric"] == "deployments")].set_index("week")["value"]
    assert len(team) == 12
    assert team[date(2025, 5, 5)] == 2 and team[date(2025, 5, 12)] == 0 and team[date(2025, 5, 19)] == 1
    assert team[date(2025, 4, 28)] == 0
    freq = key(metrics(ev), "deployment_frequency", TEAM)
    # 3 deployments in 4 weeks by one deploying entity
    assert freq["value"] == pytest.approx(0.75) and freq["band"] == "medium"


def test_weeks_follow_the_configured_time_zone_across_a_dst_change():
    # Europe/Berlin moves to summer time on Sunday 2025-03-30. 22:30 UTC that Sunday is already
    # Monday 00:30 in Berlin (UTC+2), a new ISO week; a week earlier 22:30 UTC was 23:30 (UTC+1).
    ev = events(deployments=[deploy(1, "2025-03-23 22:30", "a"), deploy(2, "2025-03-30 22:30", "b"),
                             deploy(3, "2025-04-06 21:30", "c")])  # 23:30 Berlin on a Sunday: still that week
    berlin = DeliveryConfig(timezone="Europe/Berlin", min_events=LOW_N.min_events)
    utc = metrics(ev, LOW_N, as_of=date(2025, 4, 13))["dora_weekly"]
    local = metrics(ev, berlin, as_of=date(2025, 4, 13))["dora_weekly"]

    def per_week(w):
        s = w[(w["scope_ref"] == TEAM) & (w["metric"] == "deployments")]
        return {str(k): v for k, v in s.set_index("week")["value"].items() if v}

    assert per_week(utc) == {"2025-03-17": 1, "2025-03-24": 1, "2025-03-31": 1}
    assert per_week(local) == {"2025-03-17": 1, "2025-03-31": 2}
    facts = daily_facts(ev, berlin)
    assert sorted(str(d.date()) for d in facts["deploy_days"]["day"]) == ["2025-03-23", "2025-03-31", "2025-04-06"]


def test_a_metric_on_fewer_events_than_configured_is_not_enough_data():
    ev = events(prs=[pr(n, "2025-05-20 10:00", "2025-05-20 12:00", f"s{n}", review="2025-05-20 11:00", approved="2025-05-20 11:30")
                     for n in range(1, 4)],
                deployments=[deploy(1, "2025-05-21 10:00", "s3")])
    tables = metrics(ev, DeliveryConfig())
    lead = key(tables, "lead_time", TEAM)
    assert np.isnan(lead["value"]) and lead["band"] != lead["band"]
    assert lead["reason"] == "not enough data: 3 changes < 5"
    flow = tables["pr_flow"]
    cycle = flow[(flow["scope_ref"] == TEAM) & (flow["metric"] == "cycle_time")].iloc[0]
    assert np.isnan(cycle["p50"]) and cycle["reason"] == "not enough data: 3 merged pull requests < 5"
    # the same three with a minimum of one: medians, p75 and p90 of hand-computed parts
    flow = metrics(ev)["pr_flow"]
    parts = flow[flow["scope_ref"] == TEAM].set_index(flow[flow["scope_ref"] == TEAM]["metric"].astype(str))
    assert parts.loc["cycle_time", "p50"] == 2.0 and parts.loc["time_to_first_review", "p90"] == 1.0
    assert parts.loc["review_to_approval", "p50"] == 0.5 and parts.loc["approval_to_merge", "p50"] == 0.5


def test_pr_summary_counts_merged_without_review_and_stale_prs_and_lists_the_stalest_with_links():
    ev = events(prs=[pr(1, "2025-05-20 10:00", "2025-05-20 12:00", "a", review="2025-05-20 11:00"),
                     pr(2, "2025-05-21 10:00", "2025-05-21 12:00", "b"),  # merged without review
                     pr(3, "2025-03-01 10:00", None, None),  # open 92 days
                     pr(4, "2025-05-25 10:00", None, None),  # open 7 days: not stale
                     pr(5, "2025-04-01 10:00", None, None, closed="2025-04-02 10:00")])  # closed unmerged
    tables = metrics(ev)
    s = tables["pr_summary"]
    team = s[s["scope_ref"] == TEAM].iloc[0]
    assert (team["merged"], team["merged_without_review"], team["open_prs"], team["stale_prs"]) == (2, 1, 2, 1)
    assert team["share_merged_without_review"] == 0.5
    stale = tables["stale_prs"]
    listed = stale[stale["scope_ref"] == TEAM]
    assert listed["url"].tolist() == ["https://github.com/acme/alpha-api/pull/3"] and listed["rank"].tolist() == [1]


def test_review_load_is_suppressed_below_k_reviewers():
    few = [{"entity_ref": API, "source": "github", "repository": "acme/alpha-api", "number": 1, "reviewer": f"p_{i}",
            "submitted_at": T("2025-05-20 10:00"), "state": "APPROVED"} for i in range(3)]
    many = [{"entity_ref": SHOP, "source": "github", "repository": "acme/bravo-shop", "number": n, "reviewer": f"p_r{i}",
             "submitted_at": T("2025-05-20 10:00"), "state": "COMMENTED"} for i in range(6) for n in range(i + 1)]
    tables = metrics(events(reviews=few + many))
    load = tables["review_load"].set_index(tables["review_load"]["scope_ref"].astype(str))
    assert bool(load.loc[TEAM, "suppressed"]) and np.isnan(load.loc[TEAM, "reviewers"])
    assert load.loc[OTHER, "reviewers"] == 6 and load.loc[OTHER, "reviews"] == 21 and load.loc[OTHER, "p50"] == 3.5
    assert load.loc[OTHER, "top_fifth_share"] == pytest.approx(11 / 21)  # the busiest two of six (a fifth, rounded up)
    people = tables["reviewer_load"]
    assert set(people["scope_ref"].astype(str)) == {OTHER, "org"}


def test_bands_follow_the_dora_2023_limits():
    bands = DeliveryConfig().bands
    assert band_of(8, bands.deployment_frequency, False) == "elite"
    assert band_of(1, bands.deployment_frequency, False) == "high"
    assert band_of(0.5, bands.deployment_frequency, False) == "medium"
    assert band_of(0.1, bands.deployment_frequency, False) == "low"
    assert band_of(23.9, bands.lead_time, True) == "elite" and band_of(24, bands.lead_time, True) == "high"
    assert band_of(800, bands.lead_time, True) == "low"
    assert band_of(0.05, bands.change_failure_rate, True, inclusive=True) == "elite"
    assert band_of(0.06, bands.change_failure_rate, True, inclusive=True) == "high"
    assert band_of(0.5, bands.time_to_restore, True) == "elite" and band_of(200, bands.time_to_restore, True) == "low"
    assert band_of(float("nan"), Band(elite=1, high=2, medium=3), True) is None


def test_a_new_day_merged_into_cached_facts_gives_the_same_tables_as_computing_from_scratch():
    from analytics.delivery.synthetic import known_at, synthetic_delivery_events

    ents = pd.DataFrame({"ref": [f"component:default/c{i}" for i in range(30)], "kind": "component",
                         "name": [f"c{i}" for i in range(30)], "owner": [f"group:default/t{i % 4}" for i in range(30)]})
    end = pd.Timestamp("2025-06-02", tz="UTC")
    ev = synthetic_delivery_events(ents, None, days=90, seed=3, end=end.to_pydatetime())
    config = DeliveryConfig()
    yesterday = known_at(ev, (end - pd.Timedelta(days=1)).to_pydatetime())
    cached = daily_facts(yesterday, config)
    since = date(2025, 5, 30)
    fresh = daily_facts(ev, config, since=since)
    merged = merge_facts(cached, fresh, since)
    scratch = daily_facts(ev, config)
    scopes = Scopes(ents, None)
    before = delivery_metrics(cached, ents, None, config, as_of=date(2025, 5, 31), scopes=scopes)
    changed = first_changed_day(fresh, since)
    assert changed < since  # an incident of an earlier week was resolved since: its week is recomputed
    a = delivery_metrics(merged, ents, None, config, as_of=date(2025, 6, 1), scopes=scopes, previous=before, since=changed)
    b = delivery_metrics(scratch, ents, None, config, as_of=date(2025, 6, 1), scopes=scopes)
    assert set(a["dora_weekly"]["week"].astype(str)) == set(b["dora_weekly"]["week"].astype(str))
    for name in ("dora_summary", "dora_weekly", "pr_flow", "review_load"):
        x, y = a[name].astype(str), b[name].astype(str)
        x, y = (f.sort_values(list(f.columns)).reset_index(drop=True) for f in (x, y))
        pd.testing.assert_frame_equal(x, y)


def test_delivery_config_file_loads_and_bad_values_name_the_line(tmp_path):
    from pathlib import Path

    shipped = load_config(Path(__file__).resolve().parents[2] / "config" / "delivery.yaml")
    assert shipped.window_days == 28 and shipped.bands.lead_time.elite == 24
    bad = tmp_path / "delivery.yaml"
    bad.write_text("window_days: 28\ntimezone: Mars/Olympus\nstale_pr_days: 0\n")
    with pytest.raises(DeliveryConfigError) as info:
        load_config(bad)
    text = str(info.value)
    assert f"{bad}:2" in text and "unknown time zone" in text and f"{bad}:3" in text
    assert parse_config(None) == DeliveryConfig()


def test_the_shipped_check_deploys_weekly_reads_the_delivery_facts():
    from datetime import UTC, datetime
    from pathlib import Path

    from analytics.delivery.metrics import ENTITY_FACTS, entity_facts
    from analytics.facts.sources import FactSpec
    from analytics.scorecards.config import load_config_texts
    from analytics.scorecards.evaluate import evaluate

    ev = events(deployments=[deploy(i, f"2025-05-{10 + i:02d} 10:00", f"s{i}") for i in range(6)]  # 6 in 4 weeks on API
                + [deploy(9, "2025-05-20 10:00", "x", entity=SHOP, repo="acme/bravo-shop")])  # 1 in 4 weeks on SHOP
    facts = entity_facts(metrics(ev))
    assert set(facts.columns) == {"entity_ref", *ENTITY_FACTS}
    text = (Path(__file__).resolve().parents[2] / "config" / "scorecards" / "delivery.yaml").read_text()
    config = load_config_texts([("delivery.yaml", text)], facts={f"delivery.{k}": FactSpec(t, d) for k, (t, d) in ENTITY_FACTS.items()})

    def body(name):
        return {"kind": "Component", "metadata": {"name": name, "namespace": "default"}, "spec": {"type": "service", "owner": "alpha"}}

    entities = pd.DataFrame([{"ref": f"component:default/{n}", "kind": "component", "namespace": "default", "name": n, "type": "service",
                              "owner": TEAM, "system": None, "lifecycle": "production", "provider": "t", "entity": body(n)}
                             for n in ("alpha-api", "bravo-shop", "alpha-web")])
    result = evaluate(config, entities, {"delivery": facts.astype(object).where(facts.notna(), None)}, now=datetime(2025, 6, 2, tzinfo=UTC))
    rows = result.results[result.results["check_id"] == "dlv-deploys-weekly"]
    state = dict(zip(rows["entity_ref"].astype(str), rows["state"].astype(str)))
    assert state == {API: "passed", SHOP: "failed", WEB: "not_reported"}


def test_no_events_at_all_gives_zero_deployments_and_not_enough_data_not_an_error():
    tables = metrics(events(), DeliveryConfig())
    freq = key(tables, "deployment_frequency", TEAM)
    assert freq["value"] == 0 and freq["band"] == "low"
    assert key(tables, "lead_time", "org", "org")["reason"] == "not enough data: 0 changes < 5"
    assert len(tables["stale_prs"]) == 0 and tables["incidents_summary"].iloc[0]["incidents"] == 0


def test_merging_kept_and_fresh_categoricals_gives_pandas_union_exactly():
    """`_union_categorical` (kept facts' codes untouched, fresh ones recoded) orders categories
    and codes as pandas' `union_categoricals` does, missing values and empty parts included."""
    from pandas.api.types import union_categoricals

    from analytics.delivery.metrics import _union_categorical

    rng = np.random.default_rng(1)
    names = np.array([f"component:default/s{i}" for i in range(30)] + [None], dtype=object)
    for _ in range(300):
        parts = []
        for _ in range(rng.integers(1, 4)):
            values = rng.choice(names, size=rng.integers(0, 20))
            extra = set(rng.choice(names[:-1], size=rng.integers(0, 3)))
            parts.append(pd.Categorical(values, categories=pd.Index(sorted({v for v in values if v is not None} | extra), dtype=object)))
        expected, got = union_categoricals(parts), _union_categorical(parts)
        assert list(got.categories) == list(expected.categories)
        assert np.array_equal(np.asarray(got.codes), np.asarray(expected.codes))
