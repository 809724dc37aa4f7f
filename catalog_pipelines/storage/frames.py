"""The catalog as DataFrames, for the analytics modules (which never touch SQL themselves)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref
from catalog_pipelines.storage import schema as s

ENTITY_COLUMNS = ["ref", "kind", "namespace", "name", "type", "owner", "system", "lifecycle", "provider", "entity"]


def rows_frame(rows: Sequence[Sequence], columns: Sequence[str]) -> pd.DataFrame:
    """Fetched rows as a frame, built column by column: the same frame as `pd.DataFrame(rows,
    columns=…)`, 3-4x faster for a million rows (pandas inspects every row object otherwise;
    reading 1.08M relation rows at 200k entities spent most of its time there)."""
    if not rows:
        return pd.DataFrame(rows, columns=list(columns))
    return pd.DataFrame(dict(zip(columns, zip(*rows))), columns=list(columns))


def _owner_ref(value, namespace: str, default_kind: str) -> str | None:
    if not value:
        return None
    try:
        return parse_entity_ref(value, default_kind=default_kind, default_namespace=namespace).canonical()
    except EntityRefError:
        return None


def _spec_field(engine: sa.Engine, key: str) -> sa.ColumnElement:
    body = s.entities.c.body
    if engine.dialect.name == "postgresql":
        return sa.func.json_extract_path_text(sa.cast(body, postgresql.JSON), "spec", key)
    return sa.func.json_extract(body, f"$.spec.{key}")


def entities_frame(engine: sa.Engine, kinds: Sequence[str] | None = None, with_body: bool = True) -> pd.DataFrame:
    """One row per entity: ref, kind (lower), namespace, name, spec type, owner and system refs
    (canonical, defaults applied as Backstage does), lifecycle, provider, and the body as a dict.

    `with_body=False` leaves out the `entity` column and reads the spec fields in SQL: about 4×
    faster and a fraction of the memory at 200k entities, for readers that need no bodies.
    """
    if not with_body:
        return _entities_without_body(engine, kinds)
    e = s.entities
    q = sa.select(e.c.ref, e.c.kind, e.c.namespace, e.c.name, e.c.provider, e.c.body).order_by(e.c.id)
    if kinds:
        q = q.where(e.c.kind.in_([k.lower() for k in kinds]))
    records = []
    with engine.connect() as conn:
        for ref, kind, namespace, name, provider, body in conn.execute(q):
            entity = orjson.loads(body)
            spec = entity.get("spec") or {}
            records.append(
                (
                    ref,
                    kind,
                    namespace,
                    name,
                    spec.get("type"),
                    _owner_ref(spec.get("owner"), namespace, "group"),
                    _owner_ref(spec.get("system"), namespace, "system"),
                    spec.get("lifecycle"),
                    provider,
                    entity,
                )
            )
    return pd.DataFrame.from_records(records, columns=ENTITY_COLUMNS)


def _entities_without_body(engine: sa.Engine, kinds: Sequence[str] | None) -> pd.DataFrame:
    e = s.entities
    keys = ("type", "owner", "system", "lifecycle")
    if engine.dialect.name == "postgresql":
        # the body's spec parsed once per row (jsonb), not once per field: 6.7 s -> ~1.5 s at 200k
        spec = sa.cast(e.c.body, postgresql.JSONB)["spec"]
        inner = sa.select(e.c.id, e.c.ref, e.c.kind, e.c.namespace, e.c.name, e.c.provider, spec.label("spec"))
        if kinds:
            inner = inner.where(e.c.kind.in_([k.lower() for k in kinds]))
        sub = inner.subquery()
        q = sa.select(sub.c.ref, sub.c.kind, sub.c.namespace, sub.c.name, sub.c.provider,
                      *(sub.c.spec[key].astext.label(key) for key in keys)).order_by(sub.c.id)
    else:
        q = sa.select(e.c.ref, e.c.kind, e.c.namespace, e.c.name, e.c.provider,
                      *(_spec_field(engine, key).label(key) for key in keys)).order_by(e.c.id)
        if kinds:
            q = q.where(e.c.kind.in_([k.lower() for k in kinds]))
    with engine.connect() as conn:
        frame = rows_frame(conn.execute(q).all(), ["ref", "kind", "namespace", "name", "provider", "type", "owner", "system", "lifecycle"])
    # Owners and systems repeat a lot: canonicalise each distinct (value, namespace) once.
    for column, default_kind in (("owner", "group"), ("system", "system")):
        pairs = frame[[column, "namespace"]].drop_duplicates()
        mapping = {(v, ns): _owner_ref(v, ns, default_kind) for v, ns in pairs.itertuples(index=False)}
        frame[column] = [mapping[(v, ns)] for v, ns in zip(frame[column], frame["namespace"])]
    return frame[[c for c in ENTITY_COLUMNS if c != "entity"]]


def owners_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every entity's ref and owner (its `ownedBy` relation: `spec.owner` resolved as Backstage
    does; None without one): what rolls figures up to teams, read without parsing a body
    (0.4 s at 200k on PostgreSQL, where `entities_frame(with_body=False)` parses every body)."""
    e, r = s.entities, s.relations
    q = sa.select(e.c.ref, r.c.target_ref.label("owner")).select_from(
        e.outerjoin(r, sa.and_(r.c.source_ref == e.c.ref, r.c.type == "ownedBy")))
    from catalog_pipelines.storage.sql import copy_out_frame

    with engine.connect() as conn:
        frame = copy_out_frame(conn, q)  # PostgreSQL: COPY (1.2 -> 0.3 s at 200k)
        if frame is None:
            frame = rows_frame(conn.execute(q).all(), ["ref", "owner"])
    frame["owner"] = frame["owner"].astype(object).where(frame["owner"].notna(), None)
    if frame["ref"].duplicated().any():  # two owners (Backstage allows one): the first by name, every time
        frame = frame.sort_values(["ref", "owner"], kind="stable").drop_duplicates("ref")
    return frame.reset_index(drop=True)


def relations_frame(engine: sa.Engine, *, both_directions: bool = True) -> pd.DataFrame:
    """Every relation in both directions, as Backstage lists them: `source, type, target`.

    `both_directions=False`: only the stored rows, each pair once in the direction its entity
    declared it (half the rows), for consumers that fold directions themselves (the graph).
    """
    r = s.relations
    with engine.connect() as conn:
        forward = rows_frame(conn.execute(sa.select(r.c.source_ref, r.c.type, r.c.target_ref)).all(), ["source", "type", "target"])
    if not both_directions:
        return forward
    inverse = pd.DataFrame(
        {"source": forward["target"], "type": forward["type"].map(s.INVERSE_RELATION), "target": forward["source"]}
    )
    return pd.concat([forward, inverse], ignore_index=True).drop_duplicates(ignore_index=True)


def removals_frame(engine: sa.Engine) -> pd.DataFrame:
    r = s.removals
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.ref, r.c.kind, r.c.provider, r.c.cycle, r.c.removed_at).order_by(r.c.id)).all()
    return pd.DataFrame(rows, columns=["ref", "kind", "provider", "cycle", "removed_at"])


def ledger_frames(engine: sa.Engine) -> dict[str, pd.DataFrame | None]:
    """The ingestion ledger as the dashboards show it: cycles, marks and rejections (None for a
    table of a database without the ledger yet)."""
    from catalog_pipelines.storage import schema as s

    frames: dict[str, pd.DataFrame | None] = {}
    i, m, r = s.ingestions, s.ingestion_marks, s.rejections
    queries = {
        "ingestions": sa.select(i.c.id, i.c.provider, i.c.cycle, i.c.status, i.c.next_action, i.c.next_action_at, i.c.attempts,
                                i.c.last_error, i.c.created_at, i.c.ingestion_completed_at, i.c.rest_completed_at,
                                i.c.entities_seen, i.c.removed, i.c.sweep_outcome),
        "marks": sa.select(m.c.ingestion_id, m.c.sequence, m.c.entity_count, m.c.added, m.c.changed, m.c.unchanged,
                           m.c.rejected, m.c.duration_ms, m.c.created_at),
        "rejections": sa.select(r.c.provider, r.c.ingestion_id, r.c.rule, r.c.field),
    }
    with engine.connect() as conn:
        for name, query in queries.items():
            try:
                result = conn.execute(query)
                frames[name] = pd.DataFrame(result.all(), columns=list(result.keys()))
            except sa.exc.DBAPIError:  # a database without the ledger yet
                frames[name] = None
    return frames
