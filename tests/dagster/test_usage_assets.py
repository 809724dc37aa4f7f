"""The usage assets through Dagster: partitions, checks, the arrivals sensor and retention."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pandas as pd
import pytest
import yaml

from catalog_pipelines.assets import usage as U
from catalog_pipelines.jobs import USAGE_DAYS_JOB, usage_days_job
from catalog_pipelines.partitions import usage_days
from catalog_pipelines.runs import materialize_usage
from catalog_pipelines.schedules import usage_schedules
from catalog_pipelines.sensors.usage import usage_arrivals_sensor
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.insights import read_frame
from helpers import TEST_DATA, seed_catalog
from catalog_pipelines.model.insight_tables import USAGE

DATA = TEST_DATA / "usage"
NOW = datetime(2025, 3, 12, 8, 0, tzinfo=UTC)


@pytest.fixture
def usage_env(data_env):
    url = Settings.from_env().catalog_database_url
    seed_catalog(url, list(yaml.safe_load_all((DATA / "org.yaml").read_text())))
    raw = U.raw_store()
    raw.import_jsonl(DATA / "events.jsonl", Settings.from_env().pseudonym_key, now=NOW)
    return url


def test_the_usage_assets_publish_the_insights(usage_env, dagster_instance):
    instance = dagster_instance
    result = materialize_usage(instance, catalog_url=usage_env)
    assert result["days"] == ["2025-03-03", "2025-03-04", "2025-03-06", "2025-03-10", "2025-03-11"]
    assert result["checks"] == {"users_pseudonymised": True, "metrics_consistent": True, "retained_days_summarised": True}

    engine = get_engine(usage_env)
    daily = read_frame(engine, USAGE.daily).set_index("day")
    assert daily.loc["2025-03-04", "events"] == 6
    # DAU 3 and WAU 4 are about fewer than k = 5 people: published as missing, never as 3 or 4
    assert daily.loc["2025-03-04", ["dau", "wau"]].isna().all()
    assert (daily["mau"].dropna() >= 5).all() and daily["mau"].notna().any()
    # the range run summarised the empty days in between too
    assert bool(daily.loc["2025-03-05", "summarised"]) and daily.loc["2025-03-05", "events"] == 0
    adoption = read_frame(engine, USAGE.adoption).set_index("group_ref")
    # default minimum team size 5: eng's teams (1, 3 and 4 people) are suppressed; so is eng (7
    # people, 5 active): its 2 inactive members are fewer than k
    assert adoption.loc["group:default/eng", "members"] == 7
    assert pd.isna(adoption.loc["group:default/eng", "share"]) and pd.isna(adoption.loc["group:default/eng", "active_members"])
    assert adoption["suppressed"].astype(bool).sum() == 4

    # the run metadata in the Dagster UI is a door too: DAU 2 on the last day is not shown
    published = instance.get_latest_materialization_event(U.USAGE_INSIGHTS).asset_materialization.metadata
    assert published["dau"].value == "suppressed" and published["mau"].value == 6
    activity = instance.get_latest_materialization_event(U.USAGE_DAILY_ACTIVITY).asset_materialization.metadata
    assert all(v == "suppressed" or v >= 5 for v in activity["active_users_by_day"].value.values())

    events = instance.get_latest_materialization_event(U.USAGE_EVENTS).asset_materialization
    assert events.metadata["duplicates_dropped"].value == 1
    assert events.metadata["events"].value == 20


def test_the_pseudonymisation_check_fails_on_a_raw_identity(usage_env, dagster_instance):
    from analytics.usage.events import prepare_events

    table, _ = prepare_events([{"eventId": "x", "timestamp": "2025-03-05T10:00:00Z", "action": "navigate", "subject": "/", "context": {"pluginId": "home"}}], b"k", now=NOW)
    U.raw_store().append(table.set_column(table.schema.get_field_index("user"), "user", pa.array(["user:default/jane"], pa.string())))
    result = dg.materialize([U.usage_events], partition_key="2025-03-05", instance=dagster_instance, raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == U.USERS_PSEUDONYMISED and evaluation.passed is False
    assert evaluation.metadata["values_not_pseudonymised"].value == 1


def test_the_arrivals_sensor_requests_each_complete_day_with_new_events_once(usage_env, dagster_instance):
    instance = dagster_instance
    first = usage_arrivals_sensor(dg.build_sensor_context(instance=instance))
    assert sorted(r.partition_key for r in first.run_requests) == ["2025-03-03", "2025-03-04", "2025-03-06", "2025-03-10", "2025-03-11"]
    materialize_usage(instance, catalog_url=usage_env)
    assert isinstance(usage_arrivals_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)

    key = Settings.from_env().pseudonym_key
    late = {"eventId": "late", "timestamp": "2025-03-04T12:00:00Z", "userEntityRef": "user:default/frank", "action": "navigate", "subject": "/", "context": {"pluginId": "home"}}
    today = dict(late, eventId="today", timestamp=datetime.now(UTC).isoformat())
    raw = U.raw_store()
    raw.ingest([late], key, source="test", now=NOW)
    raw.ingest([today], key, source="test", retention_days=10_000)
    second = usage_arrivals_sensor(dg.build_sensor_context(instance=instance))
    # today is not a partition yet: it waits for midnight UTC
    assert [r.partition_key for r in second.run_requests] == ["2025-03-04"]
    again = usage_arrivals_sensor(dg.build_sensor_context(instance=instance))
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in second.run_requests]  # same files, same run key

    materialize_usage(instance, days=[date(2025, 3, 4)], catalog_url=usage_env)
    daily = read_frame(get_engine(usage_env), USAGE.daily).set_index("day")
    assert daily.loc["2025-03-04", "events"] == 7  # frank's late visit counted in its own day


def test_retention_deletes_days_older_than_the_period(usage_env, dagster_instance):
    instance = dagster_instance
    materialize_usage(instance, catalog_url=usage_env)
    recent = datetime.now(UTC) - timedelta(days=1)
    U.raw_store().ingest(
        [{"eventId": "r", "timestamp": recent.isoformat(), "action": "navigate", "subject": "/", "context": {"pluginId": "home"}}],
        b"k", source="test",
    )
    result = dg.materialize([U.usage_retention], instance=instance)
    meta = result.asset_materializations_for_node("usage_retention")[0].metadata
    assert meta["days_deleted"].value == 5  # the March 2025 fixture is long past 90 days
    assert meta["summaries_deleted"].value == 9
    assert U.raw_store().days() == [recent.date()]
    assert U.summary_store().days() == []


def test_usage_definitions_load_and_only_depend_on_the_catalog_snapshot():
    defs = dg.Definitions(
        assets=U.usage_assets, jobs=[usage_days_job], sensors=[usage_arrivals_sensor], schedules=usage_schedules,
        resources={"catalog": CatalogDatabase(url="sqlite://")},
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    external = {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable}
    assert external == {"catalog_snapshot"}
    assert defs.resolve_job_def(USAGE_DAYS_JOB).partitions_def == usage_days
