"""The synthetic delivery histories: the contract's frames, deterministic, and the planted effects
found by the metrics (analytics/delivery/synthetic.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from analytics.delivery.config import DeliveryConfig
from analytics.delivery.metrics import daily_facts, delivery_metrics
from analytics.delivery.synthetic import planted_teams, synthetic_delivery_events
from catalog_pipelines.model.delivery_events import COLUMNS, TIME_COLUMNS

END = datetime(2025, 6, 2, tzinfo=UTC)
SIZES = [14, 10, 8, 5, 4, 3, 2, 2]  # skewed team sizes


def org_entities() -> pd.DataFrame:
    rows = [(f"component:default/t{t}-c{i}", "component", f"t{t}-c{i}", f"group:default/team-{t}")
            for t, n in enumerate(SIZES) for i in range(n)]
    return pd.DataFrame(rows, columns=["ref", "kind", "name", "owner"])


@pytest.fixture(scope="module")
def generated():
    entities = org_entities()
    events = synthetic_delivery_events(entities, None, days=180, seed=7, end=END)
    config = DeliveryConfig()
    tables = delivery_metrics(daily_facts(events, config), entities, None, config, as_of=date(2025, 6, 1))
    return entities, events, tables


def team_key(tables, team, metric):
    s = tables["dora_summary"]
    return s[(s["scope_type"] == "team") & (s["scope_ref"] == team) & (s["metric"] == metric)].iloc[0]


def test_frames_follow_the_event_contract_with_utc_times_and_pseudonymised_people(generated):
    _, events, _ = generated
    for kind, columns in COLUMNS.items():
        assert tuple(events[kind].columns) == columns, kind
        for column in TIME_COLUMNS[kind]:
            assert str(events[kind][column].dtype) == "datetime64[ns, UTC]", (kind, column)
    assert events["pull_requests"]["author"].astype(str).str.startswith("p_").all()
    assert events["reviews"]["reviewer"].astype(str).str.startswith("p_").all()
    prs = events["pull_requests"]
    assert (prs["created_at"] <= END).all() and (prs["merged_at"].dropna() <= END).all()


def test_histories_are_realistic_skewed_bursty_and_imperfect(generated):
    _, events, _ = generated
    prs, deployments, incidents = events["pull_requests"], events["deployments"], events["incidents"]
    merged = prs[prs["merged_at"].notna()]
    reviewed = set(zip(events["reviews"]["repository"].astype(str), events["reviews"]["number"]))
    unreviewed = [k for k in zip(merged["repository"].astype(str), merged["number"]) if k not in reviewed]
    assert 0 < len(unreviewed) < 0.3 * len(merged)  # some merged without review
    open_prs = prs[prs["merged_at"].isna() & prs["closed_at"].isna()]
    assert ((END - open_prs["created_at"]).dt.days > 30).any()  # stale open PRs
    assert deployments["is_rollback"].any() and (~deployments["is_production"]).any()
    assert incidents["entity_ref"].isna().any()  # incidents on a service no entity carries
    prod = deployments[deployments["is_production"]]
    weekday = prod["created_at"].dt.weekday < 5
    assert weekday.mean() > 0.85  # deployments happen on working days
    per_entity = prod.groupby(prod["entity_ref"].astype(str)).size()
    assert per_entity.max() > 10 * per_entity.median()  # a few repositories do most of the work
    assert (prs["source"] == "gitlab").any() == prs["first_commit_at"].isna().any()


def test_the_same_seed_gives_the_same_history_and_another_seed_another():
    entities = org_entities().head(12)
    a = synthetic_delivery_events(entities, None, days=30, seed=1, end=END)
    b = synthetic_delivery_events(entities, None, days=30, seed=1, end=END)
    c = synthetic_delivery_events(entities, None, days=30, seed=2, end=END)
    for kind in COLUMNS:
        pd.testing.assert_frame_equal(a[kind], b[kind])
    assert not a["deployments"]["created_at"].equals(c["deployments"]["created_at"])


def test_chunked_generation_keeps_team_traits_and_unique_ids():
    entities = org_entities()
    events = synthetic_delivery_events(entities, None, days=30, seed=3, end=END, chunk_entities=7)
    assert events["deployments"]["deployment_id"].is_unique and events["incidents"]["incident_id"].is_unique
    assert set(events["pull_requests"]["entity_ref"].astype(str)) <= set(entities["ref"])


def test_the_planted_regression_elite_and_low_teams_are_found(generated):
    entities, _, tables = generated
    planted = planted_teams(entities, END)
    assert (planted.regressing_team, planted.elite_team, planted.low_team) == (
        "group:default/team-0", "group:default/team-1", "group:default/team-2")
    lead = team_key(tables, planted.regressing_team, "lead_time")
    assert lead["trend"] == "worsening" and lead["value"] > 1.3 * lead["previous_value"]
    for metric in ("deployment_frequency", "lead_time", "change_failure_rate"):
        assert team_key(tables, planted.elite_team, metric)["band"] == "elite", metric
    for metric in ("deployment_frequency", "lead_time"):
        assert team_key(tables, planted.low_team, metric)["band"] == "low", metric
