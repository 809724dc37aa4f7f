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
    engine: sa.Engine, frames: Mapping[InsightTable, pd.DataFrame], *, append: Collection[InsightTable] = ()
) -> dict[str, int]:
    """Replace several tables of one area (appending to those in `append`) in ONE transaction;
    returns the rows written per table name.

    An area's tables describe one computation (a report and its trend, a graph's nodes and edges):
    a reader sees all of the new ones or all of the old ones, never a mix.
    """
    from catalog_pipelines.storage.db import transaction_with_ddl
    from catalog_pipelines.storage.sql import pandas_copy

    tables = [_checked(t) for t in frames]  # validate every table before writing
    areas = {t.area for t in tables}
    if len(areas) > 1:
        raise ValueError(f"write_frames writes the tables of one area at a time, not of {sorted(areas)}")
    # `to_sql` replaces a table by DROP + CREATE: on SQLite that DDL must be in the transaction too.
    with transaction_with_ddl(engine) as conn:
        for table, frame in frames.items():
            # COPY on PostgreSQL (pandas' row INSERTs were most of a 200k scorecard evaluation).
            frame.to_sql(table.sql_name, conn, if_exists="append" if table in append else "replace", index=False,
                         chunksize=50_000, method=pandas_copy)
    return {table.name: len(frame) for table, frame in frames.items()}


def write_frame(engine: sa.Engine, table: InsightTable, frame: pd.DataFrame, *, append: bool = False) -> int:
    """Replace (or append to) one insight table atomically; returns the rows written."""
    return write_frames(engine, {table: frame}, append={table} if append else ())[table.name]


def read_frame(engine: sa.Engine, table: InsightTable) -> pd.DataFrame | None:
    """The stored table, or None when it has never been written."""
    name = _checked(table).sql_name
    if not sa.inspect(engine).has_table(name):
        return None
    with engine.connect() as conn:
        return pd.read_sql_table(name, conn)
