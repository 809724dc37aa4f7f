"""Delivery events: one table per kind (`schema.delivery_event_tables`), upserted by (source,
event key), cut by `day`; the readers return the frames of `model/delivery_events.py`.

- `upsert_events(conn, kind, rows)`: inside the caller's transaction (`storage.facts.store_batch`
  writes a batch's events with its cursor), 1,000 rows a statement; an event read again (a pull
  request merged since) replaces its row, day included.
- `apply_retention(engine, max_age_days, today)`: deletes rows whose day is older than each kind's
  maximum age.
- `read_events(engine, kind, since_day, until_day)`: the kind's frame for a day range (inclusive),
  selecting only the frame's columns, fetched `READ_CHUNK` rows at a time and typed column-wise
  (times converted vectorised: SQLite hands text, PostgreSQL epoch microseconds), so 5 M rows
  never exist as Python row objects all at once.
- `day_summary(engine, kind, day)`, `record_day(...)`, `closed_days(...)`: what a daily partition
  holds (events per entity, unmapped, rows failing the checks) and the record of its closing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from catalog_pipelines.model import delivery_events as ev
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.sql import batched, in_values, upsert

READ_CHUNK = 100_000
WRITE_BATCH = 1000
# Text columns with few distinct values (entities, people, names, states) are read as pandas
# categoricals: at 5 M rows an object string per value would cost gigabytes. The rest (url, shas,
# ids) are plain text.
CATEGORICAL = frozenset({"entity_ref", "source", "repository", "author", "reviewer", "environment", "status", "state",
                         "service_id", "urgency", "workflow", "branch", "conclusion"})


def table(kind: str) -> sa.Table:
    try:
        return s.delivery_event_tables[kind]
    except KeyError:
        raise ValueError(f"unknown delivery event kind {kind!r}; known: {', '.join(ev.KINDS)}") from None


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    return value


# ---------------------------------------------------------------------------------------------
# writing


def upsert_events(conn: sa.Connection, kind: str, rows: Sequence[Mapping[str, Any]], now: dt.datetime) -> int:
    """Insert or replace events, each a mapping with `source`, `event_key`, `entity_ref` and the
    kind's other columns (missing ones are null); `day` is computed here (`ev.event_day`). Rows
    without a day (none of the kind's day times) are skipped. Returns the rows written."""
    t = table(kind)
    columns = [c for c in ev.COLUMNS[kind]]
    out: dict[tuple[str, str], dict[str, Any]] = {}  # the last read of a key in one batch wins
    for row in rows:
        values = {c: _utc(row.get(c)) for c in columns}
        day = ev.event_day(kind, values)
        if day is None:
            continue
        out[(row["source"], row["event_key"])] = {**values, "event_key": row["event_key"], "day": day, "collected_at": _utc(now)}
    for part in batched(list(out.values()), WRITE_BATCH):
        upsert(conn, t, part, ["source", "event_key"])
    return len(out)


def load_frame(engine: sa.Engine, kind: str, frame: pd.DataFrame, now: dt.datetime, *, batch_rows: int = 50_000) -> int:
    """Bulk-load a contract frame of events new to the table (no upsert: a key already stored is an
    error): the benchmark's and an import's path. `event_key` is the natural key columns
    (`ev.KEYS`) joined by `|` (`|2`, `|3` … appended to repeats), `day` computed column-wise; COPY on PostgreSQL. Returns the rows."""
    from catalog_pipelines.storage.sql import bulk_write

    t = table(kind)
    out = pd.DataFrame({c: frame[c] if c in frame.columns else None for c in ev.COLUMNS[kind]})
    day = None
    for column in ev.DAY_TIMES[kind]:
        moment = pd.to_datetime(out[column], utc=True)
        day = moment if day is None else day.fillna(moment)
    out["event_key"] = natural_keys(kind, out)
    out["day"] = day.dt.date
    out["collected_at"] = _utc(now)
    out = out[day.notna().to_numpy()]
    columns = [c.name for c in t.columns]
    written = 0
    for start in range(0, len(out), batch_rows):
        part = out.iloc[start:start + batch_rows]
        values: dict[str, list[Any]] = {}
        for column in columns:
            series = part[column]
            missing = series.isna().to_numpy()
            if column in ev.TIME_COLUMNS[kind] or column == "collected_at":
                items = list(pd.to_datetime(series, utc=True).dt.to_pydatetime()) if column != "collected_at" else [_utc(now)] * len(series)
            elif column in ev.INT_COLUMNS[kind]:
                items = [int(v) if not m else None for v, m in zip(series.to_numpy(dtype=object), missing)]
            elif column in ev.BOOL_COLUMNS[kind]:
                items = [bool(v) if not m else None for v, m in zip(series.to_numpy(dtype=object), missing)]
            else:
                items = list(series.astype(object).to_numpy())
            values[column] = [None if m else v for v, m in zip(items, missing)]
        rows = [dict(zip(columns, row)) for row in zip(*(values[c] for c in columns))]
        with engine.begin() as conn:
            bulk_write(conn, t, rows)
        written += len(rows)
    return written


def natural_keys(kind: str, frame: pd.DataFrame) -> pd.Series:
    """`load_frame`'s event keys: the natural key columns (`ev.KEYS`) joined by `|`, `|2`, `|3` …
    appended to repeats (two events with one natural key stay two)."""
    key = None
    for column in ev.KEYS[kind]:
        values = frame[column]
        text = values.astype(str) if column not in ev.TIME_COLUMNS[kind] else pd.to_datetime(values, utc=True).astype(str)
        key = text if key is None else key + "|" + text
    repeat = key.groupby(key).cumcount()
    return key.where(repeat == 0, key + "|" + repeat.astype(str))


def write_events(engine: sa.Engine, kind: str, rows: Sequence[Mapping[str, Any]], now: dt.datetime) -> int:
    with engine.begin() as conn:
        return upsert_events(conn, kind, rows, now)


def apply_retention(engine: sa.Engine, max_age_days: Mapping[str, int], today: dt.date) -> dict[str, int]:
    """Delete each kind's events whose day is more than its `max_age_days` before `today`."""
    pruned: dict[str, int] = {}
    with engine.begin() as conn:
        for kind, days in max_age_days.items():
            t = table(kind)
            cutoff = today - dt.timedelta(days=int(days))
            pruned[kind] = conn.execute(sa.delete(t).where(t.c.day < cutoff)).rowcount or 0
    return pruned


# ---------------------------------------------------------------------------------------------
# reading


def _selectable(engine: sa.Engine, t: sa.Table, kind: str, columns: Sequence[str]) -> list[sa.ColumnElement]:
    """The columns as fetched: times as text on SQLite ("2026-01-02 03:04:05.000000", stored UTC)
    and as integer microseconds since the epoch on PostgreSQL, both converted column-wise below,
    never by a Python result processor or datetime object per value."""
    times = set(ev.TIME_COLUMNS[kind])
    if engine.dialect.name == "sqlite":
        return [sa.type_coerce(t.c[c], sa.String).label(c) if c in times else t.c[c] for c in columns]
    return [sa.cast(sa.extract("epoch", t.c[c]) * 1_000_000, sa.BigInteger).label(c) if c in times else t.c[c] for c in columns]


def _typed(kind: str, frame: pd.DataFrame, epoch: bool = False) -> pd.DataFrame:
    """The frame's columns in their contract types; `epoch`: times arrive as epoch microseconds."""
    for c in frame.columns:
        if c in ev.TIME_COLUMNS[kind]:
            values = frame[c]
            if epoch:
                micros = pd.array(values, dtype="Int64")
                frame[c] = pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[ns, UTC]")
            else:
                frame[c] = pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
        elif c in ev.INT_COLUMNS[kind]:
            frame[c] = pd.array(frame[c], dtype="Int64")
        elif c in ev.BOOL_COLUMNS[kind]:
            frame[c] = frame[c].astype("boolean").fillna(False).astype(bool)
        elif c in CATEGORICAL:
            frame[c] = frame[c].astype(object).astype("category")
        else:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def empty_frame(kind: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    return _typed(kind, pd.DataFrame({c: pd.Series([], dtype=object) for c in (columns or ev.COLUMNS[kind])}))


def read_events(
    engine: sa.Engine,
    kind: str,
    since_day: dt.date | None = None,
    until_day: dt.date | None = None,
    *,
    entity_refs: Iterable[str] | None = None,
    repositories: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    chunk_rows: int = READ_CHUNK,
    production_only: bool = False,
    open_only: bool = False,
    merged_only: bool = False,
    collected_after: dt.datetime | None = None,
) -> pd.DataFrame:
    """The kind's events whose day is in `[since_day, until_day]` (either end open when None), as
    the contract frame (`ev.COLUMNS[kind]`, or the `columns` asked for, in that order), in no
    particular row order. Times are `datetime64[ns, UTC]`, counts nullable `Int64`, flags `bool`,
    repeated text (`CATEGORICAL`: entity, people, names, states) categorical, other text objects.

    Narrower reads (what a new day of the delivery metrics needs): `production_only` (deployments:
    successful production ones), `open_only` (pull requests neither merged nor closed, whatever
    their day), `merged_only` (merged pull requests), `collected_after` (rows collected after that moment, whatever their day),
    `repositories` (only these repositories' events: index on repository and day)."""
    t = table(kind)
    wanted = list(columns) if columns is not None else list(ev.COLUMNS[kind])
    unknown = [c for c in wanted if c not in ev.COLUMNS[kind]]
    if unknown:
        raise ValueError(f"{kind}: no columns {unknown}; columns: {list(ev.COLUMNS[kind])}")
    q = sa.select(*_selectable(engine, t, kind, wanted))
    if since_day is not None:
        q = q.where(t.c.day >= since_day)
    if until_day is not None:
        q = q.where(t.c.day <= until_day)
    if production_only:
        q = q.where(t.c.is_production.is_(True), sa.func.lower(t.c.status) == "success")
    if open_only:
        q = q.where(t.c.merged_at.is_(None), t.c.closed_at.is_(None))
    if merged_only:
        q = q.where(t.c.merged_at.is_not(None))
    if collected_after is not None:
        q = q.where(t.c.collected_at > _utc(collected_after))
    if repositories is not None:
        repositories = sorted(set(repositories))
        if not repositories:
            return empty_frame(kind, wanted)
    # No ORDER BY: ordering 5 M rows by key walks the primary key's index and reads the table in
    # random order (3x slower on SQLite); callers that need an order sort the frame.
    parts: list[pd.DataFrame] = []
    with engine.connect() as conn:
        if repositories is not None:
            q = q.where(in_values(conn, t.c.repository, repositories))
        if entity_refs is not None:
            q = q.where(in_values(conn, t.c.entity_ref, sorted(set(entity_refs))))
        elif engine.dialect.name == "postgresql":
            from catalog_pipelines.storage.sql import copy_out_frame

            frame = copy_out_frame(conn, q)  # COPY: the day ranges of a delivery run, ~3x faster than row tuples
            if frame is not None:
                return _typed(kind, frame, epoch=True) if len(frame) else empty_frame(kind, wanted)
        result = conn.execution_options(yield_per=chunk_rows).execute(q)
        for chunk in result.partitions(chunk_rows):
            # Column-wise (one transpose in C), not `from_records`, which inspects every row object.
            columns_of = list(zip(*chunk))
            parts.append(_typed(kind, pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in zip(wanted, columns_of)}),
                                epoch=engine.dialect.name != "sqlite"))
    if not parts:
        return empty_frame(kind, wanted)
    return _concat(parts)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks as one frame; categorical columns keep one set of categories (their union)."""
    if len(parts) == 1:
        return parts[0]
    from pandas.api.types import union_categoricals

    columns = {}
    for c in parts[0].columns:
        if isinstance(parts[0][c].dtype, pd.CategoricalDtype):
            values = [p[c].array for p in parts]
            if len({v.categories.dtype for v in values}) > 1:  # (text categories of two kinds, kept and read: as objects)
                values = [pd.Categorical.from_codes(v.codes, categories=pd.Index(v.categories.astype(object), dtype=object)) for v in values]
            columns[c] = pd.Series(union_categoricals(values))
        else:
            columns[c] = pd.concat([p[c] for p in parts], ignore_index=True)
    return pd.DataFrame(columns)


def first_day_collected_after(engine: sa.Engine, kind: str, after: dt.datetime, *, merged_only: bool = False) -> dt.date | None:
    """The first day holding an event of `kind` collected after `after` (index on `collected_at`;
    `merged_only`: pull requests that were merged): from there on, what was computed from the
    events before `after` may have changed."""
    t = table(kind)
    inner = sa.select(t.c.day).where(t.c.collected_at > _utc(after))
    if merged_only:
        inner = inner.where(t.c.merged_at.is_not(None))
    # OFFSET 0 fences the subquery: otherwise PostgreSQL answers min(day) by walking the day index
    # from the first day until a row matches, through every row collected earlier (1.6 s for 3.5 M
    # reviews) instead of the few rows the collected_at index finds (milliseconds)
    sub = inner.offset(0).subquery()
    q = sa.select(sa.func.min(sub.c.day))
    with engine.connect() as conn:
        low = conn.execute(q).scalar()
    return None if low is None else (low if isinstance(low, dt.date) else dt.date.fromisoformat(str(low)))


def count_open_pull_requests(engine: sa.Engine, until_day: dt.date) -> int:
    """How many pull requests, neither merged nor closed, are stored with a day up to `until_day`
    (the partial index on open pull requests): what a new day checks a kept set of open pull
    requests against before using it instead of reading them."""
    t = table(ev.PULL_REQUESTS)
    q = sa.select(sa.func.count()).select_from(t).where(t.c.merged_at.is_(None), t.c.closed_at.is_(None), t.c.day <= until_day)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def count_events(engine: sa.Engine, kind: str) -> int:
    t = table(kind)
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)


# ---------------------------------------------------------------------------------------------
# daily partitions


def day_summary(engine: sa.Engine, kind: str, day: dt.date) -> dict[str, Any]:
    """What one day holds of a kind: events, entities, unmapped (no entity), `per_entity`
    `{ref: events}`, and `problems`: rows whose times contradict each other or lie after the end
    of the day they were read on (a finish before its start, a merge before the creation)."""
    t = table(kind)
    with engine.connect() as conn:
        per_entity = {ref: int(n) for ref, n in conn.execute(
            sa.select(t.c.entity_ref, sa.func.count()).where(t.c.day == day).group_by(t.c.entity_ref))}
        checks = _contradictions(t, kind)
        problems = int(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.day == day, sa.or_(*checks))).scalar() or 0) if checks else 0
    unmapped = per_entity.pop(None, 0)
    return {"kind": kind, "day": day, "events": sum(per_entity.values()) + unmapped, "entities": len(per_entity),
            "unmapped": unmapped, "problems": problems, "per_entity": per_entity}


def _contradictions(t: sa.Table, kind: str) -> list[sa.ColumnElement[bool]]:
    pairs = {
        ev.PULL_REQUESTS: [("created_at", "merged_at"), ("created_at", "closed_at"), ("created_at", "first_review_at")],
        ev.DEPLOYMENTS: [("created_at", "finished_at")],
        ev.INCIDENTS: [("started_at", "resolved_at")],
        ev.PIPELINE_RUNS: [("started_at", "finished_at")],
    }.get(kind, [])
    return [sa.and_(t.c[b].is_not(None), t.c[a].is_not(None), t.c[b] < t.c[a]) for a, b in pairs]


def record_day(engine: sa.Engine, summaries: Iterable[Mapping[str, Any]], now: dt.datetime) -> None:
    rows = [{"day": x["day"], "kind": x["kind"], **{k: int(x[k]) for k in ("events", "entities", "unmapped", "problems")},
             "closed_at": _utc(now)} for x in summaries]
    with engine.begin() as conn:
        upsert(conn, s.delivery_event_days, rows, ["day", "kind"])


def closed_days(engine: sa.Engine, since_day: dt.date | None = None, until_day: dt.date | None = None) -> pd.DataFrame:
    """The closing records: day, kind, events, entities, unmapped, problems, closed_at."""
    t = s.delivery_event_days
    q = sa.select(t).order_by(t.c.day, t.c.kind)
    if since_day is not None:
        q = q.where(t.c.day >= since_day)
    if until_day is not None:
        q = q.where(t.c.day <= until_day)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
    return pd.DataFrame.from_records(rows, columns=[c.name for c in t.columns])


def day_range(engine: sa.Engine) -> tuple[dt.date | None, dt.date | None]:
    """The first and last day holding any event of any kind."""
    lows, highs = [], []
    with engine.connect() as conn:
        for t in s.delivery_event_tables.values():
            low, high = conn.execute(sa.select(sa.func.min(t.c.day), sa.func.max(t.c.day))).one()
            if low is not None:
                lows.append(low if isinstance(low, dt.date) else dt.date.fromisoformat(str(low)))
                highs.append(high if isinstance(high, dt.date) else dt.date.fromisoformat(str(high)))
    return (min(lows), max(highs)) if lows else (None, None)
