"""Insight aggregates as tables in the catalog database, so dashboards and the CLI read one place.

Each insight area writes whole DataFrames under a prefixed table name (`insight_<area>_<name>`).
Replacing an area's tables happens inside one transaction (DDL included, on SQLite too), so a
reader never sees a half-written table or a mix of old and new tables, and a failed write leaves
the previous good result in place.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import pandas as pd
import sqlalchemy as sa

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def table_name(area: str, name: str) -> str:
    for part in (area, name):
        if not _NAME.match(part):
            raise ValueError(f"insight table part {part!r} must match {_NAME.pattern}")
    return f"insight_{area}_{name}"


def write_frames(
    engine: sa.Engine, area: str, frames: Mapping[str, pd.DataFrame], *, append: Collection[str] = ()
) -> dict[str, int]:
    """Replace several tables of one area (appending to those named in `append`) in ONE transaction;
    returns the rows written per table.

    An area's tables describe one computation (a report and its trend, a graph's nodes and edges):
    a reader sees all of the new ones or all of the old ones, never a mix.
    """
    from catalog_pipelines.storage.db import transaction_with_ddl

    names = {name: table_name(area, name) for name in frames}  # validate every name before writing
    # `to_sql` replaces a table by DROP + CREATE: on SQLite that DDL must be in the transaction too.
    with transaction_with_ddl(engine) as conn:
        for name, frame in frames.items():
            frame.to_sql(names[name], conn, if_exists="append" if name in append else "replace", index=False, chunksize=5000)
    return {name: len(frame) for name, frame in frames.items()}


def write_frame(engine: sa.Engine, area: str, name: str, frame: pd.DataFrame, *, append: bool = False) -> int:
    """Replace (or append to) one insight table atomically; returns the rows written."""
    return write_frames(engine, area, {name: frame}, append={name} if append else ())[name]


def read_frame(engine: sa.Engine, area: str, name: str) -> pd.DataFrame | None:
    """The stored table, or None when it has never been written."""
    table = table_name(area, name)
    if not sa.inspect(engine).has_table(table):
        return None
    with engine.connect() as conn:
        return pd.read_sql_table(table, conn)
