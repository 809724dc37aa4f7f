"""The catalog as DataFrames, for the analytics modules (which never touch SQL themselves)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pandas as pd
import sqlalchemy as sa

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref
from catalog_pipelines.storage import schema as s

ENTITY_COLUMNS = ["ref", "kind", "namespace", "name", "type", "owner", "system", "lifecycle", "provider", "entity"]


def _owner_ref(value, namespace: str, default_kind: str) -> str | None:
    if not value:
        return None
    try:
        return parse_entity_ref(value, default_kind=default_kind, default_namespace=namespace).canonical()
    except EntityRefError:
        return None


def entities_frame(engine: sa.Engine, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per entity: ref, kind (lower), namespace, name, spec type, owner and system refs
    (canonical, defaults applied as Backstage does), lifecycle, provider, and the body as a dict."""
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


def relations_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every relation in both directions, as Backstage lists them: `source, type, target`."""
    r = s.relations
    with engine.connect() as conn:
        forward = pd.DataFrame(
            conn.execute(sa.select(r.c.source_ref, r.c.type, r.c.target_ref)).all(), columns=["source", "type", "target"]
        )
    inverse = pd.DataFrame(
        {"source": forward["target"], "type": forward["type"].map(s.INVERSE_RELATION), "target": forward["source"]}
    )
    return pd.concat([forward, inverse], ignore_index=True).drop_duplicates(ignore_index=True)


def removals_frame(engine: sa.Engine) -> pd.DataFrame:
    r = s.removals
    with engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.ref, r.c.kind, r.c.provider, r.c.cycle, r.c.removed_at).order_by(r.c.id)).all()
    return pd.DataFrame(rows, columns=["ref", "kind", "provider", "cycle", "removed_at"])
