"""`delivery_events_daily`: a day partition's materialisation closes that day of delivery events
(counts per kind and entity, the time check), and a backfill of a range closes those days in one
run; through Dagster's in-process API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timezone

import dagster as dg

from catalog_pipelines.assets.delivery import DELIVERY_EVENTS_DAILY, EVENT_TIMES_CONSISTENT, build_delivery_event_assets
from catalog_pipelines.model import delivery_events as ev
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.runs import QUIET_RUN_CONFIG, materialize_delivery_days
from catalog_pipelines.storage.db import ensure_schema, get_engine
from catalog_pipelines.storage.delivery_events import closed_days, write_events

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)


def t(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def seed(catalog_url: str) -> None:
    engine = get_engine(catalog_url)
    ensure_schema(engine)
    deployments = [{"entity_ref": f"component:default/{name}", "source": "github", "event_key": f"acme/{name}/d/{n}",
                    "repository": f"acme/{name}", "deployment_id": str(n), "environment": "production", "is_production": True,
                    "status": "success", "commit_sha": "abc", "created_at": t(day), "finished_at": t(day, 9 if bad else 11),
                    "is_rollback": False}
                   for n, (name, day, bad) in enumerate([("api", 3, False), ("api", 3, False), ("web", 3, False),
                                                          ("api", 4, True), ("web", 6, False)])]
    write_events(engine, ev.DEPLOYMENTS, deployments, NOW)
    write_events(engine, ev.INCIDENTS, [{"entity_ref": None, "source": "pagerduty", "event_key": "Q1", "incident_id": "Q1",
                                         "service_id": "PX", "urgency": "high", "started_at": t(3), "resolved_at": t(3, 12)}], NOW)


def test_one_day_partition_closes_that_day_with_counts_per_kind_and_entity(catalog_url):
    seed(catalog_url)
    result = dg.materialize(build_delivery_event_assets(), partition_key="2026-11-03", instance=dg.DagsterInstance.ephemeral(),
                            resources={"catalog": CatalogDatabase(url=catalog_url)}, run_config=QUIET_RUN_CONFIG)
    meta = {k: v.value for k, v in result.asset_materializations_for_node(DELIVERY_EVENTS_DAILY.path[-1])[0].metadata.items()}
    assert meta["days"] == 1 and meta["events_deployments"] == 3 and meta["events_incidents"] == 1
    assert meta["top_entities"] == {"component:default/api": 2, "component:default/web": 1}
    assert meta["without_entity_by_kind"]["incidents"] == 1
    assert [e.passed for e in result.get_asset_check_evaluations() if e.check_name == EVENT_TIMES_CONSISTENT] == [True]
    days = closed_days(get_engine(catalog_url))
    assert sorted(set(days["day"].astype(str))) == ["2026-11-03"]
    assert dict(zip(days["kind"], days["events"])) == {"deployments": 3, "incidents": 1, "pipeline_runs": 0,
                                                       "pull_requests": 0, "reviews": 0}


def test_a_backfill_of_a_range_closes_every_day_in_one_run_and_flags_contradicting_times(catalog_url):
    seed(catalog_url)
    instance = dg.DagsterInstance.ephemeral()
    out = materialize_delivery_days(instance, date(2026, 11, 2), date(2026, 11, 6), catalog_url=catalog_url)
    assert out["days"] == 5 and out["first"] == "2026-11-02" and out["last"] == "2026-11-06"
    # the deployment of the 4th finished before it started
    assert out["checks"] == {EVENT_TIMES_CONSISTENT: False}
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].tags["dagster/asset_partition_range_start"] == "2026-11-02"
    days = closed_days(get_engine(catalog_url))
    deployments = days[days["kind"] == "deployments"]
    per_day = dict(zip(deployments["day"].astype(str), deployments["events"]))
    assert per_day == {"2026-11-02": 0, "2026-11-03": 3, "2026-11-04": 1, "2026-11-05": 0, "2026-11-06": 1}
    problems = days[days["problems"] > 0]
    assert problems[["kind", "problems"]].values.tolist() == [["deployments", 1]]
    # without a range: every day holding events (the 3rd to the 6th)
    again = materialize_delivery_days(instance, catalog_url=catalog_url)
    assert (again["first"], again["last"]) == ("2026-11-03", "2026-11-06")
