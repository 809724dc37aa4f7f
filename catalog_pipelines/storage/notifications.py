"""The notification sent-log and delivery log (tables in storage/schema.py).

`services.notify` asks which items a recipient has already been sent (`already_sent`) before it
builds a digest, and records every delivery attempt's outcome (`record_delivery`): for a sent
digest, the delivery row and one sent-log row per item commit together, so an item is either
logged as sent with its delivery or not at all. Two runs racing on one item: the second's sent-log
row is dropped (`ON CONFLICT DO NOTHING`), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from catalog_pipelines.storage.schema import notification_deliveries, notifications_sent
from catalog_pipelines.storage.sql import batched, insert_for

SENT, FAILED = "sent", "failed"


@dataclass(frozen=True)
class Delivery:
    id: int
    at: datetime
    recipient: str
    channel: str
    title: str
    items: int
    outcome: str
    attempts: int
    backoff_seconds: float
    error: str | None


def already_sent(engine: sa.Engine, pairs: Iterable[tuple[str, str]], since: datetime | None = None) -> set[tuple[str, str]]:
    """The (recipient, item key) pairs of `pairs` in the sent-log (sent at or after `since`, if given)."""
    wanted = sorted(set(pairs))
    found: set[tuple[str, str]] = set()
    t = notifications_sent
    with engine.connect() as conn:
        for recipient in sorted({r for r, _ in wanted}):
            keys = [k for r, k in wanted if r == recipient]
            for batch in batched(keys, 500):
                query = sa.select(t.c.item_key).where(t.c.recipient == recipient, t.c.item_key.in_(batch))
                if since is not None:
                    query = query.where(t.c.sent_at >= since)
                found |= {(recipient, k) for (k,) in conn.execute(query)}
    return found


def record_delivery(
    engine: sa.Engine,
    *,
    recipient: str,
    channel: str,
    title: str,
    items: list[tuple[str, str]],
    outcome: str,
    attempts: int,
    backoff_seconds: float = 0.0,
    error: str | None = None,
    at: datetime | None = None,
    logged_as: Sequence[str] | None = None,
) -> int:
    """One delivery row and, in the same transaction, the sent-log rows of its `items` ((rule, key)
    pairs) under each name of `logged_as`: by default the recipient when `outcome` is sent, none
    when it failed. (A digest that reached some of its channel's URLs and not others logs its items
    under those URLs' destination names, so that the next run sends them to the others only.)
    Returns the delivery id."""
    if outcome not in (SENT, FAILED):
        raise ValueError(f"outcome must be {SENT!r} or {FAILED!r}, got {outcome!r}")
    at = at or datetime.now(timezone.utc)
    with engine.begin() as conn:
        delivery_id = int(conn.execute(notification_deliveries.insert().values(
            at=at, recipient=recipient, channel=channel, title=title[:300], items=len(items), outcome=outcome,
            attempts=attempts, backoff_seconds=float(backoff_seconds), error=error,
        )).inserted_primary_key[0])
        names = list(logged_as) if logged_as is not None else ([recipient] if outcome == SENT else [])
        if names and items:
            unique = {key[:512]: rule for rule, key in items}
            rows = [{"recipient": name[:320], "item_key": key, "rule": rule, "delivery_id": delivery_id, "sent_at": at}
                    for name in names for key, rule in unique.items()]
            for batch in batched(rows, 500):
                conn.execute(insert_for(conn, notifications_sent).on_conflict_do_nothing(index_elements=["recipient", "item_key"]), batch)
    return delivery_id


def deliveries(engine: sa.Engine, *, recipient: str | None = None, limit: int | None = None) -> list[Delivery]:
    """Delivery rows, newest first."""
    t = notification_deliveries
    query = sa.select(t).order_by(t.c.id.desc())
    if recipient:
        query = query.where(t.c.recipient == recipient)
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [Delivery(r.id, r.at, r.recipient, r.channel, r.title, r.items, r.outcome, r.attempts, r.backoff_seconds, r.error)
                for r in conn.execute(query)]


def sent_items(engine: sa.Engine, recipient: str | None = None) -> list[tuple[str, str, str]]:
    """(recipient, rule, item key) of every sent-log row (of `recipient`)."""
    t = notifications_sent
    query = sa.select(t.c.recipient, t.c.rule, t.c.item_key).order_by(t.c.recipient, t.c.item_key)
    if recipient:
        query = query.where(t.c.recipient == recipient)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]
