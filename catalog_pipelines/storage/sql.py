"""Dialect-aware statements that Core does not spell the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")


def _insert(conn: sa.Connection, table: sa.Table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def insert_for(conn: sa.Connection, table: sa.Table):
    """The dialect's INSERT (with `on_conflict_do_nothing` / `_do_update`) for `table`."""
    return _insert(conn, table)


def upsert(conn: sa.Connection, table: sa.Table, rows: list[dict], keys: Sequence[str]) -> None:
    """Insert rows, updating the non-key columns of rows whose key already exists."""
    if not rows:
        return
    stmt = _insert(conn, table)
    update = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), rows)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split into lists of at most `size` (bound-parameter limits: SQLite allows 32k per statement)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def in_values(conn: sa.Connection, column: sa.ColumnElement, values: Iterable[str]) -> sa.ColumnElement[bool]:
    """`column IN values`, the whole list bound as ONE parameter however long it is.

    An expanding IN binds one parameter per value: SQLite caps them (32k per statement) and
    psycopg re-parses a 500-placeholder statement on every call (measured: 2.5 s of CPU per 40k
    entities just to look up fingerprints). PostgreSQL takes an array (`= ANY`), SQLite a JSON
    array read by `json_each`.
    """
    values = list(values)
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(sa.String)))
    each = sa.func.json_each(sa.bindparam(None, orjson.dumps(values).decode(), type_=sa.String)).table_valued("value")
    return column.in_(sa.select(each.c.value))


# Below this many rows a plain multi-row INSERT is as fast as COPY.
COPY_THRESHOLD = 500


def _copy_capable(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def psycopg_connection(conn: sa.Connection) -> Any:
    """The psycopg 3 connection under `conn` (same transaction), or None on SQLite or psycopg 2.

    For the few hot statements that need what SQLAlchemy does not expose: COPY, and array
    parameters sent in binary (`%b`), which psycopg dumps ~3x faster than as text.
    """
    return conn.connection.driver_connection if _copy_capable(conn) else None


def qualified_name(table: sa.Table) -> str:
    """`"schema"."table"` (or `"table"`) for the raw statements SQLAlchemy does not build."""
    return f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'


def bulk_write(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict],
    *,
    keys: Sequence[str] | None = None,
    on_conflict: str = "error",
) -> None:
    """Write many rows: COPY on PostgreSQL (psycopg 3), the dialect's multi-row INSERT elsewhere.

    `on_conflict`: "error" (plain insert, COPYed straight into the table on PostgreSQL) or "update"
    (upsert the non-key columns through the dialect's INSERT … ON CONFLICT). Runs inside the
    caller's transaction, so it stays atomic with the rest of the chunk. Measured on this machine's
    PostgreSQL (ARCHITECTURE.md §6): executemany inserts reach ~8.6k rows/s, COPY ~47k rows/s; for
    1.08M relation rows the direct COPY costs the server 35% less CPU than COPY into a staging
    table + ON CONFLICT DO NOTHING (12.5 s vs 19.3 s), and rows sorted by the primary key another
    17% (10.4 s): consecutive keys land in the same index pages. (The chunk path's one bulk upsert,
    the marks, is a single statement of its own: `storage/catalog._mark_seen`.)
    """
    if not rows:
        return
    if on_conflict == "update":
        upsert(conn, table, rows, keys or [])
        return
    if not _copy_capable(conn) or len(rows) < COPY_THRESHOLD:
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    cols = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {qualified_name(table)} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def pandas_copy(pd_table: Any, conn: sa.Connection, keys: Sequence[str], data_iter: Iterable[Sequence[Any]]) -> int:
    """`DataFrame.to_sql(method=pandas_copy)`: the rows pandas prepared (NaN already None,
    datetimes as `datetime`) sent by COPY on PostgreSQL (psycopg 3), by pandas' own executemany
    INSERT elsewhere or below COPY_THRESHOLD rows. The table, its columns and types are still
    pandas' (to_sql creates them); only the transport changes: measured at 20,000 entities,
    a scorecard evaluation's 12 tables took 28 s to INSERT and ~3 s to COPY."""
    rows = list(data_iter)
    if not _copy_capable(conn) or len(rows) < COPY_THRESHOLD:
        return pd_table._execute_insert(conn, keys, rows)
    table = f'"{pd_table.schema}"."{pd_table.name}"' if pd_table.schema else f'"{pd_table.name}"'
    copy_rows(psycopg_connection(conn), table, _column_list(keys), rows)
    return len(rows)


def _column_list(names: Iterable[Any]) -> str:
    """Column names quoted for a statement (a double quote inside a name doubled)."""
    return ", ".join('"' + str(name).replace('"', '""') + '"' for name in names)


# What a frame's column may hold for `write_frame_sql` to send it as CSV (what `infer_dtype` says
# of an object column): anything else (dicts, bytes, timedeltas, mixed types) goes through pandas'
# row path, which adapts (or refuses) each value as before.
_CSV_OBJECT_KINDS = frozenset({"string", "empty", "boolean", "integer", "floating", "mixed-integer-float", "date",
                               "datetime", "datetime64"})


def _csv_safe(frame: "pd.DataFrame") -> bool:
    """Whether every column of `frame` goes through Arrow's CSV writer -> PostgreSQL's CSV COPY
    unchanged: numbers, booleans, datetimes, dates, texts, categoricals of those."""
    import pandas as pd
    from pandas.api.types import infer_dtype

    for _, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            column = pd.Series(dtype.categories)
            dtype = column.dtype
        if dtype.kind in "biufM" or isinstance(dtype, pd.DatetimeTZDtype | pd.StringDtype | pd.BooleanDtype | pd.Float64Dtype | pd.Int64Dtype):
            continue
        if dtype != object or infer_dtype(column, skipna=True) not in _CSV_OBJECT_KINDS:
            return False
    return True


def write_frame_sql(conn: sa.Connection, name: str, frame: "pd.DataFrame", *, replace: bool) -> int:
    """Write `frame` to table `name` (replaced, or appended to), typed as `DataFrame.to_sql` types
    it (pandas creates the table). On PostgreSQL (psycopg 3), from COPY_THRESHOLD rows and for
    the column kinds CSV carries unchanged (`_csv_safe`), the frame goes to Arrow and Arrow's C++
    CSV writer (texts quoted, NULL an unquoted empty field: exactly PostgreSQL's CSV convention),
    sent as one `COPY ... FROM STDIN (FORMAT csv)`: on a 782 k-row delivery publish ~2.4 s
    through pandas' row tuples and `write_row`, ~0.7 s this way (pandas' own `to_csv`: 3.2 s).
    On SQLite, from COPY_THRESHOLD rows, one `executemany` of tuples (`_sqlite_executemany`).
    Elsewhere: `to_sql` with `pandas_copy`."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv
    from pandas.io.sql import SQLDatabase

    if replace:
        # dropped here, then created as appending to a missing table: pandas' own "replace"
        # reflects the old table first (several catalog queries: ~50 ms a table on PostgreSQL)
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
    if_exists = "append"
    bulk = len(frame) >= COPY_THRESHOLD
    if conn.dialect.name == "sqlite" and bulk:
        return _sqlite_executemany(conn, SQLDatabase(conn).prep_table(frame, name, if_exists=if_exists, index=False))
    arrow = None
    if _copy_capable(conn) and bulk and _csv_safe(frame):
        try:
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            arrow = None  # (a column pandas can store that Arrow cannot type: the row path)
    if arrow is None:
        frame.to_sql(name, conn, if_exists=if_exists, index=False, chunksize=50_000, method=pandas_copy)
        return len(frame)
    SQLDatabase(conn).prep_table(frame, name, if_exists=if_exists, index=False)
    buffer = io.BytesIO()
    pa_csv.write_csv(arrow, buffer, pa_csv.WriteOptions(include_header=False))
    with psycopg_connection(conn).cursor() as cur, \
            cur.copy(f'COPY "{name}" ({_column_list(frame.columns)}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(buffer.getvalue())  # (psycopg sends a large buffer in pieces itself)
    return len(frame)


def _sqlite_executemany(conn: sa.Connection, table: Any) -> int:
    """The rows of a pandas `SQLTable` (its frame, as `to_sql` converts it: NaN -> None, times
    -> `datetime`) inserted by one `executemany` of tuples on SQLite, each column's values bound
    through its SQLAlchemy type's bind processor once per column (what SQLAlchemy's executemany
    does per row, with a parameter dict per row): the same stored values, ~2.3x faster (166 k
    rows of 18 columns: 2.9 -> 1.25 s)."""
    keys, data = table.insert_data()
    columns = []
    for key, values in zip(keys, data):
        process = table.table.c[key].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        columns.append([None if v is None else process(v) for v in values] if process else values.tolist())
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({_column_list(keys)}) VALUES ({", ".join("?" * len(keys))})', list(zip(*columns)))
    return len(data[0]) if data else 0


def copy_out_frame(conn: sa.Connection, query: sa.Select) -> "pd.DataFrame | None":
    """The query's rows as a frame, read by `COPY (query) TO STDOUT` in CSV and parsed by pandas'
    C reader on PostgreSQL (psycopg 3): several times faster than fetching row tuples for the
    hundreds of thousands of rows an incremental delivery run reads. Text comes back as text (the
    columns the query types as strings, even when every value looks like a number), numbers as
    numbers, booleans as bool, NULL (and the empty string) as missing; the caller types times.
    None on other databases (the caller fetches rows)."""
    import io

    import pandas as pd

    raw = psycopg_connection(conn)
    if raw is None:
        return None
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    names = [c.name for c in query.selected_columns]
    # text columns stay text ("007" is not 7): the parser is told which they are from the query's types
    text = {c.name: "str" for c in query.selected_columns if isinstance(c.type, sa.String)}
    buffer = io.BytesIO()
    with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for data in copy:
            buffer.write(data)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in names})
    return pd.read_csv(buffer, header=None, names=names, keep_default_na=False, na_values=[""], true_values=["t"],
                       false_values=["f"], low_memory=False, dtype=text or None)


def copy_rows(raw: Any, target: str, names: str, rows: Iterable[Sequence[Any]]) -> None:
    """COPY `rows` (tuples in `names` order) into `target` on a psycopg 3 connection."""
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def insert_tuples(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert tuples in `columns` order (the table's other columns take their defaults), straight
    to the driver: COPY on PostgreSQL (psycopg 3), one executemany of tuples on SQLite, rather than
    through per-row parameter dictionaries (which can cost more than the insert itself). Values
    must already be what the driver takes (SQLite: convert datetimes first)."""
    if not rows:
        return
    names = ", ".join(columns)
    raw = psycopg_connection(conn)
    if raw is not None:
        copy_rows(raw, qualified_name(table), names, rows)
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"INSERT INTO {qualified_name(table)} ({names}) VALUES ({', '.join('?' * len(columns))})", rows)
    else:
        conn.execute(table.insert(), [dict(zip(columns, row)) for row in rows])


# COPY's text format: tab between columns, newline between rows, backslash escapes.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Sequence[Sequence[str]]) -> bytes:
    """Rows of strings (no NULLs) in COPY's text format.

    Joined in C first; only if the result holds a character COPY would misread (a tab or newline
    inside a value, a backslash, a carriage return) is every value escaped. Refs never do, so 1M
    relation rows cost ~0.3 s here instead of ~1.8 s through psycopg's row-at-a-time writer.
    """
    if not rows:
        return b""
    text = "\n".join(map("\t".join, rows))
    if (
        text.count("\t") == (len(rows[0]) - 1) * len(rows)
        and text.count("\n") == len(rows) - 1
        and "\\" not in text
        and "\r" not in text
    ):
        return (text + "\n").encode()
    return "".join("\t".join(value.translate(_COPY_ESCAPES) for value in row) + "\n" for row in rows).encode()


def insert_in_flight(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    in_flight: contextlib.ExitStack,
) -> None:
    """Insert rows of strings; on PostgreSQL, return while the server is still inserting them.

    The rows are sent as one COPY that is left open on `in_flight`: the server inserts and indexes
    them while the caller goes on (validating the next batch), and closing `in_flight` ends the
    COPY and waits for it. The connection can run nothing else until then. Failing rows surface
    when `in_flight` closes; if the caller raises first, the COPY is aborted with its error. On
    SQLite (or below COPY_THRESHOLD rows) it is a plain insert, finished on return.
    """
    if not rows:
        return
    if not _copy_capable(conn) or len(rows) < COPY_THRESHOLD:
        conn.execute(table.insert(), [dict(zip(columns, row)) for row in rows])
        return
    from psycopg.copy import LibpqWriter

    cols = ", ".join(f'"{c}"' for c in columns)
    cursor = in_flight.enter_context(conn.connection.driver_connection.cursor())
    # flush_threshold=0: hand every byte to the socket now, not when the COPY ends, so the
    # server starts on the rows at once.
    copy = in_flight.enter_context(cursor.copy(f"COPY {qualified_name(table)} ({cols}) FROM STDIN", writer=LibpqWriter(cursor, flush_threshold=0)))
    copy.write(copy_text(rows))
