"""Exact usage metrics on the hand-made fixture `tests/data/usage/events.jsonl` (+ `org.yaml`).

Every expected number below was worked out by hand from the fixture; the comments say how.

Days (UTC): Mon 03-03 alice, bob, erin (late line at the end of the file) + one anonymous event;
Tue 03-04 alice, bob, carol (carol's create is sent twice); Thu 03-06 dave, ghost (not in the
catalog); Mon 03-10 alice, dave; Tue 03-11 alice, carol. Three lines are malformed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analytics.org import OrgGraph
from analytics.usage.insights import UsageConfig, _rolling_distinct, compute_insights, normalise_page, summarise_day, window_summary
from catalog_pipelines.services.usage_pipeline import compact_days, insights, summarise_days
from catalog_pipelines.storage.usage_store import DailySummaryStore, RawEventStore
from helpers import TEST_DATA

DATA = TEST_DATA / "usage"
KEY = b"test-key"
NOW = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)
CONFIG = UsageConfig(min_team_size=2, min_term_users=2)


def fixture_org() -> OrgGraph:
    return OrgGraph.from_entities(yaml.safe_load_all((DATA / "org.yaml").read_text()))


def build_stores(tmp_path: Path) -> tuple[RawEventStore, DailySummaryStore]:
    raw, summaries = RawEventStore(tmp_path / "raw"), DailySummaryStore(tmp_path / "daily")
    raw.import_jsonl(DATA / "events.jsonl", KEY, now=NOW)
    compact_days(raw, raw.days())
    summarise_days(raw, summaries, raw.days(), CONFIG)
    return raw, summaries


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, pd.DataFrame]:
    _, summaries = build_stores(tmp_path_factory.mktemp("usage"))
    # the raw arithmetic, checked by hand below (published tables hide small counts: see
    # test_usage_people_k.py)
    return insights(summaries, org=fixture_org(), key=KEY, config=CONFIG, protect=False)


def by_day(frame: pd.DataFrame, column: str) -> dict[str, object]:
    return dict(zip(frame["day"], frame[column]))


def test_daily_active_users_count_each_signed_in_person_once_per_day(tables):
    daily = tables["daily"]
    assert by_day(daily, "dau") == {
        "2025-03-03": 3, "2025-03-04": 3, "2025-03-05": 0, "2025-03-06": 2, "2025-03-07": 0,
        "2025-03-08": 0, "2025-03-09": 0, "2025-03-10": 2, "2025-03-11": 2,
    }
    # 3 + 6 (the duplicate create counted once) + 2 + 3 + 2; the anonymous event counts as an event
    assert daily["events"].sum() == 20
    assert by_day(daily, "anonymous_events")["2025-03-03"] == 1


def test_wau_counts_a_user_active_on_two_days_of_the_week_once(tables):
    daily = tables["daily"]
    # 03-04: alice and bob were active on 03-03 and 03-04, erin 03-03, carol 03-04 -> 4, not 6
    assert by_day(daily, "wau")["2025-03-04"] == 4
    # 03-10 covers 03-04..03-10: {alice, bob, carol} + {dave, ghost} + {alice, dave} -> 5
    assert by_day(daily, "wau")["2025-03-10"] == 5
    # 03-11 covers 03-05..03-11: {dave, ghost} + {alice, dave} + {alice, carol} -> 4
    assert by_day(daily, "wau")["2025-03-11"] == 4
    weekly = tables["weekly"].set_index("week")
    # calendar week of 03-03: alice (Mon + Tue) and bob (Mon + Tue) once each -> 6 people
    assert weekly.loc["2025-03-03", "active_users"] == 6
    assert weekly.loc["2025-03-10", "active_users"] == 3
    assert bool(weekly.loc["2025-03-10", "partial"]) is True


def test_mau_and_stickiness(tables):
    daily = tables["daily"]
    assert by_day(daily, "mau")["2025-03-11"] == 6  # everyone who was ever active
    assert by_day(daily, "stickiness")["2025-03-11"] == pytest.approx(2 / 6)
    assert by_day(daily, "stickiness")["2025-03-03"] == pytest.approx(1.0)
    assert bool(by_day(daily, "mau_partial")["2025-03-11"]) is True  # 9 days of history < 28


def test_new_and_returning_users(tables):
    daily = tables["daily"]
    assert by_day(daily, "new_users") == {
        "2025-03-03": 3, "2025-03-04": 1, "2025-03-05": 0, "2025-03-06": 2, "2025-03-07": 0,
        "2025-03-08": 0, "2025-03-09": 0, "2025-03-10": 0, "2025-03-11": 0,
    }
    assert by_day(daily, "returning_users")["2025-03-04"] == 2  # alice, bob
    assert by_day(daily, "returning_users")["2025-03-11"] == 2  # alice, carol


def test_weekly_cohort_retention(tables):
    cohorts = tables["cohorts"].set_index(["cohort_week", "weeks_since"])
    assert cohorts.loc[("2025-03-03", 0), "cohort_users"] == 6
    assert cohorts.loc[("2025-03-03", 0), "retention"] == pytest.approx(1.0)
    # alice, carol and dave came back in the following week
    assert cohorts.loc[("2025-03-03", 1), "active_users"] == 3
    assert cohorts.loc[("2025-03-03", 1), "retention"] == pytest.approx(0.5)


def test_team_adoption_rolls_up_through_catalog_membership(tables):
    adoption = tables["adoption"].set_index("group_ref")
    # team-a: alice, bob, carol (memberOf), all active
    assert adoption.loc["group:default/team-a", ["members", "active_members"]].tolist() == [3, 3]
    # team-b: dave, erin, frank, bob (Group.spec.members); frank never came
    assert adoption.loc["group:default/team-b", "members"] == 4
    assert adoption.loc["group:default/team-b", "share"] == pytest.approx(0.75)
    # eng: 7 distinct people although bob is in two teams; ghost is not a member of anything
    assert adoption.loc["group:default/eng", "members"] == 7
    assert adoption.loc["group:default/eng", "share"] == pytest.approx(5 / 7)
    # team-c has one member: below the minimum size its figures are withheld
    assert bool(adoption.loc["group:default/team-c", "suppressed"]) is True
    assert pd.isna(adoption.loc["group:default/team-c", "share"])
    meta = tables["meta"].iloc[0]
    assert (meta["catalog_users"], meta["active_catalog_users"], meta["active_unknown_users"]) == (7, 5, 1)


def users_in(tables, dimension, days):
    """Distinct users per key in the last `days` days, straight from the stored histograms."""
    reach = tables["reach"]
    start = (pd.Timestamp(tables["meta"].iloc[0]["as_of"]) - pd.Timedelta(days=days - 1)).date().isoformat()
    rows = reach[(reach["dimension"] == dimension) & (reach["last_seen"] >= start)]
    return {k: int(v) for k, v in rows.groupby("key")["users"].sum().items()}


def test_pages_strip_query_and_route_parameters(tables):
    # the metric: distinct users per page from the last-seen histograms
    assert users_in(tables, "page", days=9) == {
        # alice, erin, ghost (the anonymous view counts as an event only); ?filters stripped
        "/catalog": 3,
        # petstore twice (one with ?tab=api) and api:default/orders
        "/catalog/:namespace/:kind/:name": 2,
        "/docs/:namespace/:kind/:name": 1, "/create": 1, "/": 1,
    }
    summary = window_summary(tables, days=9, top=10)
    pages = {row["key"]: (row["users"], row["events"]) for row in summary["top_pages"]}
    # pages one person used (fewer than k = 2) are not listed; nor is /catalog over 9 days: the
    # 7-day window shows its 2 users, and 3 - 2 would be the one person last there on 03-03
    assert pages == {"/catalog/:namespace/:kind/:name": (2, 3)}
    assert {row["key"]: row["users"] for row in window_summary(tables, days=7, top=10)["top_pages"]}["/catalog"] == 2


def test_top_plugins_and_entities(tables):
    assert users_in(tables, "plugin", days=9) == {"catalog": 4, "search": 2, "scaffolder": 1, "techdocs": 1, "home": 1}
    summary = window_summary(tables, days=9, top=10)
    plugins = {row["key"]: (row["users"], row["events"]) for row in summary["top_plugins"]}
    # scaffolder, techdocs and home were used by one person each: fewer than k = 2, not listed;
    # catalog's 4 is 1 more than its shown 7-day 3 (one person last there on 03-03): hidden
    assert plugins == {"search": (2, 7)}
    assert [(r["key"], r["users"]) for r in window_summary(tables, days=7, top=10)["top_plugins"]] == [("catalog", 3)]
    # spellings of one entity merge (Component:default/Petstore in the techdocs event); each entity
    # was used by one person, so the summary lists none
    entities = tables["reach"].query("dimension == 'entity'").groupby("key")["users"].sum().to_dict()
    assert entities == {"component:default/petstore": 1, "api:default/orders": 1}
    assert summary["top_entities"] == []


def test_search_zero_results_click_through_and_rare_terms(tables):
    summary = window_summary(tables, days=9)
    search = summary["search"]
    assert search["searches"] == 5
    # 4 searches carry a result count (orders' is hidden), 2 of them found nothing (kafka twice)
    assert search["zero_result_rate"] == pytest.approx(2 / 4)
    # only bob's first search was followed by a discover within 30 minutes (the other came 44 min later)
    assert search["click_through_rate"] == pytest.approx(1 / 5)
    # min_term_users=2: 'petstore' (bob only) and 'orders' (dave only) are never published
    assert search["top_terms"] == [{"term": "kafka", "searches": 2, "zero_results": 2, "clicked": 0}]
    assert tables["meta"].iloc[0]["hidden_search_terms"] == 2
    assert set(tables["search_terms_daily"]["term"]) == {"kafka"}
    assert "petstore" not in set(tables["reach"]["key"])


def test_templates_count_creates_and_minutes_saved(tables):
    templates = window_summary(tables, days=9)["templates"]
    # carol's create on 03-04 was sent twice and counts once
    assert templates["creates"] == 2
    assert templates["minutes_saved"] == pytest.approx(60.0)
    assert templates["top"] == [{"template": "template:default/springboot", "creates": 2, "minutes_saved": 60.0}]


def test_funnels_follow_steps_in_order_within_a_session(tables):
    funnels = window_summary(tables, days=9)["funnels"]
    # sessions s2, s5, s10 searched; s2 and s5 later opened a result (funnels have no time limit)
    assert [s["sessions"] for s in funnels["search_to_result"]] == [3, 2]
    # s6 opened the scaffolder then created; s12 created without opening it first
    assert [s["sessions"] for s in funnels["template_to_create"]] == [1, 1]
    # catalog index in s1, s3, s13, s8, s9; only s1 went on to an entity and its docs
    assert [s["sessions"] for s in funnels["catalog_to_docs"]] == [5, 1, 1]


def test_plugin_adoption_counts_each_person_new_once(tables):
    curve = tables["plugin_adoption"].set_index(["plugin", "week"])
    rows = lambda plugin: [tuple(int(v) for v in curve.loc[(plugin, w), ["active_users", "new_users", "cumulative_users"]]) for w in ("2025-03-03", "2025-03-10")]  # noqa: E731
    # catalog: alice, erin, dave, ghost in week 1; only alice (not new) in week 2
    assert rows("catalog") == [(4, 4, 4), (1, 0, 4)]
    # search: bob in week 1, dave (new to search) in week 2
    assert rows("search") == [(1, 1, 1), (1, 1, 2)]
    assert rows("home") == [(0, 0, 0), (1, 1, 1)]


def test_window_of_n_days_uses_last_seen_histograms(tables):
    summary = window_summary(tables, days=7)
    # 03-05..03-11: alice, carol, dave, ghost (= WAU on 03-11)
    assert summary["active_users"] == 4 == summary["wau"]
    assert summary["new_users"] == 2
    assert users_in(tables, "team", days=7)["group:default/team-a"] == 2  # alice, carol (bob last seen 03-04)
    adoption = {t["group_ref"]: (t["active_members"], t["members"]) for t in summary["adoption"]["top_teams"] + summary["adoption"]["bottom_teams"]}
    # team-a's 2 of 3 would name the one inactive member (fewer than k = 2): not shown
    assert "group:default/team-a" not in adoption
    assert adoption["group:default/eng"] == (3, 7)  # + dave


def test_every_user_value_at_rest_is_a_pseudonym(tmp_path):
    raw, _ = build_stores(tmp_path)
    text = b"".join(p.read_bytes() for p in (tmp_path / "raw").rglob("*.parquet"))
    for name in (b"alice", b"bob", b"carol", b"ghost", b"user:default"):
        assert name not in text
    assert all(raw.identity_leaks(day) == 0 for day in raw.days())


def test_a_new_day_only_summarises_that_day_and_matches_a_full_recompute(tmp_path):
    raw, summaries = RawEventStore(tmp_path / "raw"), DailySummaryStore(tmp_path / "daily")
    raw.import_jsonl(DATA / "events.jsonl", KEY, now=NOW)
    days = raw.days()
    compact_days(raw, days[:-1])
    summarise_days(raw, summaries, days[:-1], CONFIG)
    before = {d: (summaries.day_path(d) / "pairs.parquet").stat().st_mtime_ns for d in days[:-1]}

    compact_days(raw, [days[-1]])
    report = summarise_days(raw, summaries, [days[-1]], CONFIG)
    assert report.days == [days[-1]]
    assert {d: (summaries.day_path(d) / "pairs.parquet").stat().st_mtime_ns for d in days[:-1]} == before
    incremental = insights(summaries, org=fixture_org(), key=KEY, config=CONFIG)

    full_parts = {}
    for day in days:
        for name, frame in summarise_day(raw.read_day(day), day, CONFIG).parts().items():
            full_parts.setdefault(name, []).append(frame.assign(day=(day - date(1970, 1, 1)).days))
    full = compute_insights({k: pd.concat(v, ignore_index=True) for k, v in full_parts.items()}, org=fixture_org(), key=KEY, config=CONFIG)
    for name in ("daily", "weekly", "cohorts", "reach", "top_daily", "adoption", "plugin_adoption"):
        pd.testing.assert_frame_equal(incremental[name], full[name], check_dtype=False, obj=name)


@pytest.mark.parametrize(
    ("subject", "attributes", "page"),
    [
        ("/catalog/default/component/petstore?tab=api#x", {"namespace": "default", "kind": "component", "name": "petstore"}, "/catalog/:namespace/:kind/:name"),
        ("https://portal.example.com/docs/default/component/x/getting-started/", {"namespace": "default", "kind": "component", "name": "x"}, "/docs/:namespace/:kind/:name/getting-started"),
        # a parameter equal to the static prefix only replaces the trailing segment
        ("/catalog/default/component/catalog", {"namespace": "default", "kind": "component", "name": "catalog"}, "/catalog/:namespace/:kind/:name"),
        ("/create/templates/default/react%20app", {"namespace": "default", "templateName": "react app"}, "/create/templates/:namespace/:templateName"),
        ("/search?query=kafka", None, "/search"),
        ("", None, "/"),
    ],
)
def test_normalise_page(subject, attributes, page):
    assert normalise_page(subject, attributes) == page


def test_rolling_distinct_users_matches_brute_force():
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"day": rng.integers(100, 160, 2000), "user_code": rng.integers(0, 150, 2000)}).drop_duplicates()
    for window in (1, 7, 28):
        got = _rolling_distinct(rows, window, 100, 170)
        expected = [rows[(rows["day"] > d - window) & (rows["day"] <= d)]["user_code"].nunique() for d in range(100, 171)]
        assert got.tolist() == expected


def test_day_summary_of_an_empty_day_is_all_zeros():
    from analytics.usage.events import RAW_SCHEMA

    summary = summarise_day(RAW_SCHEMA.empty_table(), date(2025, 1, 1))
    assert summary.totals.iloc[0]["events"] == 0
    assert summary.pairs.empty and summary.users.empty
