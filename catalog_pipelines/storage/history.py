"""Catalog history: every change an ingestion cycle makes, kept as a version row.

The write path (`storage/catalog.py`) calls `HistoryWriter` inside the chunk's and the sweep's own
transactions, so no change is ever stored without its history row, and none is recorded for a
change that rolled back. Only what changed is written:

- added: a narrow row (ref, kind, provider, cycle, chunk, time, hash, owner, lifecycle, system,
  relations hash). No body: the body an added or changed version introduced is in `entities`
  while it is current;
- changed: the same, plus the list of fields that changed, the declared relations it added and
  removed (`relations_delta`: a diff composes these instead of deriving two bodies' relations) and
  the body it replaced (`previous_body`, zlib'd JSON). Reading that old body costs one lookup of
  the changed refs, which the field list needs anyway;
- removed (the sweep): the body removed, as `previous_body`;
- rejected: the rule and message of a rejection that names a ref, unless the ref's latest version
  already records the same rejection (a document that stays broken writes nothing more).

So the body of any version is the `previous_body` of the ref's next version, or the entity row
while the version is the latest (`version_bodies`). An unchanged entity writes nothing, and a
first cycle writes no bodies at all. Retention (`prune`) drops versions older than the last
`keep_cycles` cycles of a provider, keeping per ref the one version that still describes it then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from catalog_pipelines.model.entity import ProcessedEntity, Rejection
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.sql import batched, in_values, insert_tuples

ADDED, CHANGED, REMOVED, REJECTED = "added", "changed", "removed", "rejected"
STATE_CHANGES = (ADDED, CHANGED, REMOVED)  # the versions that say what the catalog held
# zlib level 1: bodies of ~1 KB compress to ~50 % at every level; level 1 is the cheapest.
_ZLIB_LEVEL = 1
_COLUMNS = ("ref", "kind", "provider", "ingestion_id", "cycle", "chunk", "at", "change", "fields", "content_hash",
            "owner", "lifecycle", "system", "relations_hash", "relations_delta", "previous_owner", "previous_lifecycle",
            "previous_system", "previous_relations_hash", "previous_body")


def pack_body(body: str | bytes) -> bytes:
    return zlib.compress(body.encode() if isinstance(body, str) else body, _ZLIB_LEVEL)


def unpack_body(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else orjson.loads(zlib.decompress(data))


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted names of what differs: `metadata.x` / `spec.x` one level down, other keys whole."""
    out = []
    for top in sorted(set(old) | set(new)):
        a, b = old.get(top), new.get(top)
        if a == b:
            continue
        if top in ("metadata", "spec") and isinstance(a, dict) and isinstance(b, dict):
            out += [f"{top}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(top)
    return out


def relations_hash(pairs: Iterable[tuple[str, str]]) -> str:
    """A short hash of the (type, target) pairs an entity declares, order-free."""
    return hashlib.blake2b("\n".join(sorted({f"{t} {x}" for t, x in pairs})).encode(), digest_size=8).hexdigest()


def relations_delta(old: set[tuple[str, str]], new: set[tuple[str, str]]) -> str:
    """The declared relations a version added and removed: "+type target" / "-type target" lines."""
    return "\n".join([f"-{t} {x}" for t, x in sorted(old - new)] + [f"+{t} {x}" for t, x in sorted(new - old)])


def compose_deltas(deltas: Iterable[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(added, removed) relation pairs of consecutive versions' `relations_delta`, oldest first: a
    pair whose first and last mention are both "+" was added, both "-" removed, else unchanged."""
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for delta in deltas:
        for line in delta.split("\n") if delta else ():
            first.setdefault(line[1:], line[0])
            last[line[1:]] = line[0]
    added, removed = [], []
    for pair, sign in first.items():
        if last[pair] == sign:
            (added if sign == "+" else removed).append(tuple(pair.split(" ", 1)))
    return sorted(added), sorted(removed)


def _derived(entity: Mapping[str, Any]) -> list:
    from catalog_pipelines.model.relations import derive_relations

    try:
        return derive_relations(dict(entity))
    except Exception:  # noqa: BLE001 - a stored body derived its relations once; never fail a chunk on it
        return []


def declared_pairs(ref: str, entity: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (type, target) pairs `entity` (stored as `ref`) declares, as ingestion derived them."""
    return {(r.type, r.target) for r in _derived(entity) if r.source == ref}


def _previous(ref: str, entity: Mapping[str, Any], pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The summary of a replaced or removed body, as `previous_*` columns; `pairs` receives its
    declared relations."""
    summary = _summary(ref, entity, _derived(entity), pairs)
    return {f"previous_{k}": v for k, v in summary.items()}


def _summary(ref: str, entity: Mapping[str, Any], relations: Sequence[Any],
             pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Owner, system, lifecycle and relations hash of a version (one pass over its relations);
    `pairs`, when given, receives its declared (type, target) pairs."""
    owner, system, lifecycle, rhash = _summary_values(ref, entity, relations, pairs)
    return {"owner": owner, "system": system, "lifecycle": lifecycle, "relations_hash": rhash}


def _summary_values(ref: str, entity: Mapping[str, Any], relations: Sequence[Any],
                    pairs: list[tuple[str, str]] | None = None) -> tuple[str | None, str | None, str | None, str]:
    """`_summary` as (owner, system, lifecycle, relations hash): what an added version stores."""
    owner = system = None
    pairs = [] if pairs is None else pairs
    for r in relations:
        if r.source != ref:
            continue
        rtype, target = r.type, r.target
        pairs.append((rtype, target))
        if rtype == "ownedBy":
            owner = owner or target
        elif rtype == "partOf" and system is None and target.startswith("system:"):
            system = target
    spec = entity.get("spec")
    lifecycle = spec.get("lifecycle") if isinstance(spec, dict) else None
    return owner, system, lifecycle if isinstance(lifecycle, str) else None, relations_hash(pairs)


def _row(**values: Any) -> dict[str, Any]:
    return {c: values.get(c) for c in _COLUMNS}


def _insert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert version rows given as `_row` dicts (see `_insert_tuples`)."""
    _insert_tuples(conn, _COLUMNS, [tuple(row[c] for c in _COLUMNS) for row in rows])


# The columns of an `added` version: a first cycle writes one per entity, so only these are sent.
_ADDED_COLUMNS = ("ref", "kind", "provider", "ingestion_id", "cycle", "chunk", "at", "change", "content_hash",
                  "owner", "lifecycle", "system", "relations_hash")


def _insert_tuples(conn: sa.Connection, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert version rows, tuples in `columns` order (the other columns stay NULL), straight to
    the driver (`sql.insert_tuples`): SQLAlchemy's per-row processing cost as much as the rest of
    the history of a first cycle. On SQLite every row of a chunk shares its time, converted once."""
    if rows and conn.dialect.name == "sqlite":
        at = columns.index("at")
        convert = s.entity_history.c.at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        times: dict[Any, Any] = {}
        for i, row in enumerate(rows):
            when = row[at]
            if when not in times:
                times[when] = convert(when) if convert else when
            rows[i] = (*row[:at], times[when], *row[at + 1:])
    insert_tuples(conn, s.entity_history, columns, rows)


@dataclass
class HistoryWriter:
    """Records one chunk's (or one sweep's) changes, on the caller's connection and transaction."""

    provider: str
    ingestion_id: int
    sequence: int
    at: dt.datetime
    cycle: int | None = None

    def _cycle(self, conn: sa.Connection) -> int:
        if self.cycle is None:
            i = s.ingestions
            self.cycle = conn.execute(sa.select(i.c.cycle).where(i.c.id == self.ingestion_id)).scalar() or 0
        return self.cycle

    def _base(self, conn: sa.Connection) -> dict[str, Any]:
        return {"provider": self.provider, "ingestion_id": self.ingestion_id, "cycle": self._cycle(conn),
                "chunk": self.sequence, "at": self.at}

    def record_entities(self, conn: sa.Connection, entities: Sequence[ProcessedEntity],
                        new_rows: Sequence[Mapping[str, Any]], changed_rows: Sequence[Mapping[str, Any]]) -> None:
        """Versions of a write batch's added and changed entities. Call before the entity rows are
        updated: a changed entity's old body is read here. Unchanged entities cost nothing."""
        if not new_rows and not changed_rows:
            return
        base = self._base(conn)
        by_ref = {e.ref: e for e in entities}
        added = []
        fixed = (base["provider"], base["ingestion_id"], base["cycle"], base["chunk"], base["at"], ADDED)
        for r in new_rows:
            ref = r["ref"]
            e = by_ref[ref]
            owner, system, lifecycle, rhash = _summary_values(ref, e.entity, e.relations)
            added.append((ref, r["kind"], *fixed, r["content_hash"], owner, lifecycle, system, rhash))
        _insert_tuples(conn, _ADDED_COLUMNS, added)
        rows = []
        if changed_rows:
            ent = s.entities
            old = dict(conn.execute(sa.select(ent.c.ref, ent.c.body).where(in_values(conn, ent.c.ref, [r["ref"] for r in changed_rows]))).all())
            for r in changed_rows:
                e = by_ref[r["ref"]]
                before = old.get(r["ref"])
                old_entity = orjson.loads(before) if before is not None else None
                fields = changed_fields(old_entity, e.entity) if old_entity is not None else []
                if before is not None and r.get("location") is not None and not fields:
                    fields = ["location"]
                pairs: list[tuple[str, str]] = []
                old_pairs: list[tuple[str, str]] = []
                summary = _summary(e.ref, e.entity, e.relations, pairs)
                # The state replaced, and the relations delta against it (None if unknown: a diff
                # then reads the bodies).
                previous = _previous(e.ref, old_entity, old_pairs) if old_entity is not None else {}
                delta = relations_delta(set(old_pairs), set(pairs)) if old_entity is not None else None
                rows.append(_row(**base, ref=r["ref"], kind=r["kind"], change=CHANGED, content_hash=r["content_hash"],
                                 fields=orjson.dumps(fields).decode(), previous_body=None if before is None else pack_body(before),
                                 relations_delta=delta, **previous, **summary))
        _insert(conn, rows)

    def record_rejections(self, conn: sa.Connection, rejections: Sequence[Rejection]) -> None:
        """Rejections that name a ref, unless the ref's latest version records the same one."""
        named = {}
        for r in rejections:
            if r.ref:
                named.setdefault(r.ref.lower(), orjson.dumps({"rule": r.rule, "field": r.field, "message": r.message}).decode())
        if not named:
            return
        h = s.entity_history
        latest = sa.select(sa.func.max(h.c.id)).where(in_values(conn, h.c.ref, list(named))).group_by(h.c.ref)
        same = {(ref, fields) for ref, change, fields in conn.execute(
            sa.select(h.c.ref, h.c.change, h.c.fields).where(h.c.id.in_(latest))) if change == REJECTED}
        base = self._base(conn)
        rows = [_row(**base, ref=ref, change=REJECTED, fields=fields) for ref, fields in named.items() if (ref, fields) not in same]
        _insert(conn, rows)

    def record_removals(self, conn: sa.Connection, where: sa.ColumnElement[bool]) -> None:
        """Versions of the entities the sweep is about to delete (`where` selects them), with the
        bodies removed. Call before the delete, in the sweep's transaction."""
        ent = s.entities
        base = self._base(conn)
        q = sa.select(ent.c.ref, ent.c.kind, ent.c.body).where(where).order_by(ent.c.ref)
        for batch in batched(conn.execute(q), 5000):
            _insert(conn, [_row(**base, ref=ref, kind=kind, change=REMOVED, previous_body=pack_body(body),
                                **_previous(ref, orjson.loads(body), [])) for ref, kind, body in batch])


def baseline(conn: sa.Connection, batch: int = 5000) -> int:
    """One `added` version (cycle 0) for every entity stored before history was kept (schema v3)."""
    ent, h = s.entities, s.entity_history
    if conn.execute(sa.select(h.c.id).limit(1)).first() is not None:
        return 0
    written, after = 0, None
    # Page by id (keyset): a million bodies are never all in memory.
    while True:
        q = sa.select(ent.c.id, ent.c.ref, ent.c.kind, ent.c.provider, ent.c.body, ent.c.content_hash, ent.c.first_seen)
        part = conn.execute((q if after is None else q.where(ent.c.id > after)).order_by(ent.c.id).limit(batch)).all()
        if not part:
            break
        after = part[-1].id
        out = []
        for _, ref, kind, provider, body, content_hash, first_seen in part:
            entity = orjson.loads(body)
            summary = _summary(ref, entity, _derived(entity))
            out.append(_row(ref=ref, kind=kind, provider=provider, cycle=0, at=first_seen, change=ADDED,
                            content_hash=content_hash, **summary))
        _insert(conn, out)
        written += len(out)
    return written


def add_missing_columns(conn: sa.Connection) -> list[str]:
    """Columns of `entity_history` added since its first release (`relations_delta`), added to a
    table an earlier build created (nullable: its older versions keep NULL, which a diff treats as
    "unknown, derive from the bodies"). Returns the names added."""
    h = s.entity_history
    have = {c["name"] for c in sa.inspect(conn).get_columns(h.name)}
    added = []
    for column in h.columns:
        if column.name not in have:
            conn.execute(sa.text(f"ALTER TABLE {h.name} ADD COLUMN {column.name} {column.type.compile(conn.dialect)}"))
            added.append(column.name)
    return added


# ------------------------------------------------------------------------------------- reads


def _version(row: sa.Row) -> dict[str, Any]:
    v = row._asdict()
    v.pop("previous_body", None)
    v["fields"] = orjson.loads(v["fields"]) if v.get("fields") else None
    return v


def versions(engine: sa.Engine, ref: str) -> list[dict[str, Any]]:
    """Every kept version of `ref`, oldest first (without bodies)."""
    h = s.entity_history
    with engine.connect() as conn:
        return [_version(r) for r in conn.execute(sa.select(h).where(h.c.ref == ref.lower()).order_by(h.c.id))]


def body_of(engine: sa.Engine, ref: str, version_id: int) -> dict[str, Any] | None:
    """The body of version `version_id` of `ref`: the next state version's `previous_body`, or the
    stored entity while it is the latest."""
    h, ent = s.entity_history, s.entities
    with engine.connect() as conn:
        nxt = conn.execute(sa.select(h.c.previous_body).where(
            (h.c.ref == ref) & (h.c.id > version_id) & h.c.change.in_((CHANGED, REMOVED))).order_by(h.c.id).limit(1)).first()
        if nxt is not None:
            return unpack_body(nxt.previous_body)
        body = conn.execute(sa.select(ent.c.body).where(ent.c.ref == ref)).scalar()
    return None if body is None else orjson.loads(body)


def visible(cycle: int | None = None, at: dt.datetime | None = None) -> sa.ColumnElement[bool]:
    """The versions written by the end of `cycle` (each provider's own numbering) or by time `at`."""
    h = s.entity_history
    return h.c.cycle <= cycle if cycle is not None else h.c.at <= at


# The columns a diff reads, in this order (tuples: a diff reads tens of thousands of rows).
DIFF_COLUMNS = ("id", "ref", "kind", "provider", "cycle", "change", "fields", "content_hash", "owner", "lifecycle", "system",
                "relations_hash", "relations_delta", "previous_owner", "previous_lifecycle", "previous_system",
                "previous_relations_hash")


def diff_versions(engine: sa.Engine, before: sa.ColumnElement[bool], after: sa.ColumnElement[bool], *,
                  kind: str | None = None, provider: str | None = None) -> list[sa.Row]:
    """The state versions visible at `after` but not at `before` (`kind` and `provider` filter
    them), oldest first, as `DIFF_COLUMNS` rows without bodies: what a diff between two points
    reads. The first of a ref's versions tells its state at `before` (`previous_*`).

    One pass over the table in id order: no index on cycle or time (it would cost every first
    cycle; the table holds changes only), and not the ref index, which SQLite would otherwise walk,
    looking up every row. Entities unchanged between the points cost nothing."""
    h = s.entity_history
    between = after & ~before & h.c.change.in_(STATE_CHANGES)
    if kind:
        between = between & (h.c.kind == kind.lower())
    if provider:
        between = between & (h.c.provider == provider)
    with engine.connect() as conn:
        return conn.execute(sa.select(*[h.c[name] for name in DIFF_COLUMNS]).where(between).order_by(h.c.id)).all()


def states_at(engine: sa.Engine, point: sa.ColumnElement[bool], refs: Sequence[str]) -> dict[str, sa.Row]:
    """Per ref, its latest state version visible at `point` (`DIFF_COLUMNS`): one lookup per ref
    through the ref index. For versions written before the `previous_*` columns were."""
    if not refs:
        return {}
    h = s.entity_history
    with engine.connect() as conn:
        latest = (sa.select(sa.func.max(h.c.id)).where(in_values(conn, h.c.ref, refs) & point & h.c.change.in_(STATE_CHANGES))
                  .group_by(h.c.ref))
        return {r[1]: r for r in conn.execute(sa.select(*[h.c[name] for name in DIFF_COLUMNS]).where(h.c.id.in_(latest)))}


def bodies(engine: sa.Engine, wanted: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any] | None]:
    """Bodies of several (ref, version id) pairs (see `body_of`), in two queries whatever their number."""
    h, ent = s.entity_history, s.entities
    refs = sorted({ref for ref, _ in wanted})
    if not refs:
        return {}
    later: dict[str, list[tuple[int, bytes]]] = {}
    with engine.connect() as conn:
        for ref, vid, data in conn.execute(sa.select(h.c.ref, h.c.id, h.c.previous_body).where(
                in_values(conn, h.c.ref, refs) & h.c.change.in_((CHANGED, REMOVED))).order_by(h.c.ref, h.c.id)):
            later.setdefault(ref, []).append((vid, data))
        current = dict(conn.execute(sa.select(ent.c.ref, ent.c.body).where(in_values(conn, ent.c.ref, refs))).all())
    out: dict[tuple[str, int], dict[str, Any] | None] = {}
    for ref, vid in wanted:
        nxt = next((data for i, data in later.get(ref, ()) if i > vid), None)
        if nxt is not None:
            out[(ref, vid)] = unpack_body(nxt)
        else:
            body = current.get(ref)
            out[(ref, vid)] = None if body is None else orjson.loads(body)
    return out


def cycles(engine: sa.Engine, provider: str | None = None) -> list[dict[str, Any]]:
    """The ledger's cycles (provider, cycle, started, completed), oldest first."""
    i = s.ingestions
    q = sa.select(i.c.provider, i.c.cycle, i.c.created_at, i.c.ingestion_completed_at).order_by(i.c.id)
    if provider:
        q = q.where(i.c.provider == provider)
    with engine.connect() as conn:
        return [r._asdict() for r in conn.execute(q)]


def change_counts(engine: sa.Engine) -> list[dict[str, Any]]:
    """Versions per provider, cycle, kind and change."""
    h = s.entity_history
    q = (sa.select(h.c.provider, h.c.cycle, h.c.kind, h.c.change, sa.func.count().label("count"))
         .group_by(h.c.provider, h.c.cycle, h.c.kind, h.c.change).order_by(h.c.provider, h.c.cycle))
    with engine.connect() as conn:
        return [r._asdict() for r in conn.execute(q)]


def owner_events(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every state version of the refs whose owner ever changed, or that were removed, plus the
    versions owned by a removed ref: what the change summary needs to tell ownership changes and
    entities that lost their owner. Ordered by ref, id."""
    h = s.entity_history
    removed = sa.select(h.c.ref).where(h.c.change == REMOVED)
    changed = sa.select(h.c.ref).where((h.c.change == CHANGED) & h.c.fields.is_not(None))
    cols = [c for c in h.c if c.name not in ("previous_body",)]
    q = (sa.select(*cols).where(h.c.change.in_(STATE_CHANGES) & (h.c.ref.in_(changed) | h.c.owner.in_(removed) | h.c.ref.in_(removed)))
         .order_by(h.c.ref, h.c.id))
    with engine.connect() as conn:
        return [_version(r) for r in conn.execute(q)]


def storage_bytes(engine: sa.Engine, tables: Sequence[sa.Table]) -> dict[str, int]:
    """Bytes each table uses with its indexes (PostgreSQL: pg_total_relation_size; SQLite: dbstat)."""
    out = {}
    with engine.connect() as conn:
        for t in tables:
            if conn.dialect.name == "postgresql":
                from catalog_pipelines.storage.sql import qualified_name

                out[t.name] = conn.execute(sa.text("SELECT pg_total_relation_size(:n)"), {"n": qualified_name(t)}).scalar_one()
            else:
                names = [t.name] + [ix.name for ix in t.indexes] + [f"sqlite_autoindex_{t.name}_1"]
                out[t.name] = conn.execute(sa.text("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN (SELECT value FROM json_each(:n))"),
                                           {"n": orjson.dumps(names).decode()}).scalar_one()
    return out


def prune(engine: sa.Engine, provider: str, current_cycle: int, keep_cycles: int) -> int:
    """Drop `provider`'s versions older than its last `keep_cycles` cycles. Per ref, the latest
    older state version stays (the catalog as of the oldest kept cycle still needs it), without the
    body it replaced; removed refs and old rejections go entirely. Returns the rows deleted."""
    h = s.entity_history
    cutoff = current_cycle - keep_cycles + 1
    old = (h.c.provider == provider) & (h.c.cycle < cutoff)
    later = h.alias("later")
    # A version older than the window goes unless it is its ref's latest state version there; a
    # removal goes even then (the ref is gone). In SQL (one probe of the ref index per old version):
    # nothing of a million entities' history is read into memory.
    superseded = sa.exists().where((later.c.ref == h.c.ref) & (later.c.provider == provider) & (later.c.cycle < cutoff)
                                   & later.c.change.in_(STATE_CHANGES) & (later.c.id > h.c.id))
    with engine.begin() as conn:
        deleted = conn.execute(h.delete().where(old & (h.c.change.not_in(STATE_CHANGES) | (h.c.change == REMOVED) | superseded))).rowcount
        # What is left of the old versions is what the window's first state needs, without the
        # bodies it replaced.
        conn.execute(h.update().where(old & h.c.previous_body.is_not(None)).values(previous_body=None))
    return deleted
