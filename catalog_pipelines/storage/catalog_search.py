"""The read API's search rows: every entity body flattened into key/value rows, as Backstage does.

`search_rows` is Backstage's `buildEntitySearch` (plugin-catalog-backend, stitcher): every leaf
path of the entity is a key (lower-cased), every array item a row of the same key, a string item
also a `<path>.<item>` = "true" row; `metadata.name`, `.namespace` (default "default") and `.uid`
are added explicitly; values are lower-cased, and longer than 200 characters stored as NULL.
Unlike Backstage, relations are not copied into these rows: an entity's relations include the
inverses other entities declare, which change without this entity being written, so filters and
facets on `relations.<type>` read the relations table (storage/catalog_query.py).

`replace` is the one call the chunk writer (storage/catalog.py) makes, inside its transaction, so
the rows are never out of step with the entities; `delete` is the sweep's. `backfill` fills the
rows of entities written before this table existed (run by the read service at start).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.sql import in_values, psycopg_connection, qualified_name

MAX_KEY_LENGTH = 200
MAX_VALUE_LENGTH = 200
# Paths Backstage leaves out of the traversal (the metadata ones are added explicitly).
SPECIAL_KEYS = frozenset({"attachments", "relations", "status", "metadata.name", "metadata.namespace", "metadata.uid", "metadata.etag"})
UID_KEY = "metadata.uid"
_UID_NAMESPACE = uuid.UUID("6f1f3a0e-5b7c-4c8e-9d51-0c2a7c1b9e20")
_UID_PREFIX = _UID_NAMESPACE.bytes


def entity_uid(ref: str) -> str:
    """The entity's `metadata.uid`: derived from its canonical ref, so it stays the same for as
    long as the entity exists (and across re-ingestion), and every process agrees on it. It is
    `uuid.uuid5(_UID_NAMESPACE, ref)`, spelled out: a page of entities computes 100s of them."""
    h = bytearray(hashlib.sha1(_UID_PREFIX + ref.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _traverse(root: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    seen_item_keys: set[str] = set()

    def visit(path: str, current: Any) -> None:
        if path in SPECIAL_KEYS:
            return
        if current is None or isinstance(current, (str, int, float, bool)):
            out.append((path, current))
            return
        if isinstance(current, list):
            for item in current:
                visit(path, item)
                if isinstance(item, str):
                    key = f"{path}.{item}"
                    if key.lower() not in seen_item_keys:
                        seen_item_keys.add(key.lower())
                        out.append((key, True))
            return
        if isinstance(current, dict):
            for key, value in current.items():
                visit(f"{path}.{key}" if path else key, value)

    visit("", root)
    return out


def _text(value: Any) -> str:
    # JavaScript's String(): true/false, integers without ".0".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def search_rows(ref: str, entity: Mapping[str, Any]) -> list[tuple[str, int, str, str | None, str | None]]:
    """The search rows of one entity (`ref` canonical): (ref, ordinal, key, value, original_value)."""
    metadata = entity.get("metadata") or {}
    raw = _traverse(entity)
    raw.append(("metadata.name", metadata.get("name")))
    raw.append(("metadata.namespace", metadata.get("namespace") or "default"))
    raw.append((UID_KEY, entity_uid(ref)))
    rows = []
    seen: set[tuple[str, str | None]] = set()  # a repeated array item adds no row: facets count rows
    for raw_key, raw_value in raw:
        key = raw_key.lower()
        if len(key) > MAX_KEY_LENGTH:
            continue
        text = None if raw_value is None else raw_value if type(raw_value) is str else _text(raw_value)
        if text is not None and len(text) > MAX_VALUE_LENGTH:
            text = None
        if (key, text) in seen:
            continue
        seen.add((key, text))
        rows.append((ref, len(rows), key, None if text is None else text.lower(), text))
    return rows


COLUMNS = ("ref", "ordinal", "key", "value", "original_value")


def _insert(conn: sa.Connection, rows: list[tuple[str, int, str, str | None, str | None]]) -> None:
    """Insert search rows: ~20 per entity, so straight to the driver (COPY on PostgreSQL, one
    executemany of tuples on SQLite) rather than through per-row parameter dictionaries (which
    cost more than the insert itself: measured 4x the ingestion CPU of a 20k chunk)."""
    if not rows:
        return
    raw = psycopg_connection(conn)
    if raw is not None:
        with raw.cursor() as cur, cur.copy(f"COPY {qualified_name(s.entity_search)} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.exec_driver_sql(f"INSERT INTO {qualified_name(s.entity_search)} ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?)", rows)


def _rows_of(entities: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, int, str, str | None, str | None]]:
    return [row for ref, entity in entities for row in search_rows(ref, entity)]


def replace(conn: sa.Connection, new: Iterable[tuple[str, Mapping[str, Any]]], changed: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """Write the search rows of new entities and rewrite those of changed ones (refs canonical),
    inside the caller's transaction. Returns the rows written."""
    changed = list(changed)
    if changed:
        conn.execute(s.entity_search.delete().where(in_values(conn, s.entity_search.c.ref, [ref for ref, _ in changed])))
    rows = _rows_of([*new, *changed])
    _insert(conn, rows)
    return len(rows)


def delete(conn: sa.Connection, refs: sa.Select | Sequence[str]) -> None:
    """Delete the search rows of `refs` (a select of refs, or a list), in the caller's transaction."""
    column = s.entity_search.c.ref
    conn.execute(s.entity_search.delete().where(column.in_(refs) if isinstance(refs, sa.Select) else in_values(conn, column, refs)))


def _missing(conn: sa.Connection, batch: int) -> list[tuple[str, str]]:
    e, es = s.entities, s.entity_search
    has_rows = sa.exists().where((es.c.key == UID_KEY) & (es.c.ref == e.c.ref))
    return [tuple(r) for r in conn.execute(sa.select(e.c.ref, e.c.body).where(~has_rows).limit(batch))]


def backfill(engine: sa.Engine, batch: int = 5000) -> int:
    """Write the search rows of every entity that has none (written before this table existed, or
    by a writer without the hook); returns how many entities were filled. Idempotent."""
    done = 0
    while True:
        with engine.begin() as conn:
            missing = _missing(conn, batch)
            if not missing:
                return done
            delete(conn, [ref for ref, _ in missing])  # partial rows of an interrupted writer
            _insert(conn, _rows_of((ref, orjson.loads(body)) for ref, body in missing))
        done += len(missing)

