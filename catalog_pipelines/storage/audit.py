"""The audit log: who did what to which target, when, and how it ended.

One append-only table (`audit_log`, defined in storage/schema.py with the other catalog tables, so
it exists wherever the catalog does) for every audited operation in the project: scorecard
exemptions and the ingestion admin operations (pause, reset, ..., and their refusals). `details` is free-form JSON for what the action needs to be understood later (a
justification, an expiry, the previous value). Rows are never updated or deleted by the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from catalog_pipelines.storage.schema import audit_log

OUTCOMES = ("success", "denied", "failure")

@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]


def _utc_naive(at: datetime | None) -> datetime:
    at = at or datetime.now(timezone.utc)
    return at.astimezone(timezone.utc).replace(tzinfo=None) if at.tzinfo else at


def record(
    bind: sa.Engine | sa.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one audit row and return its id.

    Pass a `Connection` to write the row in the caller's transaction (the audited change and its
    audit row then commit or roll back together); an `Engine` writes it in its own transaction.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if not actor or not action or not target:
        raise ValueError("actor, action and target are required")
    values = {
        "at": _utc_naive(at),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "details": orjson.dumps(details or {}, default=str).decode(),
    }
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            return int(conn.execute(audit_log.insert().values(**values)).inserted_primary_key[0])
    return int(bind.execute(audit_log.insert().values(**values)).inserted_primary_key[0])


def entries(
    engine: sa.Engine,
    *,
    action: str | None = None,
    action_prefix: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Audit rows, newest first, optionally filtered."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc())
    if action:
        query = query.where(audit_log.c.action == action)
    if action_prefix:
        query = query.where(audit_log.c.action.startswith(action_prefix))
    if target:
        query = query.where(audit_log.c.target == target)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if since:
        query = query.where(audit_log.c.at >= _utc_naive(since))
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.outcome, orjson.loads(r.details or "{}")) for r in rows]


def record_window(
    bind: sa.Engine | sa.Connection,
    *,
    actor: str,
    action: str,
    target: str,
    count: int,
    window_start: datetime,
    window_end: datetime,
    outcome: str = "denied",
    details: dict[str, Any] | None = None,
) -> int:
    """One audit row standing for `count` occurrences of the same event in [window_start, window_end).

    For events that arrive in floods (refused authentication at an open door): one row per kind and
    window keeps them audited while the table grows with time, not with the attacker's request
    rate. The row's `at` is the window's end; `details` gains `count` and the window's bounds.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    return record(
        bind,
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        details={**(details or {}), "count": int(count), "window_start": _utc_naive(window_start).isoformat(), "window_end": _utc_naive(window_end).isoformat()},
        at=window_end,
    )
