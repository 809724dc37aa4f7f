"""The declared freshness of the insight assets, evaluated as Dagster's time-window evaluator does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog_pipelines.model.freshness import FRESH, FRESHNESS, STALE, UNKNOWN, WARN, Freshness, combined, status, statuses

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOURLY = Freshness(timedelta(hours=3), timedelta(hours=2), "hourly")


@pytest.mark.parametrize("age, state", [(timedelta(minutes=30), FRESH), (timedelta(hours=2), WARN), (timedelta(hours=3), STALE)])
def test_an_asset_is_stale_from_its_fail_window_on_and_in_warning_from_its_warn_window(age, state):
    found = status(HOURLY, NOW - age, NOW)
    assert found.state == state and found.stale_since == NOW - age + timedelta(hours=3)


def test_labels_say_fresh_as_of_or_stale_since_and_naive_times_are_utc():
    assert status(HOURLY, NOW - timedelta(hours=1), NOW).label() == "fresh as of 2026-12-07T11:00+00:00"
    assert status(HOURLY, datetime(2026, 12, 7, 1, 0), NOW).label() == "stale since 2026-12-07T04:00+00:00"
    assert status(HOURLY, None, NOW).state == UNKNOWN


def test_a_page_is_as_fresh_as_its_oldest_source_and_stale_since_the_first_went_stale():
    materialized = {"scorecard_results": NOW - timedelta(hours=4), "scorecard_reports": NOW - timedelta(hours=5), "catalog_snapshot": NOW}
    page = combined(statuses(materialized, NOW, ["catalog_snapshot", "scorecard_results", "scorecard_reports"]))
    assert page.state == STALE and page.last == NOW - timedelta(hours=5) and page.stale_since == NOW - timedelta(hours=2)
    assert combined(statuses(materialized, NOW, ["catalog_snapshot"])) is None  # no declared policy


def test_windows_are_what_dagster_accepts():
    with pytest.raises(ValueError):
        Freshness(timedelta(hours=1), timedelta(hours=2), "warn after fail")
    assert all(f.warn is None or f.warn < f.fail for f in FRESHNESS.values())
