"""The ingestion ledger: cycles (`ingestions`), their chunk marks, and per-provider controls.

The ledger is the only state the ingestion cycle has. Sensors, the CLI, admin routes and the health
checks all read it, so any process can pick up a cycle where another left it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.catalog import loads, utcnow

OPEN = "open"


@dataclass
class Ingestion:
    id: int
    provider: str
    cycle: int
    status: str
    next_action: str
    next_action_at: dt.datetime
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    ingestion_completed_at: dt.datetime | None
    rest_completed_at: dt.datetime | None
    completion_ticket: str
    burst_started_at: dt.datetime | None
    entities_seen: int
    removed: int | None
    sweep_outcome: str | None
    sweep_message: str | None

    @property
    def is_open(self) -> bool:
        return self.completion_ticket == OPEN


@dataclass
class Mark:
    id: int
    ingestion_id: int
    sequence: int
    cursor_in: Any
    cursor: Any
    done: bool
    entity_count: int
    added: int
    changed: int
    unchanged: int
    rejected: int
    source_total: int | None
    duration_ms: int
    created_at: dt.datetime


def _aware(value: Any) -> Any:
    # SQLite hands back naive datetimes; everything in the ledger is UTC.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _ingestion(row: sa.Row) -> Ingestion:
    return Ingestion(**{k: _aware(v) for k, v in row._asdict().items()})


def _mark(row: sa.Row) -> Mark:
    d = {k: _aware(v) for k, v in row._asdict().items()}
    d["cursor_in"], d["cursor"] = loads(d["cursor_in"]), loads(d["cursor"])
    return Mark(**d)


class Ledger:
    """The ingestion ledger, on an engine (each call its own transaction) or on a connection (every
    call joins the caller's transaction: the admin operations write their change and its audit row
    atomically this way)."""

    def __init__(self, bind: sa.Engine | sa.Connection):
        self.bind = bind

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Connection):
            yield self.bind
        else:
            with self.bind.connect() as conn:
                yield conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        if isinstance(self.bind, sa.Connection):
            yield self.bind  # the caller's transaction commits or rolls back
        else:
            with self.bind.begin() as conn:
                yield conn

    # ---------------------------------------------------------------- cycles

    def open_ingestion(self, provider: str) -> Ingestion | None:
        with self._reading() as conn:
            row = conn.execute(
                sa.select(s.ingestions).where(
                    (s.ingestions.c.provider == provider) & (s.ingestions.c.completion_ticket == OPEN)
                )
            ).first()
        return _ingestion(row) if row else None

    def start_cycle(self, provider: str, *, status: str = "bursting", next_action: str = "ingest",
                    next_action_at: dt.datetime | None = None) -> Ingestion:
        """Return the provider's open cycle, creating cycle N+1 if none is open.

        The unique (provider, completion_ticket) constraint makes concurrent starters safe: the
        loser of the race reads the winner's row.
        """
        existing = self.open_ingestion(provider)
        if existing:
            return existing
        now = utcnow()
        try:
            with self._writing() as conn:
                last = conn.execute(
                    sa.select(sa.func.max(s.ingestions.c.cycle)).where(s.ingestions.c.provider == provider)
                ).scalar()
                conn.execute(
                    s.ingestions.insert().values(
                        provider=provider,
                        cycle=(last or 0) + 1,
                        status=status,
                        next_action=next_action,
                        next_action_at=next_action_at or now,
                        attempts=0,
                        created_at=now,
                        completion_ticket=OPEN,
                        entities_seen=0,
                    )
                )
        except sa.exc.IntegrityError:
            pass
        created = self.open_ingestion(provider)
        assert created is not None
        return created

    def get(self, ingestion_id: int) -> Ingestion | None:
        with self._reading() as conn:
            row = conn.execute(sa.select(s.ingestions).where(s.ingestions.c.id == ingestion_id)).first()
        return _ingestion(row) if row else None

    def update(self, ingestion_id: int, **values: Any) -> None:
        with self._writing() as conn:
            conn.execute(s.ingestions.update().where(s.ingestions.c.id == ingestion_id).values(**values))

    def update_unless_status(self, ingestion_id: int, unless: str, **values: Any) -> bool:
        """Update the cycle unless its status is `unless` (checked in the same statement, so an
        operator's change made meanwhile is not overwritten). True if it was updated."""
        i = s.ingestions
        with self._writing() as conn:
            return conn.execute(i.update().where((i.c.id == ingestion_id) & (i.c.status != unless)).values(**values)).rowcount == 1

    def close(self, ingestion_id: int, **values: Any) -> None:
        """Finish a cycle: it stops being the provider's open cycle, and old marks are pruned."""
        self.update(ingestion_id, completion_ticket=uuid.uuid4().hex, **values)

    def history(self, provider: str, limit: int = 20) -> list[Ingestion]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(s.ingestions)
                .where(s.ingestions.c.provider == provider)
                .order_by(s.ingestions.c.cycle.desc())
                .limit(limit)
            ).all()
        return [_ingestion(r) for r in rows]

    def duplicate_open_ingestions(self) -> list[str]:
        """Providers with more than one cycle still open (not rested): Backstage's `duplicateIngestions`."""
        i = s.ingestions
        with self._reading() as conn:
            return sorted(conn.execute(
                sa.select(i.c.provider).where(i.c.rest_completed_at.is_(None))
                .group_by(i.c.provider).having(sa.func.count() > 1)
            ).scalars())

    def providers(self) -> list[str]:
        with self._reading() as conn:
            return sorted(conn.execute(sa.select(s.ingestions.c.provider).distinct()).scalars())

    # ---------------------------------------------------------------- marks

    def marks(self, ingestion_id: int) -> list[Mark]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(s.ingestion_marks)
                .where(s.ingestion_marks.c.ingestion_id == ingestion_id)
                .order_by(s.ingestion_marks.c.sequence)
            ).all()
        return [_mark(r) for r in rows]

    def mark(self, ingestion_id: int, sequence: int) -> Mark | None:
        with self._reading() as conn:
            row = conn.execute(
                sa.select(s.ingestion_marks).where(
                    (s.ingestion_marks.c.ingestion_id == ingestion_id) & (s.ingestion_marks.c.sequence == sequence)
                )
            ).first()
        return _mark(row) if row else None

    def last_mark(self, ingestion_id: int) -> Mark | None:
        with self._reading() as conn:
            row = conn.execute(
                sa.select(s.ingestion_marks)
                .where(s.ingestion_marks.c.ingestion_id == ingestion_id)
                .order_by(s.ingestion_marks.c.sequence.desc())
                .limit(1)
            ).first()
        return _mark(row) if row else None

    def cursor_repeats(self, ingestion_id: int, sequence: int, cursor: str) -> bool:
        """Whether a chunk before `sequence` of this cycle ended on `cursor` (its stored JSON text)."""
        m = s.ingestion_marks
        with self._reading() as conn:
            return conn.execute(
                sa.select(m.c.id).where((m.c.ingestion_id == ingestion_id) & (m.c.sequence < sequence) & (m.c.cursor == cursor)).limit(1)
            ).first() is not None

    def walk_served(self, ingestion_id: int, *, before: int) -> tuple[int, int | None]:
        """(items served, largest total the source reported) by this cycle's chunks before `before`."""
        m = s.ingestion_marks
        with self._reading() as conn:
            served, total = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(m.c.entity_count + m.c.rejected), 0), sa.func.max(m.c.source_total))
                .where((m.c.ingestion_id == ingestion_id) & (m.c.sequence < before))
            ).one()
        return int(served), total

    def clear_marks(self, provider: str, *, keep_cycles: int = 1, include_open: bool = False) -> int:
        """Delete chunk marks of finished cycles older than the newest `keep_cycles` finished ones."""
        i, m = s.ingestions, s.ingestion_marks
        with self._writing() as conn:
            finished = list(
                conn.execute(
                    sa.select(i.c.id)
                    .where((i.c.provider == provider) & (i.c.completion_ticket != OPEN))
                    .order_by(i.c.cycle.desc())
                ).scalars()
            )
            doomed = finished[keep_cycles:]
            if include_open:
                doomed += list(conn.execute(sa.select(i.c.id).where((i.c.provider == provider) & (i.c.completion_ticket == OPEN))).scalars())
            if not doomed:
                return 0
            return conn.execute(m.delete().where(m.c.ingestion_id.in_(doomed))).rowcount

    def reset_provider(self, provider: str) -> dict[str, int]:
        """Purge the provider's cycles, marks and mark refs (its entities stay in the catalog)."""
        i, m, me = s.ingestions, s.ingestion_marks, s.ingestion_mark_entities
        with self._writing() as conn:
            ids = sa.select(i.c.id).where(i.c.provider == provider)
            marks = conn.execute(m.delete().where(m.c.ingestion_id.in_(ids))).rowcount
            refs = conn.execute(me.delete().where(me.c.provider == provider)).rowcount
            cycles = conn.execute(i.delete().where(i.c.provider == provider)).rowcount
        return {"ingestions": cycles, "marks": marks, "mark_entities": refs}

    # ---------------------------------------------------------------- controls

    def controls(self, provider: str) -> dict[str, Any]:
        with self._reading() as conn:
            row = conn.execute(sa.select(s.provider_controls).where(s.provider_controls.c.provider == provider)).first()
        if row is None:
            return {"provider": provider, "paused": False, "halted_until": None, "updated_by": None, "updated_at": None}
        return {k: _aware(v) for k, v in row._asdict().items()}

    def set_controls(self, provider: str, *, actor: str | None = None, **values: Any) -> None:
        from catalog_pipelines.storage.sql import upsert

        current = self.controls(provider)
        current.update(values, updated_by=actor, updated_at=utcnow())
        with self._writing() as conn:
            upsert(conn, s.provider_controls, [current], keys=("provider",))
