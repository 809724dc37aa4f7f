"""Insight aggregates as tables in the catalog database, so dashboards and the CLI read one place.

Each insight area writes whole DataFrames under a prefixed table name (`insight_<area>_<name>`).
Replacing a table happens inside one transaction, so a reader never sees a half-written table and a
failed computation leaves the previous good result in place.
"""

from __future__ import annotations

import re

import pandas as pd
import sqlalchemy as sa

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def table_name(area: str, name: str) -> str:
    for part in (area, name):
        if not _NAME.match(part):
            raise ValueError(f"insight table part {part!r} must match {_NAME.pattern}")
    return f"insight_{area}_{name}"


def write_frame(engine: sa.Engine, area: str, name: str, frame: pd.DataFrame, *, append: bool = False) -> int:
    """Replace (or append to) one insight table atomically; returns the rows written."""
    table = table_name(area, name)
    with engine.begin() as conn:
        frame.to_sql(table, conn, if_exists="append" if append else "replace", index=False, chunksize=5000)
    return len(frame)


def read_frame(engine: sa.Engine, area: str, name: str) -> pd.DataFrame | None:
    """The stored table, or None when it has never been written."""
    table = table_name(area, name)
    if not sa.inspect(engine).has_table(table):
        return None
    with engine.connect() as conn:
        return pd.read_sql_table(table, conn)
