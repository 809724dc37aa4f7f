"""The stored relationship graph (`GRAPH` insight tables): indexes and the hop-by-hop walk."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from catalog_pipelines.model.insight_tables import GRAPH


def index_graph_tables(engine: sa.Engine) -> None:
    """Indexes for `catalog deps`, which walks the stored graph one hop per query.

    `write_frames` replaces the tables, dropping their indexes, so they are made again each run.
    """
    nodes, edges = GRAPH.nodes.sql_name, GRAPH.edges.sql_name
    with engine.begin() as conn:
        for table, column in ((nodes, "ref"), (nodes, "node_id"), (edges, "source_id"), (edges, "target_id")):
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} ({column})"))


def graph_stored(engine: sa.Engine) -> bool:
    """Whether the node and edge tables exist (the `relationship_graph` asset wrote them)."""
    inspector = sa.inspect(engine)
    return inspector.has_table(GRAPH.nodes.sql_name) and inspector.has_table(GRAPH.edges.sql_name)


def walk_graph(engine: sa.Engine, ref: str, *, reverse: bool, depth: int | None) -> dict[str, Any] | None:
    """Breadth-first walk from `ref` with one indexed query per hop; None when `ref` is no node.

    Returns `start` (its row: node_id, owner, cycle_id), `reached` (node -> (depth, parent, via)),
    `info` (node_id, ref, kind, owner, system, in_catalog rows of every reached node and the start)
    and `cycle` (the example path of its dependency cycle, if any).
    """
    nodes_t, edges_t, cycles_t = (t.sql_name for t in (GRAPH.nodes, GRAPH.edges, GRAPH.cycles))
    near, far = ("target_id", "source_id") if reverse else ("source_id", "target_id")
    with engine.connect() as conn:
        me = conn.execute(
            sa.text(f"SELECT node_id, owner, cycle_id FROM {nodes_t} WHERE ref = :ref"), {"ref": ref}
        ).first()
        if me is None:
            return None
        start = int(me.node_id)
        reached: dict[int, tuple[int, int, str]] = {}  # node -> (depth, parent, via)
        frontier, hop = [start], 0
        while frontier and (depth is None or hop < depth):
            hop += 1
            found: list[int] = []
            for chunk in _chunks(sorted(frontier)):
                rows = conn.execute(
                    sa.text(f"SELECT {near}, {far}, via FROM {edges_t} WHERE {near} IN ({','.join(map(str, chunk))}) ORDER BY {near}")
                )
                for parent, node, via in rows:
                    if node != start and node not in reached:
                        reached[node] = (hop, parent, via)
                        found.append(node)
            frontier = found
        ids = sorted(reached.keys() | {start})
        info = []
        for chunk in _chunks(ids):
            info.extend(
                conn.execute(
                    sa.text(
                        f"SELECT node_id, ref, kind, owner, system, in_catalog FROM {nodes_t} "
                        f"WHERE node_id IN ({','.join(map(str, chunk))})"
                    )
                ).all()
            )
        cycle = None
        if me.cycle_id is not None and sa.inspect(engine).has_table(cycles_t):
            row = conn.execute(sa.text(f"SELECT example FROM {cycles_t} WHERE cycle_id = :c"), {"c": int(me.cycle_id)}).first()
            cycle = row.example if row else None
    return {"start": me, "reached": reached, "info": info, "cycle": cycle}


def _chunks(values: list[int], size: int = 900) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
