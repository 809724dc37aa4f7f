"""Reads and writes of the scorecard insight tables (`model.insight_tables.SCORECARDS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.model.insight_tables import InsightTable


def read_table(engine: "sa.Engine", table: "InsightTable") -> "pd.DataFrame | None":
    """A whole scorecard table, or None when it has never been written."""
    from catalog_pipelines.storage.insights import read_frame

    return read_frame(engine, table)


def select_rows(engine: "sa.Engine", table: "InsightTable", **equals: Any) -> "pd.DataFrame | None":
    """Rows of a (possibly large) scorecard table where each column equals a value (or is in a list)."""
    import pandas as pd
    import sqlalchemy as sa

    if not sa.inspect(engine).has_table(table.sql_name):
        return None
    tbl = sa.Table(table.sql_name, sa.MetaData(), autoload_with=engine)
    query = sa.select(tbl)
    for column, value in equals.items():
        query = query.where(tbl.c[column].in_(value) if isinstance(value, list | tuple) else tbl.c[column] == value)
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def write_tables(engine: "sa.Engine", tables: "dict[InsightTable, tuple[pd.DataFrame, bool]]") -> None:
    """Write several insight tables of this area in ONE transaction (`table: (frame, append)`).

    Either the whole evaluation lands (latest tables, history rows, the evaluation summary) or
    none of it does, so the change log never disagrees with the latest results.
    """
    from catalog_pipelines.storage.insights import write_frames

    write_frames(engine, {table: _storable(frame) for table, (frame, _) in tables.items()},
                 append={table for table, (_, append) in tables.items() if append})


def write_table(engine: "sa.Engine", table: "InsightTable", frame: "pd.DataFrame", *, append: bool = False) -> int:
    """Replace (or append to) one scorecard table atomically; returns the rows written."""
    from catalog_pipelines.storage.insights import write_frame

    return write_frame(engine, table, frame, append=append)


def _storable(frame: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(str)
    return out
