"""The notification sent-log and delivery log (storage/notifications.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.notifications import already_sent, deliveries, record_delivery, sent_items

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_sent_digest_logs_its_items_once_and_a_failed_one_logs_none(catalog_url):
    engine = get_engine(catalog_url)
    record_delivery(engine, recipient="group:default/a", channel="teams", title="t", items=[("orphans", "k1"), ("orphans", "k2")],
                    outcome="failed", attempts=3, backoff_seconds=6, error="500", at=NOW - timedelta(days=10))
    assert sent_items(engine) == [] and already_sent(engine, [("group:default/a", "k1")]) == set()
    record_delivery(engine, recipient="group:default/a", channel="teams", title="t", items=[("orphans", "k1"), ("orphans", "k1")],
                    outcome="sent", attempts=1, at=NOW - timedelta(days=10))
    # a racing second run's row for the same item is dropped, not an error
    record_delivery(engine, recipient="group:default/a", channel="teams", title="t", items=[("orphans", "k1")], outcome="sent", attempts=1, at=NOW)
    assert sent_items(engine) == [("group:default/a", "orphans", "k1")]
    assert already_sent(engine, [("group:default/a", "k1"), ("group:default/a", "k2"), ("group:default/b", "k1")]) == {("group:default/a", "k1")}
    # reminders: only what was sent since the cut-off counts
    assert already_sent(engine, [("group:default/a", "k1")], since=NOW - timedelta(days=7)) == set()
    assert [(d.outcome, d.attempts, d.backoff_seconds, d.error) for d in deliveries(engine)][-1] == ("failed", 3, 6.0, "500")
