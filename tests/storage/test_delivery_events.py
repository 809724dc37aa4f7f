"""Delivery event storage: upsert by (source, key) with the day moving when a pull request is
merged later, retention per kind by day, typed readers by day range, day summaries; SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd

from catalog_pipelines.model import delivery_events as ev
from catalog_pipelines.storage import delivery_events as store
from catalog_pipelines.storage.db import ensure_schema, get_engine

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)


def t(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


def pr(number: int, **changes) -> dict:
    row = {"entity_ref": "component:default/api", "source": "github", "event_key": f"acme/api#{number}",
           "repository": "acme/api", "number": number, "url": f"https://github.com/acme/api/pull/{number}",
           "author": "p_" + "a" * 32, "created_at": t(2), "first_commit_at": t(1), "first_review_at": None,
           "approved_at": None, "merged_at": None, "closed_at": None, "additions": 10, "deletions": 2,
           "changed_files": 1, "merge_commit_sha": None, "draft": True}
    return {**row, **changes}


def engine_of(catalog_url):
    engine = get_engine(catalog_url)
    ensure_schema(engine)
    return engine


def test_a_pull_request_read_again_after_its_merge_replaces_its_row_and_moves_to_the_merge_day(catalog_url):
    engine = engine_of(catalog_url)
    store.write_events(engine, ev.PULL_REQUESTS, [pr(1), pr(2)], NOW)
    assert list(store.read_events(engine, ev.PULL_REQUESTS, date(2026, 11, 2), date(2026, 11, 2))["number"]) == [1, 2]
    merged = pr(1, first_review_at=t(3), approved_at=t(4), merged_at=t(5), closed_at=t(5), merge_commit_sha="abc", draft=False)
    store.write_events(engine, ev.PULL_REQUESTS, [merged], NOW)
    assert store.count_events(engine, ev.PULL_REQUESTS) == 2
    opened_day = store.read_events(engine, ev.PULL_REQUESTS, date(2026, 11, 2), date(2026, 11, 2))
    merge_day = store.read_events(engine, ev.PULL_REQUESTS, date(2026, 11, 5), date(2026, 11, 5))
    assert list(opened_day["number"]) == [2]
    (row,) = merge_day.to_dict("records")
    assert row["merged_at"] == pd.Timestamp(t(5)) and row["merge_commit_sha"] == "abc" and row["draft"] is False
    assert row["first_review_at"] == pd.Timestamp(t(3))


def test_read_events_returns_the_contract_columns_typed_in_chunks(catalog_url):
    engine = engine_of(catalog_url)
    store.write_events(engine, ev.PULL_REQUESTS, [pr(n, created_at=t(1 + n % 20, n % 24)) for n in range(250)], NOW)
    frame = store.read_events(engine, ev.PULL_REQUESTS, chunk_rows=40)
    assert tuple(frame.columns) == ev.PULL_REQUEST_COLUMNS
    assert len(frame) == 250 and frame["number"].is_unique
    assert str(frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["merged_at"].dtype) == "datetime64[ns, UTC]" and frame["merged_at"].isna().all()
    assert str(frame["number"].dtype) == "Int64" and frame["draft"].dtype == bool
    assert frame["merge_commit_sha"].isna().all()
    # repeated text is categorical (memory at millions of rows), one set of categories across chunks
    assert isinstance(frame["entity_ref"].dtype, pd.CategoricalDtype) and list(frame["entity_ref"].cat.categories) == ["component:default/api"]
    assert frame["url"].dtype == object and frame["url"].is_unique
    some = store.read_events(engine, ev.PULL_REQUESTS, columns=["entity_ref", "created_at"], since_day=date(2026, 11, 20))
    assert list(some.columns) == ["entity_ref", "created_at"] and (some["created_at"] >= pd.Timestamp("2026-11-20", tz="UTC")).all()
    empty = store.read_events(engine, ev.INCIDENTS, date(2020, 1, 1), date(2020, 1, 2))
    assert list(empty.columns) == list(ev.INCIDENT_COLUMNS) and str(empty["started_at"].dtype) == "datetime64[ns, UTC]"


def test_retention_drops_each_kinds_events_older_than_its_max_age_by_day(catalog_url):
    engine = engine_of(catalog_url)
    store.write_events(engine, ev.PULL_REQUESTS, [pr(1, created_at=t(1)), pr(2, created_at=t(20))], NOW)
    incident = {"entity_ref": None, "source": "pagerduty", "event_key": "Q1", "incident_id": "Q1", "service_id": "PX",
                "urgency": "high", "started_at": t(1), "resolved_at": t(1, 12)}
    store.write_events(engine, ev.INCIDENTS, [incident], NOW)
    pruned = store.apply_retention(engine, {ev.PULL_REQUESTS: 10, ev.INCIDENTS: 60}, date(2026, 11, 25))
    assert pruned == {ev.PULL_REQUESTS: 1, ev.INCIDENTS: 0}
    assert list(store.read_events(engine, ev.PULL_REQUESTS)["number"]) == [2]
    # an incident of a service no entity carries is stored with no entity
    assert store.read_events(engine, ev.INCIDENTS)["entity_ref"].isna().tolist() == [True]


def test_day_summary_counts_events_per_entity_unmapped_and_contradicting_times(catalog_url):
    engine = engine_of(catalog_url)
    rows = [{"entity_ref": ref, "source": "pagerduty", "event_key": key, "incident_id": key, "service_id": "P1",
             "urgency": "high", "started_at": t(3, 8), "resolved_at": resolved}
            for ref, key, resolved in [("component:default/a", "Q1", t(3, 9)), ("component:default/a", "Q2", t(3, 7)),
                                       ("component:default/b", "Q3", None), (None, "Q4", t(4))]]
    store.write_events(engine, ev.INCIDENTS, rows, NOW)
    summary = store.day_summary(engine, ev.INCIDENTS, date(2026, 11, 3))
    assert summary["events"] == 4 and summary["entities"] == 2 and summary["unmapped"] == 1
    assert summary["per_entity"] == {"component:default/a": 2, "component:default/b": 1}
    assert summary["problems"] == 1  # Q2 resolved before it started
    store.record_day(engine, [summary], NOW)
    store.record_day(engine, [{**summary, "events": 5}], NOW)  # re-closing replaces the record
    days = store.closed_days(engine)
    assert days[["kind", "events"]].values.tolist() == [["incidents", 5]]
    assert store.day_range(engine) == (date(2026, 11, 3), date(2026, 11, 3))
