"""Synthetic portal usage has the shape the demo, tests and benchmarks rely on."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analytics.org import OrgGraph
from analytics.usage.synthetic import SyntheticUsage
from analytics.usage.events import RAW_SCHEMA, prepare_events
from catalog_pipelines.providers.synthetic import SyntheticOrg

START = date(2025, 1, 6)  # a Monday
DAYS = 56
LAUNCH = 21


@pytest.fixture(scope="module")
def org() -> OrgGraph:
    return OrgGraph.from_entities(SyntheticOrg(4000, seed=5).users_and_groups())


@pytest.fixture(scope="module")
def events(org) -> pd.DataFrame:
    gen = SyntheticUsage(org, seed=9, start=START, days=DAYS, events=120_000, launch_day=LAUNCH)
    table = pa.concat_tables(t for _, t in gen.tables())
    assert table.schema == RAW_SCHEMA
    frame = table.select(["ts", "user", "session_id", "action", "value", "plugin_id", "subject"]).to_pandas()
    frame["day"] = frame["ts"].dt.date
    return frame


def test_same_seed_same_events_and_another_seed_others(org):
    a = SyntheticUsage(org, seed=1, start=START, days=3, events=3000).day_table(1)
    b = SyntheticUsage(org, seed=1, start=START, days=3, events=3000).day_table(1)
    c = SyntheticUsage(org, seed=2, start=START, days=3, events=3000).day_table(1)
    assert a.equals(b)
    assert not a.equals(c)


def test_volume_is_close_to_the_requested_number_of_events(events):
    assert 0.9 * 120_000 <= len(events) <= 1.1 * 120_000


def test_weekdays_are_much_busier_than_weekends(events):
    per_day = events.groupby("day").size()
    weekday = per_day[[d.weekday() < 5 for d in per_day.index]].mean()
    weekend = per_day[[d.weekday() >= 5 for d in per_day.index]].mean()
    assert weekday > 5 * weekend


def test_usage_follows_a_power_law_across_teams(org, events):

    team = org.membership_frame().drop_duplicates("user_ref").set_index("user_ref")["group_ref"]
    per_team = events.dropna(subset=["user"]).assign(team=lambda f: f["user"].map(team)).groupby("team").size().sort_values(ascending=False)
    top = per_team.head(max(1, len(per_team) // 5)).sum()
    assert top / per_team.sum() > 0.5  # the busiest fifth of teams generate most of the traffic
    assert events["user"].nunique() < len(org.users)  # and some people never come


def test_the_launched_plugin_shows_an_adoption_curve(events):
    launch_day = START + pd.Timedelta(days=LAUNCH).to_pytimedelta()
    launched = events[events["plugin_id"] == "cost-insights"]
    assert launched["day"].min() >= launch_day
    first_use = launched.groupby("user")["day"].min()
    weeks = ((pd.to_datetime(first_use) - pd.Timestamp(launch_day)).dt.days // 7).value_counts().sort_index()
    cumulative = weeks.cumsum()
    # adopters keep arriving week after week: a rising curve, not a step
    assert len(cumulative) >= 4 and cumulative.iloc[-1] > 2 * cumulative.iloc[0]


def test_some_search_terms_never_find_anything_and_are_never_clicked(events):
    searches = events[events["action"] == "search"]
    zero_terms = set(searches.loc[searches["value"] == 0, "subject"])
    found_terms = set(searches.loc[searches["value"] > 0, "subject"])
    assert zero_terms and not (zero_terms & found_terms)  # a zero-result term is always empty
    share = (searches["value"] == 0).mean()
    assert 0.03 < share < 0.4
    discovers = events[events["action"] == "discover"]
    assert 0.2 < len(discovers) / len(searches) < 0.6


def test_backstage_shaped_events_pass_the_collector_validation(org):
    gen = SyntheticUsage(org, seed=3, start=START, days=2, events=2000)
    objs = list(gen.backstage_events(1))
    table, rejections = prepare_events(objs, b"k", now=datetime(2025, 1, 8, tzinfo=UTC))
    assert rejections == []
    assert table.num_rows == len(objs) == gen.day_table(1).num_rows
    assert np.isin(["navigate", "search", "discover", "create", "click"], table["action"].to_numpy(zero_copy_only=False)).all()
