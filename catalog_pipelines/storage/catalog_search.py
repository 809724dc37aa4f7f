"""The read API's search rows: every entity body flattened into key/value rows, as Backstage does.

`search_rows` is Backstage's `buildEntitySearch` (plugin-catalog-backend, stitcher): every leaf
path of the entity is a key (lower-cased), every array item a row of the same key, a string item
also a `<path>.<item>` = "true" row; `metadata.name`, `.namespace` (default "default") and `.uid`
are added explicitly; values are lower-cased, and longer than 200 characters stored as NULL.
Unlike Backstage, relations are not copied into these rows: an entity's relations include the
inverses other entities declare, which change without this entity being written, so filters and
facets on `relations.<type>` read the relations table (storage/catalog_query.py).

The rows are derived data, kept off ingestion's hot path: the chunk writer and the sweep do not
touch them (written in the chunk's transaction they tripled its CPU). `refresh` brings them up to
date from the entities table, incrementally: only the entities added, changed or removed since
the last refresh (`entity_search_state` remembers each ref's content hash). It runs after every
ingestion cycle (the `catalog_snapshot` asset) and in `serve` (at start and every
`--refresh-interval` seconds), through `services.catalog_read.refresh_search`.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.sql import batched, in_values, insert_tuples, qualified_name

MAX_KEY_LENGTH = 200
MAX_VALUE_LENGTH = 200
# Paths Backstage leaves out of the traversal (the metadata ones are added explicitly).
SPECIAL_KEYS = frozenset({"attachments", "relations", "status", "metadata.name", "metadata.namespace", "metadata.uid", "metadata.etag"})
UID_KEY = "metadata.uid"
_UID_NAMESPACE = uuid.UUID("6f1f3a0e-5b7c-4c8e-9d51-0c2a7c1b9e20")
_UID_PREFIX = _UID_NAMESPACE.bytes
REFRESH_BATCH = 5000  # entities per refresh transaction
DELETE_BATCH = 200  # refs per delete statement (see _delete)
ANALYZE_ABOVE = 50_000  # rows written by a refresh above which (and above MAINTAIN_SHARE of the table) PostgreSQL's
MAINTAIN_SHARE = 0.1  # statistics and visibility map are renewed by the refresh (else autovacuum's)
_REFRESH_LOCK_KEY = 0x5EA2C4  # pg_advisory_xact_lock key of the refresh
BUILD_ABOVE = 20_000  # entities to write into an empty table above which PostgreSQL builds the filter indexes after the rows


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


def _insert(conn: sa.Connection, rows: list[tuple], table: sa.Table = s.entity_search, columns: Sequence[str] = COLUMNS) -> None:
    """Insert tuples: ~20 search rows per entity, so straight to the driver (COPY on PostgreSQL,
    one executemany of tuples on SQLite) rather than through per-row parameter dictionaries
    (which cost more than the insert itself: measured 4x the CPU of writing 20k entities' rows)."""
    insert_tuples(conn, table, columns, rows)


def _rows_of(entities: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, int, str, str | None, str | None]]:
    return [row for ref, entity in entities for row in search_rows(ref, entity)]


@dataclass
class RefreshResult:
    entities: int = 0  # entities whose rows were (re)written: added or changed since the last refresh
    removed: int = 0  # entities gone since the last refresh, their rows deleted
    rows: int = 0  # search rows written
    seconds: float = 0.0
    maintenance_seconds: float = 0.0  # of which PostgreSQL's VACUUM (ANALYZE) after a large refresh
    index_seconds: float = 0.0  # of which building the filter indexes after a first refresh's rows (PostgreSQL, large catalogs)


def _delete(conn: sa.Connection, refs: list[str]) -> None:
    """Delete the rows and state of `refs`, 200 refs a statement: with thousands in one `= ANY`
    array PostgreSQL scanned all of entity_search (6 million rows at 200k) instead of probing
    its (ref, ordinal) key (a 1% refresh at 200k: 31 s)."""
    for batch in batched(refs, DELETE_BATCH):
        conn.execute(s.entity_search.delete().where(in_values(conn, s.entity_search.c.ref, batch)))
        conn.execute(s.entity_search_state.delete().where(in_values(conn, s.entity_search_state.c.ref, batch)))


def _ensure_indexes(conn: sa.Connection) -> None:
    """Create entity_search's indexes that are missing (after a bulk build, or one interrupted)."""
    for index in s.entity_search.indexes:
        index.create(conn, checkfirst=True)


def _estimated_rows(engine: sa.Engine) -> float:
    """PostgreSQL's estimate of entity_search's rows (pg_class.reltuples; -1 or 0 if never analysed)."""
    with engine.connect() as conn:
        return max(0.0, conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                                     {"t": qualified_name(s.entity_search)}).scalar() or 0.0)


def _lock(conn: sa.Connection) -> None:
    """Serialise refreshers (serve's loop, the catalog_snapshot asset, the CLI): PostgreSQL's
    advisory lock for this transaction; SQLite's transaction is BEGIN IMMEDIATE already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_REFRESH_LOCK_KEY)))


def refresh(engine: sa.Engine, batch: int = REFRESH_BATCH) -> RefreshResult:
    """Bring the search rows up to date with the entities table, incrementally.

    `entity_search_state` holds, per ref, the `content_hash` its rows were built from: an entity
    whose hash differs (changed) or that has no state row (added) gets its rows rewritten; a
    state row without an entity (removed by the sweep) loses its rows. Set-based SQL finds both
    (an anti-join on the refs' unique indexes); only the stale entities' bodies are read. Each
    batch of `batch` entities is one short transaction (the ingestion's chunk writers wait for
    SQLite's write lock at most that long), walked by ref so the whole refresh is one pass over
    the entities. Idempotent; concurrent refreshers serialise (`_lock`). A first refresh of more
    than BUILD_ABOVE entities on PostgreSQL builds the filter indexes after the rows."""
    from catalog_pipelines.storage.db import transaction_with_ddl

    started = time.perf_counter()
    result = RefreshResult()
    e, es, st = s.entities, s.entity_search, s.entity_search_state
    build = False
    with transaction_with_ddl(engine) as conn:
        _lock(conn)
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            _ensure_indexes(conn)  # (a bulk build interrupted before its indexes were back)
        if conn.execute(sa.select(st.c.ref).limit(1)).first() is None:
            # No state yet (a database from before the state table, or a first refresh): any rows
            # present were written without it; rebuild them all.
            conn.execute(es.delete())
            # A first refresh of a large catalog on PostgreSQL writes the rows without the two
            # filter indexes and builds them after (one sort each, instead of millions of
            # random B-tree inserts): 200k entities, 6.4 M rows. Readers meanwhile filter
            # without them (a first refresh has no complete answer to give yet anyway).
            build = postgres and conn.execute(sa.select(sa.func.count()).select_from(
                sa.select(e.c.ref).limit(BUILD_ABOVE + 1).subquery())).scalar_one() > BUILD_ABOVE
            if build:
                for index in es.indexes:
                    index.drop(conn, checkfirst=True)
        gone = conn.execute(sa.select(st.c.ref).where(~sa.exists().where(e.c.ref == st.c.ref))).scalars().all()
        _delete(conn, gone)
        result.removed = len(gone)
    after = ""
    while True:
        with transaction_with_ddl(engine) as conn:
            _lock(conn)
            stale = conn.execute(
                sa.select(e.c.ref, e.c.body, e.c.content_hash, st.c.ref.is_not(None).label("known"))
                .select_from(e.outerjoin(st, st.c.ref == e.c.ref))
                .where((e.c.ref > after) & (st.c.ref.is_(None) | (st.c.content_hash != e.c.content_hash)))
                .order_by(e.c.ref)
                .limit(batch)
            ).all()
            if not stale:
                break
            _delete(conn, [r.ref for r in stale if r.known])
            rows = _rows_of((r.ref, orjson.loads(r.body)) for r in stale)
            _insert(conn, rows)
            _insert(conn, [(r.ref, r.content_hash) for r in stale], s.entity_search_state, ("ref", "content_hash"))
            result.entities += len(stale)
            result.rows += len(rows)
            after = stale[-1].ref
        if len(stale) < batch:
            break
    if build:
        index_started = time.perf_counter()
        with transaction_with_ddl(engine) as conn:
            _lock(conn)
            # each index one sort of every row (6.4 M at 200k): in memory rather than in 64 MB runs
            conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
            _ensure_indexes(conn)
        result.index_seconds = time.perf_counter() - index_started
    if engine.dialect.name == "postgresql" and result.rows > ANALYZE_ABOVE and result.rows > MAINTAIN_SHARE * _estimated_rows(engine):
        # After a large rewrite (the first refresh, or a tenth of the rows; below that autovacuum
        # suffices, and a VACUUM of 6 million rows tripled a 1% refresh at 200k): fresh statistics for the planner (the filters' estimates), and the
        # visibility map set so that counts and filters are index-only scans. VACUUM runs outside
        # a transaction; autovacuum would get there too, later.
        # `key` and `value` are correlated (a value belongs to its key): without multivariate
        # statistics the planner multiplies their selectivities and underestimates a filter's rows
        # (3,550 expected of 121,888 at 200k), which picked a sort over the ordered index walk.
        maintenance_started = time.perf_counter()
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(sa.text(f"CREATE STATISTICS IF NOT EXISTS {es.name}_key_value_stats (mcv, dependencies) "
                                 f"ON key, value FROM {qualified_name(es)}"))
            conn.execute(sa.text(f"VACUUM (ANALYZE) {qualified_name(es)}"))
        result.maintenance_seconds = time.perf_counter() - maintenance_started
    result.seconds = time.perf_counter() - started
    return result
