"""The audit log: who did what to which target, when, and how it ended.

One table (`audit_log`, defined in storage/schema.py with the other catalog tables, so
it exists wherever the catalog does) for every audited operation in the project: scorecard
exemptions and the ingestion admin operations (pause, reset, ..., and their refusals). `details` is
free-form JSON for what the action needs to be understood later (a justification, an expiry, the
previous value). Rows are never deleted by the project and never updated, except the per-minute
summary of refused attempts while its minute lasts (`record_refusal`: refusals are bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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


# ----------------------------------------------------------------- refused attempts, bounded
#
# Refusals (no or an unknown token, a missing permission) are audited like everything else, but an
# attacker decides how many there are: a flood must not fill the disk. So each UTC minute holds at
# most REFUSALS_PER_WINDOW individual refusal rows plus one summary row that counts every refusal
# of that minute; the rest are only counted, by (action, reason, source).

REFUSALS_ACTION = "audit.refusals"
REFUSALS_PER_WINDOW = 10
REFUSAL_WINDOW = timedelta(minutes=1)
# Bound on the summary's breakdown and on every string a refusal row stores (callers pass
# attacker-chosen text: a path's provider name, a claimed actor).
MAX_SUMMARY_KEYS = 50
MAX_REFUSAL_TEXT = 200
OTHER_KEY = "(other)"
# Serialises refusal writers on PostgreSQL (SQLite: BEGIN IMMEDIATE does it), so two processes
# cannot both start a minute's summary or both take its last individual slot.
_REFUSALS_LOCK_KEY = 0x61756469  # "audi"


def max_refusal_rows_per_hour(per_window: int = REFUSALS_PER_WINDOW) -> int:
    return (per_window + 1) * int(timedelta(hours=1) / REFUSAL_WINDOW)


def refusal_window(at: datetime | None = None) -> datetime:
    """The start of the window (UTC minute, naive) an attempt at `at` counts in."""
    return _utc_naive(at).replace(second=0, microsecond=0)


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_REFUSAL_TEXT:
        return value[: MAX_REFUSAL_TEXT - 1] + "…"
    return value


def record_refusal(
    engine: sa.Engine,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str,
    source: str,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
    per_window: int = REFUSALS_PER_WINDOW,
) -> int | None:
    """Audit one refused attempt (outcome `denied`), bounded per minute.

    Every minute with a refusal has one summary row (action `audit.refusals`, target
    `refusals:<minute>`, details `{window, attempts, recorded, suppressed, suppressed_by}`) that
    counts all of that minute's refusals: `attempts == recorded + suppressed`. The first
    `per_window` refusals of a minute also get their own row (actor, action, target, and `reason`,
    `source` and `details` in details); later ones only raise the summary's counts, broken down by
    "action reason source" (at most MAX_SUMMARY_KEYS keys, the rest under "(other)"). A minute
    therefore holds at most `per_window + 1` rows (`max_refusal_rows_per_hour`), each of bounded
    size. The summary row is the one audit row that is updated, and only while its minute lasts.

    Returns the individual row's id, or None when the refusal was only counted.
    """
    from catalog_pipelines.storage.db import is_sqlite, transaction_with_ddl

    window = refusal_window(at)
    window_key = f"refusals:{window.isoformat(timespec='minutes')}"
    actor, action, target, reason, source = (_clip(v) or "?" for v in (actor, action, target, reason, source))
    with transaction_with_ddl(engine) as conn:
        if not is_sqlite(engine):
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_REFUSALS_LOCK_KEY)))
        summary = conn.execute(
            sa.select(audit_log.c.id, audit_log.c.details)
            .where(audit_log.c.target == window_key, audit_log.c.action == REFUSALS_ACTION)
            .order_by(audit_log.c.id).limit(1)
        ).first()
        counts = orjson.loads(summary.details) if summary is not None else {
            "window": window.isoformat(timespec="minutes"), "attempts": 0, "recorded": 0, "suppressed": 0,
            "suppressed_by": {},
        }
        counts["attempts"] += 1
        row_id = None
        if counts["recorded"] < per_window:
            counts["recorded"] += 1
            row_id = record(
                conn, actor=actor, action=action, target=target, outcome="denied", at=at,
                details={**{k: _clip(v) for k, v in (details or {}).items()}, "reason": reason, "source": source},
            )
        else:
            counts["suppressed"] += 1
            by = counts["suppressed_by"]
            key = _clip(f"{action} {reason} {source}")
            if key not in by and len(by) >= MAX_SUMMARY_KEYS:
                key = OTHER_KEY
            by[key] = by.get(key, 0) + 1
        if summary is None:
            record(conn, actor="anonymous", action=REFUSALS_ACTION, target=window_key, outcome="denied",
                   details=counts, at=window)
        else:
            conn.execute(audit_log.update().where(audit_log.c.id == summary.id)
                         .values(details=orjson.dumps(counts).decode()))
    return row_id


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
