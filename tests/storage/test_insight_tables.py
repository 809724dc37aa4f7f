"""Insight tables are declared once (`catalog_pipelines/model/insight_tables.py`) and handed from
area to area by those objects, never by names typed out (issue 17, item 3)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from catalog_pipelines.model.insight_tables import (
    AREAS,
    FACTS,
    GRAPH,
    SCORECARDS,
    SURVEYS,
    USAGE,
    InsightTable,
    all_tables,
)
from catalog_pipelines.storage.db import get_engine
from helpers import REPO_ROOT

ROOT = REPO_ROOT
DECLARATION = ROOT / "catalog_pipelines" / "model" / "insight_tables.py"
# Where code lives; docs/ and tests/ may name physical tables (they document and check them).
SOURCE_DIRS = ("catalog_pipelines", "analytics", "dashboards", "benchmarks")
# Functions that take insight tables: none of them may be given a name typed out.
TAKES_TABLES = {"read_frame", "read_rows", "write_frame", "write_frames", "read_table", "select_rows", "write_table", "write_tables",
                "published_table", "read_results", "missing_tables", "table", "has", "_read", "_facts", "sc"}
AREA_NAMES = {area.area for area in AREAS}
SQL_PREFIX = re.compile(r"^insight_(%s)_[a-z0-9_]+$" % "|".join(sorted(AREA_NAMES)))
KEYS = {f"{t.area}/{t.name}" for t in all_tables()}
DECLARED_NAMES = {t.name for t in all_tables()}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def _strings(node: ast.AST) -> list[str]:
    """String literals given as a table: the argument itself, or the keys/items of a literal container."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(node)]
    if isinstance(node, ast.Dict):
        return [s for key in node.keys if key is not None for s in _strings(key)]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for element in node.elts for s in _strings(element)]
    return []


def typed_out_table_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = _docstrings(tree)
    where = path.relative_to(ROOT)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if SQL_PREFIX.match(node.value) or node.value in KEYS:
                found.append(f"{where}:{node.lineno}: table name {node.value!r} typed out")
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            # `inputs.table(...)`/`inputs.has(...)` take tables; a bare `table(...)` is the CLI's text table
            # ... and a call handed one of them as a callback (`timed(label, write_tables, engine, {...})`)
            callback = any(isinstance(a, ast.Name) and a.id in TAKES_TABLES - {"table", "has"} for a in node.args)
            if callback or (func in TAKES_TABLES and (func not in {"table", "has"} or isinstance(node.func, ast.Attribute))):
                for arg in [*node.args, *(k.value for k in node.keywords if k.arg == "append")]:
                    for text in _strings(arg):
                        if text in DECLARED_NAMES or text in AREA_NAMES:
                                found.append(f"{where}:{node.lineno}: {func}() given the table name {text!r} typed out")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names = [t.id for t in (target.elts if isinstance(target, ast.Tuple) else [target]) if isinstance(t, ast.Name)]
                if any(re.search(r"(^|_)AREA$", n) for n in names) and set(_strings(node.value)) & AREA_NAMES:
                    found.append(f"{where}:{node.lineno}: area name typed out in {', '.join(names)}")
    return found


def test_insight_table_names_are_typed_out_only_in_their_declaration():
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py")) if p != DECLARATION]
    assert len(files) > 100
    problems = [problem for path in files for problem in typed_out_table_names(path)]
    assert not problems, "name insight tables by their declaration in catalog_pipelines/model/insight_tables.py:\n" + "\n".join(problems)


def test_the_source_check_catches_each_way_of_typing_a_name_out(tmp_path, monkeypatch):
    # The check above is only worth something if it sees these: one finding per line.
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text(
        'AREA = "scorecards"\n'
        'read_frame(engine, AREA, "rollup_summary")\n'
        'write_frames(engine, {"trend": frame}, append={"trend"})\n'
        'inputs.table("usage", "daily")\n'
        'name = "insight_graph_nodes"\n'
        'key = "facts/catalog_latest"\n'
        'fine = {"rollup_summary": 1}  # a JSON key, not a table handed over\n'
        'table(["entities", "members"], rows)  # the text table of the CLI, not an insight table\n'
        'timed("store", write_tables, engine, {"results": (frame, False)})\n'
    )
    lines = sorted({int(p.split(":")[1]) for p in typed_out_table_names(bad)})
    assert lines == [1, 2, 3, 4, 5, 6, 9]


def test_every_table_has_one_declaration_and_the_physical_names_are_unchanged():
    tables = all_tables()
    assert len({t.sql_name for t in tables}) == len(tables)
    # Existing databases keep working: the names are the ones written before the declarations.
    assert SCORECARDS.rollup_summary.sql_name == "insight_scorecards_rollup_summary"
    assert GRAPH.most_depended_on.sql_name == "insight_graph_most_depended_on"
    assert FACTS.latest("catalog").sql_name == "insight_facts_catalog_latest"
    assert [t.name for t in SURVEYS.tables()] == ["trends", "choices", "comments", "waves"]
    assert USAGE.get("daily") is USAGE.daily
    with pytest.raises(KeyError, match="no insight table 'dayly' is declared in area 'usage'"):
        USAGE.get("dayly")
    with pytest.raises(ValueError, match="must match"):
        InsightTable("usage", "Daily; DROP TABLE x")


def test_fact_sources_and_their_tables_are_declared_alike():
    from analytics.facts.sources import FACT_SOURCE_SPECS

    # + `collected_latest`: the long frame of collected facts the site reads (services.facts)
    assert {t.name for t in FACTS.tables()} == {n for s in FACT_SOURCE_SPECS for n in (s, f"{s}_latest")} | {"collected_latest"}


def test_insight_store_takes_declared_tables_and_keeps_the_physical_names(catalog_url):
    from catalog_pipelines.storage.insights import read_frame, write_frames

    engine = get_engine(catalog_url)
    assert write_frames(engine, {GRAPH.cycles: pd.DataFrame({"v": [1, 2]})}) == {"cycles": 2}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM insight_graph_cycles")).scalar() == 2
    assert read_frame(engine, GRAPH.cycles)["v"].tolist() == [1, 2]
    with pytest.raises(TypeError, match="InsightTable objects"):
        read_frame(engine, "cycles")
    with pytest.raises(ValueError, match="one area at a time"):
        write_frames(engine, {GRAPH.cycles: pd.DataFrame({"v": [1]}), USAGE.meta: pd.DataFrame({"v": [1]})})


def test_frames_handed_to_the_background_writer_land_in_one_transaction_or_not_at_all(catalog_url):
    """`FramesWriter` (a new day of the delivery metrics publishes through it while it computes):
    tables replaced, changed in place (delete + append) and given twice (appended) land together;
    a failing write on the writer's thread, or an exception in the caller's block, leaves every
    table as it was before the block, and the failure reaches the caller."""
    from catalog_pipelines.storage.insights import FramesWriter, read_frame, write_frames

    engine = get_engine(catalog_url)
    write_frames(engine, {GRAPH.cycles: pd.DataFrame({"v": [1, 2, 3]}), GRAPH.nodes: pd.DataFrame({"n": ["a"]})})
    with FramesWriter(engine) as writer:
        writer.put(GRAPH.cycles, pd.DataFrame({"v": [30]}), delete=sa.column("v") >= 3)
        writer.put(GRAPH.nodes, lambda: pd.DataFrame({"n": ["b", "c"]}))  # built on the writer's thread
        writer.put(GRAPH.nodes, pd.DataFrame({"n": ["d"]}))  # the same table again: appended
    assert writer.rows == {"cycles": 1, "nodes": 3}
    assert sorted(read_frame(engine, GRAPH.cycles)["v"]) == [1, 2, 30]
    assert sorted(read_frame(engine, GRAPH.nodes)["n"]) == ["b", "c", "d"]

    def broken() -> pd.DataFrame:
        raise RuntimeError("no frame")

    with pytest.raises(RuntimeError, match="no frame"):
        with FramesWriter(engine) as writer:
            writer.put(GRAPH.cycles, pd.DataFrame({"v": [99]}))
            writer.put(GRAPH.nodes, broken)
            writer.put(GRAPH.nodes, pd.DataFrame({"n": ["never"]}))
    with pytest.raises(KeyError):
        with FramesWriter(engine) as writer:
            writer.put(GRAPH.cycles, pd.DataFrame({"v": [98]}))
            raise KeyError("the caller failed")
    assert sorted(read_frame(engine, GRAPH.cycles)["v"]) == [1, 2, 30]
    assert sorted(read_frame(engine, GRAPH.nodes)["n"]) == ["b", "c", "d"]
    with pytest.raises(ValueError, match="one area at a time"):
        with FramesWriter(engine) as writer:
            writer.put(GRAPH.cycles, pd.DataFrame({"v": [1]}))
            writer.put(USAGE.meta, pd.DataFrame({"v": [1]}))


def test_a_frame_written_in_bulk_reads_back_exactly_as_through_pandas_rows(catalog_url, monkeypatch):
    """`write_frame_sql`'s bulk paths (>= COPY_THRESHOLD rows: CSV COPY on PostgreSQL, one
    executemany of tuples on SQLite) store what pandas' row path stores: NULL vs empty text, quotes, commas and newlines in texts, floats to the last
    digit, infinities, booleans with missing values, dates, naive and UTC times, categoricals,
    a text that reads like NULL; a column CSV cannot carry (dicts) sends the frame through the row path."""
    from datetime import date

    import numpy as np

    from catalog_pipelines.storage import sql as sql_mod

    n = 1_200
    texts = np.array(["plain", "", None, 'say "hi", twice', "line\nbreak", "tab\there", "ünï", "back\\slash", "\\N", "NULL"], dtype=object)
    frame = pd.DataFrame({
        "text": texts[np.arange(n) % len(texts)],
        "number": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n) / 3.0),
        "big": np.where(np.arange(n) % 11 == 0, np.inf, -np.arange(n) * 1e300),
        "count": np.arange(n, dtype=np.int64) * 1_000_003,
        "flag": np.array([True, False, None], dtype=object)[np.arange(n) % 3],
        "plain_flag": np.arange(n) % 2 == 0,
        "day": np.array([date(2025, 6, 1), date(2024, 2, 29), None], dtype=object)[np.arange(n) % 3],
        "at": pd.to_datetime(np.arange(n) * 3_600_123_456, unit="us", utc=True).where(np.arange(n) % 5 != 0),
        "naive": pd.Timestamp("2025-03-30 01:30:00") + pd.to_timedelta(np.arange(n), unit="min"),
        "cat": pd.Categorical(np.array(["team:a", "team:b", None], dtype=object)[np.arange(n) % 3]),
    })
    assert sql_mod._csv_safe(frame)
    engine = get_engine(catalog_url)

    def stored(name: str, fast: bool) -> pd.DataFrame:
        with engine.begin() as conn:
            if fast:
                with monkeypatch.context() as m:  # the bulk path, not a fallback to the rows
                    m.setattr(sql_mod, "pandas_copy", None)
                    sql_mod.write_frame_sql(conn, name, frame, replace=True)
            else:
                frame.to_sql(name, conn, if_exists="replace", index=False, method=sql_mod.pandas_copy)
        with engine.connect() as conn:
            types = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(name)}
            return pd.read_sql_query(sa.text(f'SELECT * FROM "{name}" ORDER BY "count"'), conn), types

    (fast, fast_types), (rows, row_types) = stored("insight_test_csv", True), stored("insight_test_rows", False)
    assert fast_types == row_types
    pd.testing.assert_frame_equal(fast, rows)
    text = fast["text"].astype(object)
    assert text.where(text.notna(), None).tolist()[:8] == ["plain", "", None, 'say "hi", twice', "line\nbreak", "tab\there", "ünï", "back\\slash"]
    assert set(text) >= {"\\N", "NULL"}
    assert fast["number"].iloc[1] == 1 / 3.0 and np.isinf(fast["big"].iloc[0])

    assert not sql_mod._csv_safe(pd.DataFrame({"d": [{"a": 1}] * 3}))


def test_changed_rows_are_the_new_and_the_different_never_the_equal_or_both_missing():
    from catalog_pipelines.storage.insights import changed_rows

    at = pd.to_datetime(["2025-05-01T10:00:00Z", None, "2025-05-03T10:00:00Z"], utc=True)
    previous = pd.DataFrame({"entity_ref": ["a", "b", "c"], "repository": ["r/a", None, "r/c"], "open_prs": [1, 0, 2], "last_at": at})
    current = pd.DataFrame({"entity_ref": ["c", "a", "b", "d"], "repository": ["r/c", "r/a", None, "r/d"], "open_prs": [2, 1, 3, 0],
                            "last_at": pd.to_datetime(["2025-05-03T10:00:00Z", "2025-05-01T10:00:00Z", None, None], utc=True)})
    assert changed_rows(previous, current, "entity_ref")["entity_ref"].tolist() == ["b", "d"]
    assert changed_rows(None, current, "entity_ref") is current
    assert len(changed_rows(previous.drop(columns=["open_prs"]), current, "entity_ref")) == 4  # other columns: every row


def test_changed_rows_compares_instants_when_the_store_gave_times_back_without_their_zone():
    from catalog_pipelines.storage.insights import changed_rows

    current = pd.DataFrame({"entity_ref": ["a", "b"], "last_at": pd.to_datetime(["2025-05-01T10:00:00Z", "2025-05-02T10:00:00Z"], utc=True)})
    previous = pd.DataFrame({"entity_ref": ["a", "b"], "last_at": pd.to_datetime(["2025-05-01 10:00:00", "2025-05-02 09:00:00"])})
    assert changed_rows(previous, current, "entity_ref")["entity_ref"].tolist() == ["b"]


def test_a_text_column_of_digits_reads_back_as_text_through_a_where(catalog_url):
    """`read_frame(where=)` (COPY on PostgreSQL, parsed as CSV) keeps a text column text when every
    value looks like a number: service ids such as "007" and "123" are not the integers 7 and 123."""
    from catalog_pipelines.storage.insights import read_frame, write_frames

    engine = get_engine(catalog_url)
    write_frames(engine, {GRAPH.cycles: pd.DataFrame({"service_id": ["007", "123", None], "n": [1, 2, 3]})})
    back = read_frame(engine, GRAPH.cycles, where=sa.column("n") >= 1).sort_values("n")
    assert back["service_id"].astype(object).where(back["service_id"].notna(), None).tolist() == ["007", "123", None]


def test_a_keys_digest_changes_with_any_of_its_rows_values_and_not_with_their_order():
    from catalog_pipelines.storage.insights import changed_keys, group_digests

    frame = pd.DataFrame({"scope_ref": pd.Categorical(["a", "a", "b", "c"]), "metric": ["x", "y", "x", "x"],
                          "value": [1.0, float("nan"), 2.0, 3.0]})
    digests = group_digests(frame, frame["scope_ref"])
    assert digests.index.tolist() == ["a", "b", "c"]
    shuffled = frame.iloc[[3, 1, 2, 0]].assign(scope_ref=lambda f: f["scope_ref"].astype(object))  # another order, text keys
    assert group_digests(shuffled, shuffled["scope_ref"]).sort_index().equals(digests)
    later = frame.copy()
    later.loc[1, "value"] = 0.5  # a's second row changes
    later = pd.concat([later[later["scope_ref"] != "c"], pd.DataFrame({"scope_ref": ["d"], "metric": ["x"], "value": [4.0]})])
    previous = pd.DataFrame({"key": digests.index, "digest": digests.to_numpy()})
    assert changed_keys(group_digests(later, later["scope_ref"].astype(str)), previous) == (["a", "d"], ["c"])
    assert changed_keys(digests, None) is None
    assert changed_keys(digests, previous) == ([], [])
