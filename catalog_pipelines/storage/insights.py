"""Insight aggregates as tables in the catalog database, so dashboards and the CLI read one place.

Each insight area writes whole DataFrames under a prefixed table name (`insight_<area>_<name>`).
Tables are named by the objects declared once in `catalog_pipelines.model.insight_tables`
(`SCORECARDS.rollup_summary`), never by strings typed out.
Replacing an area's tables happens inside one transaction (DDL included, on SQLite too), so a
reader never sees a half-written table or a mix of old and new tables, and a failed write leaves
the previous good result in place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd
import sqlalchemy as sa

from catalog_pipelines.model.insight_tables import InsightTable

def _checked(table: object) -> InsightTable:
    if not isinstance(table, InsightTable):
        raise TypeError(f"insight tables are named by InsightTable objects (catalog_pipelines.model.insight_tables), not {table!r}")
    return table


def write_frames(
    engine: sa.Engine, frames: Mapping[InsightTable, pd.DataFrame], *, append: Collection[InsightTable] = (),
    delete: Mapping[InsightTable, sa.ColumnElement[bool]] | None = None,
) -> dict[str, int]:
    """Replace several tables of one area (appending to those in `append`) in ONE transaction;
    returns the rows written per table name.

    `delete`: for a table kept and changed in place (an incremental computation), the rows
    matching the condition (written with `sa.column(name)`) are deleted first, then the frame is
    appended: a new day rewrites its days, not the whole table.

    An area's tables describe one computation (a report and its trend, a graph's nodes and edges):
    a reader sees all of the new ones or all of the old ones, never a mix.
    """
    tables = [_checked(t) for t in frames]  # validate every table before writing
    areas = {t.area for t in tables}
    if len(areas) > 1:
        raise ValueError(f"write_frames writes the tables of one area at a time, not of {sorted(areas)}")
    delete = {_checked(t): condition for t, condition in (delete or {}).items()}
    with FramesWriter(engine, threaded=False) as writer:
        for table, frame in frames.items():
            writer.put(table, frame, delete=delete.get(table), append=table in append)
    return {table.name: len(frame) for table, frame in frames.items()}


class FramesWriter:
    """`write_frames` fed a table at a time while the caller computes the next ones: the tables
    are written, in the order given, on a thread of their own inside ONE transaction (the same
    all-or-nothing publish), so the database's share of the work overlaps the caller's.

        with FramesWriter(engine) as writer:
            writer.put(table, frame)                      # replaced whole
            writer.put(table, frame, delete=condition)    # rows matching deleted, frame appended
            writer.put(table, frame, append=True)
        writer.rows                                       # rows written per table name

    A table given again in the same transaction is appended to. `put` also takes a callable
    returning the frame (built on the writer's thread). A failure on the writer's thread is
    raised by the next `put` or at the end; leaving the block by an exception rolls everything
    back. On SQLite (one writer, in this process) the writes run at `put`, in the caller's thread."""

    def __init__(self, engine: sa.Engine, *, threaded: bool = True):
        self.engine = engine
        self.rows: dict[str, int] = {}
        self.seconds: dict[str, float] = {}  # the writer's time per table (building a callable's frame included)
        self._area: str | None = None
        self._written: set[InsightTable] = set()
        self._threaded = threaded and engine.dialect.name != "sqlite"

    def __enter__(self) -> FramesWriter:
        import queue
        import threading

        from catalog_pipelines.storage.db import transaction_with_ddl

        self._error: BaseException | None = None
        if not self._threaded:
            self._context = transaction_with_ddl(self.engine)
            self._conn = self._context.__enter__()
            return self
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="insights-writer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from catalog_pipelines.storage.db import transaction_with_ddl

        try:
            with transaction_with_ddl(self.engine) as conn:
                while True:
                    item = self._queue.get()
                    if item is None:
                        return
                    if item is _ABORT:
                        raise _Aborted
                    self._write(conn, *item)
        except _Aborted:
            return
        except BaseException as exc:  # raised in the caller's thread (`put`, the end of the block)
            self._error = exc
            while self._queue.get() not in (None, _ABORT):  # (the rest is not written: drained)
                pass

    def _write(self, conn: sa.Connection, table: InsightTable, frame, condition, append: bool) -> None:
        import time

        from catalog_pipelines.storage.sql import write_frame_sql

        started = time.perf_counter()
        if callable(frame):
            frame = frame()
        kept = append or condition is not None or table in self._written
        if condition is not None and sa.inspect(conn).has_table(table.sql_name):
            conn.execute(sa.delete(sa.table(table.sql_name)).where(condition))
        write_frame_sql(conn, table.sql_name, frame, replace=not kept)
        self._written.add(table)
        self.rows[table.name] = self.rows.get(table.name, 0) + len(frame)
        self.seconds[table.name] = round(self.seconds.get(table.name, 0.0) + time.perf_counter() - started, 3)

    def put(self, table: InsightTable, frame, *, delete: sa.ColumnElement[bool] | None = None, append: bool = False) -> None:
        table = _checked(table)
        if self._area is not None and table.area != self._area:
            raise ValueError(f"a FramesWriter writes the tables of one area at a time, not of {sorted({self._area, table.area})}")
        self._area = table.area
        if self._error is not None:
            raise self._error
        if self._threaded:
            self._queue.put((table, frame, delete, append))
        else:
            self._write(self._conn, table, frame, delete, append)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._threaded:
            self._context.__exit__(exc_type, exc, tb)
            return
        self._queue.put(_ABORT if exc_type is not None else None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


class _Aborted(Exception):
    pass


_ABORT = object()


def changed_rows(previous: pd.DataFrame | None, current: pd.DataFrame, key: str) -> pd.DataFrame:
    """The rows of `current` that are new or differ from `previous`'s row of the same `key` in any
    column (missing values equal each other): what an incremental run rewrites of a table it
    recomputed whole (`write_frames(delete=...)` for those keys). Every row when there is no
    previous table or its columns differ."""
    if previous is None or not len(previous) or set(previous.columns) != set(current.columns):
        return current
    import numpy as np

    pos = pd.Index(previous[key].astype(str)).get_indexer(current[key].astype(str))
    differs = pos < 0
    at = np.maximum(pos, 0)
    for column in current.columns:
        if column == key:
            continue
        new = current[column].reset_index(drop=True)
        old = previous[column].iloc[at].reset_index(drop=True)
        if any(pd.api.types.is_datetime64_any_dtype(c) for c in (new, old)):
            # (SQLite gives times back without their zone: instants compared as UTC)
            new, old = (pd.to_datetime(c, utc=True, errors="coerce") for c in (new, old))
        try:
            same = (new == old).fillna(False).to_numpy(bool) | (new.isna() & old.isna()).to_numpy(bool)
        except (TypeError, ValueError):  # types that do not compare: rewrite the rows
            return current
        differs |= ~same
    return current[differs]


def group_digests(frame: pd.DataFrame, keys: pd.Series) -> pd.Series:
    """One 64-bit digest per distinct key (the index, as text) of all the rows with that key,
    whatever their order: each row hashed by value column by column (pandas' `hash_pandas_object`,
    a categorical as its values), the hashes of a key's rows summed, and the column names mixed
    in. Equal digests, equal rows (but for a 2^-64 chance): what lets an incremental run rewrite
    only the keys whose rows changed without reading the previous rows back (`changed_keys`)."""
    import numpy as np

    codes, uniques = pd.factorize(keys)
    if not len(frame):
        return pd.Series(np.zeros(0, np.int64), index=pd.Index([], dtype=object))
    row_hash = pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)
    known = codes >= 0
    codes, row_hash = codes[known], row_hash[known]
    order = np.argsort(codes, kind="stable")
    c = codes[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if len(c) else np.zeros(0, np.int64)
    with np.errstate(over="ignore"):  # (uint64 sums wrap, as a hash should)
        sums = np.add.reduceat(row_hash[order], starts) if len(c) else np.zeros(0, np.uint64)
        sums = sums + np.uint64(pd.util.hash_array(np.asarray(["\x1f".join(map(str, frame.columns))], dtype=object))[0])
    names = np.asarray(uniques, dtype=object)[c[starts]]
    return pd.Series(sums.view(np.int64), index=pd.Index(np.asarray([str(n) for n in names], dtype=object), dtype=object))


def changed_keys(current: pd.Series, previous: pd.DataFrame | None) -> tuple[list[str], list[str]] | None:
    """Against the `previous` digests (a frame of `key`, `digest`), the keys of `current`
    (`group_digests`) that are new or whose rows changed, and the previous keys no longer
    present; None when there are no previous digests (rewrite everything)."""
    if previous is None or not len(previous):
        return None
    import numpy as np

    # (object indexes: hash lookups; pandas' Arrow-backed strings' isin is ~50x slower here)
    old_keys = pd.Index(np.asarray(previous["key"].astype(object), dtype=object), dtype=object)
    ours = pd.Index(np.asarray(current.index, dtype=object), dtype=object)
    old_digest = previous["digest"].to_numpy("int64")
    unique = ~old_keys.duplicated(keep="last")
    old_keys, old_digest = old_keys[unique], old_digest[unique]
    pos = old_keys.get_indexer(ours)
    same = (pos >= 0) & (old_digest[pos.clip(0)] == current.to_numpy()) if len(old_keys) else pos >= 0
    changed = ours[~same].tolist()
    removed = old_keys[ours.get_indexer(old_keys) < 0].tolist()
    return changed, removed


def read_rows(engine: sa.Engine, table: InsightTable, columns: Collection[str], *,
              where: sa.ColumnElement[bool] | None = None) -> list[tuple] | None:
    """Some text columns of the stored table's rows (matching `where`), as the driver gives them,
    without a frame around them (a few large values, such as the delivery area's kept documents);
    None when the table has never been written."""
    name = _checked(table).sql_name
    if not sa.inspect(engine).has_table(name):
        return None
    query = sa.select(*(sa.column(c, sa.Text) for c in columns)).select_from(sa.table(name))
    if where is not None:
        query = query.where(where)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query).all()]


def write_frame(engine: sa.Engine, table: InsightTable, frame: pd.DataFrame, *, append: bool = False) -> int:
    """Replace (or append to) one insight table atomically; returns the rows written."""
    return write_frames(engine, {table: frame}, append={table} if append else ())[table.name]


def read_frame(engine: sa.Engine, table: InsightTable, *, where: sa.ColumnElement[bool] | None = None) -> pd.DataFrame | None:
    """The stored table (the rows matching `where`, written with `sa.column(name)`), or None when
    it has never been written."""
    name = _checked(table).sql_name
    if not sa.inspect(engine).has_table(name):
        return None
    with engine.connect() as conn:
        if where is None:
            return pd.read_sql_table(name, conn)
        types = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(name)}
        columns = list(types)
        query = sa.select(*(sa.column(c, types[c]) for c in columns)).select_from(sa.table(name)).where(where)
        from catalog_pipelines.storage.sql import copy_out_frame

        frame = copy_out_frame(conn, query)  # PostgreSQL: COPY, parsed by pandas' C reader
        if frame is None:
            frame = pd.read_sql_query(query, conn)
        for c in columns:  # what read_sql_table types from the schema and a query cannot know
            if isinstance(types[c], (sa.DateTime, sa.TIMESTAMP)) and not str(frame[c].dtype).startswith("datetime"):
                frame[c] = pd.to_datetime(frame[c])
            elif isinstance(types[c], sa.Boolean) and frame[c].dtype != bool:
                frame[c] = frame[c].map({True: True, False: False, 1: True, 0: False, "t": True, "f": False})
        return frame
