"""Catalog repository: chunk writes, the removal sweep, and the read side.

Every chunk is written in ONE transaction together with its ledger mark, so a crash at any point
leaves either the whole chunk (entities, relations, rejections, mark, mark refs) or none of it,
and a re-run restarts from the previous mark's cursor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from catalog_pipelines.model.entity import ProcessedEntity, Rejection
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.sql import batched, bulk_write, in_values, insert_in_flight, psycopg_connection, qualified_name

if TYPE_CHECKING:
    from catalog_pipelines.storage.history import HistoryWriter

# Entities per write batch of a chunk: small enough that a 20k chunk's rows never sit in memory at
# once, large enough that per-statement costs stay negligible.
WRITE_BATCH = 1000


_clock: "Callable[[], dt.datetime] | None" = None


def utcnow() -> dt.datetime:
    """The current time in UTC: the one clock of the ingestion engine (tests replace it)."""
    return _clock() if _clock is not None else dt.datetime.now(dt.timezone.utc)


def set_clock(clock: "Callable[[], dt.datetime] | None") -> None:
    """Drive every ledger timestamp from `clock` (None: the wall clock). For tests and simulations."""
    global _clock
    _clock = clock


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


@dataclass
class ChunkResult:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    relations_written: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.added + self.changed + self.unchanged


@dataclass
class SweepResult:
    provider: str
    ingestion_id: int
    owned: int  # entities the provider owned before the sweep
    seen: int  # refs this cycle's marks saw
    stale: int  # owned but not seen
    removed: int
    outcome: str  # applied | nothing-to-remove | rejected-threshold | rejected-empty | (cycle.py) walk-restarted | skipped-incomplete
    message: str
    stale_sample: list[str] = field(default_factory=list)
    kept_live: int = 0  # candidates the source confirmed it still holds: kept, and counted as seen

    @property
    def percentage(self) -> float:
        return 100.0 * self.stale / self.owned if self.owned else 0.0


# ref → (content hash, owning provider, location)
Fingerprints = dict[str, tuple[str, str, str]]


def catalog_version(engine: sa.Engine) -> str:
    """A marker that changes whenever the stored catalog does (one cheap query): the entities'
    count, their highest id and the latest `last_changed`. Every write of an entity stamps
    `last_changed` with the time of the write and a new entity takes a new id; a removal (the
    sweep) lowers the count or comes with a write. What derives from the entities alone (owners,
    the org's teams) may be reused while the marker is unchanged."""
    e = s.entities
    with engine.connect() as conn:
        count, top, changed = conn.execute(sa.select(sa.func.count(), sa.func.max(e.c.id), sa.func.max(e.c.last_changed))).one()
    return f"{count}:{top}:{changed.isoformat() if isinstance(changed, dt.datetime) else changed}"


def _fingerprints(conn: sa.Connection, refs: Sequence[str]) -> Fingerprints:
    if not refs:
        return {}
    e = s.entities
    rows = conn.execute(sa.select(e.c.ref, e.c.content_hash, e.c.provider, e.c.location).where(in_values(conn, e.c.ref, dict.fromkeys(refs))))
    return {r.ref: (r.content_hash, r.provider, r.location) for r in rows}


def _claimed_this_cycle(conn: sa.Connection, provider: str, ingestion_id: int, refs: Sequence[str]) -> set[str]:
    """The refs among `refs` that a chunk of this cycle already marked seen (claimed)."""
    if not refs:
        return set()
    me = s.ingestion_mark_entities
    return set(conn.execute(sa.select(me.c.ref).where(
        (me.c.provider == provider) & (me.c.ingestion_id == ingestion_id) & in_values(conn, me.c.ref, dict.fromkeys(refs)))).scalars())


def conflict_message(ref: str, kept: str, rejected: str) -> str:
    """Backstage's wording for two locations declaring one entity; the first claim keeps it."""
    return f"conflicting entityRef {ref}: already claimed by {kept} in this walk; not taken over by {rejected}"


def _mark_rows(provider: str, refs: Iterable[str], ingestion_id: int, sequence: int, now: dt.datetime) -> list[dict[str, Any]]:
    return [{"provider": provider, "ref": ref, "ingestion_id": ingestion_id, "sequence": sequence, "seen_at": now} for ref in refs]


def _mark_seen(conn: sa.Connection, provider: str, refs: Sequence[str], ingestion_id: int, sequence: int, now: dt.datetime) -> None:
    """Upsert the marks of `refs` (distinct, and each possibly marked before) for this chunk."""
    if not refs:
        return
    me = s.ingestion_mark_entities
    raw = psycopg_connection(conn)
    if raw is None:
        bulk_write(conn, me, _mark_rows(provider, refs, ingestion_id, sequence, now), keys=("provider", "ref"), on_conflict="update")
        return
    # Every row shares all but the ref, so one statement over a binary array of refs does it: no
    # staging table. 200k marks of an unchanged cycle: 1.9-2.2 s instead of 3.2-3.6 s (COPY into a
    # staging table, then INSERT … ON CONFLICT).
    raw.execute(
        f"INSERT INTO {qualified_name(me)} (provider, ref, ingestion_id, sequence, seen_at) "
        "SELECT %s, ref, %s, %s, %s FROM unnest(%b::text[]) AS ref "
        "ON CONFLICT (provider, ref) DO UPDATE SET ingestion_id = EXCLUDED.ingestion_id, "
        "sequence = EXCLUDED.sequence, seen_at = EXCLUDED.seen_at",
        [provider, ingestion_id, sequence, now, list(refs)],
    )


class CatalogStore:
    """Reads and writes the catalog and its ingestion ledger through one engine."""

    def __init__(self, engine: sa.Engine, *, history: bool = True):
        self.engine = engine
        # Catalog history (storage/history.py): off only for the A/B of benchmarks/history_200k.py.
        self.history = history

    def _history(self, provider: str, ingestion_id: int, sequence: int, now: dt.datetime, cycle: int | None = None) -> "HistoryWriter | None":
        from catalog_pipelines.storage.history import HistoryWriter

        return HistoryWriter(provider, ingestion_id, sequence, now, cycle) if self.history else None

    # ------------------------------------------------------------------ writes

    def write_chunk(
        self,
        *,
        provider: str,
        ingestion_id: int,
        sequence: int,
        cursor_in: Any,
        cursor: Any,
        done: bool,
        entities: Iterable[ProcessedEntity] | Callable[[Fingerprints], Iterable[ProcessedEntity]],
        rejections: Sequence[Rejection],
        unchanged_refs: Sequence[str] = (),
        source_total: int | None = None,
        started: float | None = None,
        fail_before_commit: bool = False,
        refs: Sequence[str] = (),
    ) -> ChunkResult:
        """Write one chunk and its mark atomically. Unchanged entities (same hash) are not rewritten.

        `unchanged_refs` are refs the caller already matched against the stored fingerprints: only
        their marks are written.

        `entities` may be lazy (validation as it goes): it is written WRITE_BATCH entities at a
        time, all in this one transaction, so a chunk's validated entities and rows never sit in
        memory all at once. `rejections` and `unchanged_refs` are read only after `entities` is
        exhausted, so a lazy producer may still be appending to them.

        `entities` may also be a function of the stored fingerprints of `refs` (the chunk's refs):
        they are then read once, inside this transaction, and handed to it, so the producer can
        skip unchanged documents and the writer can tell new from changed ones with the same one
        lookup (instead of one before the transaction and another per batch).

        `fail_before_commit` exists for the crash tests: it raises after every statement has run,
        inside the transaction, to prove the rollback leaves nothing behind.
        """
        started = started if started is not None else time.perf_counter()
        now = utcnow()
        result = ChunkResult()
        conflicts: list[Rejection] = []
        # `in_flight` holds the previous batch's relation COPY open while the next batch is
        # validated (PostgreSQL): the server indexes ~5 relation rows per entity, the largest
        # part of its work, while Python validates. It closes before the connection is used again.
        history = self._history(provider, ingestion_id, sequence, now)
        with self.engine.begin() as conn, contextlib.ExitStack() as in_flight:
            known: tuple[Fingerprints, frozenset[str]] | None = None
            if callable(entities):
                known = (_fingerprints(conn, refs), frozenset(refs))
                entities = entities(known[0])
            for batch in batched(entities, WRITE_BATCH):
                in_flight.close()
                self._write_entities(conn, batch, provider, ingestion_id, sequence, now, result, conflicts, known, in_flight, history)
            in_flight.close()
            result.rejections = [*rejections, *conflicts]
            result.unchanged += len(unchanged_refs)
            _mark_seen(conn, provider, unchanged_refs, ingestion_id, sequence, now)

            conn.execute(
                s.rejections.delete().where(
                    (s.rejections.c.provider == provider)
                    & (s.rejections.c.ingestion_id == ingestion_id)
                    & (s.rejections.c.chunk == sequence)
                )
            )
            if result.rejections:
                conn.execute(
                    s.rejections.insert(),
                    [
                        {
                            "provider": provider,
                            "ingestion_id": ingestion_id,
                            "chunk": sequence,
                            "location": r.location,
                            "doc_index": r.doc_index,
                            "ref": r.ref,
                            "field": r.field,
                            "rule": r.rule,
                            "value": r.value,
                            "message": r.message,
                            "rejected_at": now,
                        }
                        for r in result.rejections
                    ],
                )
            result.rejected = len(result.rejections)
            if history is not None:
                history.record_rejections(conn, result.rejections)

            # Only this chunk's own mark is replaced (an idempotent re-run); later marks are never
            # deleted here (ingestion/chunks.py: chunk_start_cursor refuses re-runs that would).
            conn.execute(
                s.ingestion_marks.delete().where(
                    (s.ingestion_marks.c.ingestion_id == ingestion_id) & (s.ingestion_marks.c.sequence == sequence)
                )
            )
            conn.execute(
                s.ingestion_marks.insert().values(
                    ingestion_id=ingestion_id,
                    sequence=sequence,
                    cursor_in=dumps(cursor_in),
                    cursor=dumps(cursor),
                    done=done,
                    entity_count=result.accepted,
                    added=result.added,
                    changed=result.changed,
                    unchanged=result.unchanged,
                    rejected=result.rejected,
                    source_total=source_total,
                    duration_ms=int((time.perf_counter() - started) * 1000),
                    created_at=now,
                )
            )
            if fail_before_commit:
                raise RuntimeError("injected failure before commit")
        return result

    def _write_entities(
        self,
        conn: sa.Connection,
        entities: list[ProcessedEntity],
        provider: str,
        ingestion_id: int,
        sequence: int,
        now: dt.datetime,
        result: ChunkResult,
        conflicts: list[Rejection],
        known: tuple[Fingerprints, frozenset[str]] | None,
        in_flight: contextlib.ExitStack,
        history: "HistoryWriter | None" = None,
    ) -> None:
        """One batch of write_chunk: entity rows, their marks and (left in flight) their relations.

        `known`: fingerprints this transaction already read, and the refs it read them for.
        """
        # Read inside the transaction: fingerprints read before it may be stale, ownership may not.
        if known is None:
            existing = _fingerprints(conn, [e.ref for e in entities])
        else:
            # A document whose ref its raw fingerprint could not name was not looked up yet.
            existing, looked_up = known
            unseen = [e.ref for e in entities if e.ref not in looked_up]
            if unseen:
                existing = {**existing, **_fingerprints(conn, unseen)}
        new_rows, changed_rows, stored = [], [], []  # stored: accepted, and in the catalog already
        # A document for a ref stored from another location of this provider: a move, unless a chunk
        # of this walk already claimed the ref from there (then two locations declare it, and the
        # first in walk order keeps it, every cycle: no flip-flopping between the two definitions).
        claimed = _claimed_this_cycle(conn, provider, ingestion_id, [
            e.ref for e in entities if (p := existing.get(e.ref)) is not None and p[1] == provider and p[2] != e.location])
        for e in entities:
            prior = existing.get(e.ref)
            if e.ref in claimed:
                conflicts.append(Rejection(location=e.location, ref=e.ref, field="metadata.name", rule="conflict",
                                           value=e.ref, message=conflict_message(e.ref, prior[2], e.location)))
                continue
            if prior is not None and prior[1] != provider:
                # Another provider owns this ref: reject rather than take it over.
                conflicts.append(
                    Rejection(
                        location=e.location,
                        ref=e.ref,
                        field="metadata.name",
                        rule="conflict",
                        value=e.ref,
                        message=f"{e.ref} is already provided by {prior[1]!r}; not taken over by {provider!r}",
                    )
                )
                continue
            if prior is None:
                new_rows.append(self._entity_row(e, provider, now, first_seen=True))
            else:
                stored.append(e)
                if prior[0] != e.content_hash or prior[2] != e.location:
                    changed_rows.append(self._entity_row(e, provider, now, first_seen=False))
                else:
                    result.unchanged += 1
        result.added += len(new_rows)
        result.changed += len(changed_rows)

        if history is not None:  # before the update: it reads the bodies the changed rows replace
            history.record_entities(conn, entities, new_rows, changed_rows)
        bulk_write(conn, s.entities, new_rows)
        if changed_rows:
            stmt = (
                s.entities.update()
                .where(s.entities.c.ref == sa.bindparam("b_ref"))
                .values(
                    kind=sa.bindparam("kind"),
                    namespace=sa.bindparam("namespace"),
                    name=sa.bindparam("name"),
                    location=sa.bindparam("location"),
                    body=sa.bindparam("body"),
                    content_hash=sa.bindparam("content_hash"),
                    last_changed=sa.bindparam("last_changed"),
                )
            )
            conn.execute(stmt, [{**r, "b_ref": r["ref"]} for r in changed_rows])

        # A written entity's relation rows become exactly the set it declares. A changed entity's
        # old rows are deleted first. A new entity has none: relation rows exist only while their
        # source entity does, because the sweep (the only code that deletes entities) deletes
        # their relations in the same transaction (tests/storage/test_bulk_write_paths.py holds this). So
        # nothing can conflict and the insert is a plain COPY: no staging table, no ON CONFLICT
        # (35% less server CPU). Duplicates cannot occur either: the set dedupes each entity's
        # rows, and rows of different entities differ in source_ref (a ref repeated within a
        # chunk is rejected before it gets here). A row left behind by a manual delete would make
        # the chunk fail loudly on the primary key rather than be merged silently.
        if changed_rows:
            conn.execute(s.relations.delete().where(in_values(conn, s.relations.c.source_ref, [r["ref"] for r in changed_rows])))

        # Marks. A new entity has none either: a mark exists only while its entity does (the
        # sweep deletes both together; a reset deletes marks only), so new entities' marks are a
        # plain insert and only entities stored before need the upsert.
        bulk_write(conn, s.ingestion_mark_entities, _mark_rows(provider, (r["ref"] for r in new_rows), ingestion_id, sequence, now))
        _mark_seen(conn, provider, [e.ref for e in stored], ingestion_id, sequence, now)

        rewritten = {r["ref"] for r in new_rows} | {r["ref"] for r in changed_rows}
        relation_rows = sorted(
            {
                (rel.source, rel.type, rel.target)
                for e in entities
                if e.ref in rewritten
                for rel in e.relations
                # Only the direction this entity declared; the inverse is derived on read.
                if rel.source == e.ref
            }
        )
        # Sorted by primary key: consecutive rows land in the same index pages. Left in flight:
        # the next batch is validated while the server inserts these.
        insert_in_flight(conn, s.relations, ("source_ref", "type", "target_ref"), relation_rows, in_flight)
        result.relations_written += len(relation_rows)

    @staticmethod
    def _entity_row(e: ProcessedEntity, provider: str, now: dt.datetime, first_seen: bool) -> dict[str, Any]:
        row = {
            "ref": e.ref,
            "kind": e.kind.lower(),
            "namespace": e.namespace,
            "name": e.name,
            "location": e.location,
            "body": dumps(e.entity),
            "content_hash": e.content_hash,
            "last_changed": now,
        }
        if first_seen:
            row.update(provider=provider, first_seen=now)
        return row

    def sweep(
        self,
        *,
        provider: str,
        ingestion_id: int,
        cycle: int,
        reject_removals_above_percentage: float | None,
        reject_empty_source_collections: bool,
        confirm: Callable[[list[str]], set[str]] | None = None,
        sequence: int = 0,
    ) -> SweepResult:
        """Remove entities this provider owns that no mark of this cycle saw, unless a guard objects.

        Computed in SQL so nothing scales with the catalog in Python memory. A guard rejection
        leaves everything in place; since staleness is recomputed from the ledger every cycle, the
        next good cycle removes what truly disappeared (Backstage before 2026 lost these for ever).
        A threshold of 0 rejects any removal; it does not switch the guard off.

        `confirm` (a provider that can ask its source, `ConfirmsRemovals`) is given the candidates
        once the guards pass; those it says the source still holds are marked seen in this cycle
        (as chunk `sequence`) and kept. Only what the source confirms gone is removed.
        """
        e, me = s.entities, s.ingestion_mark_entities
        seen_this_cycle = sa.exists().where(
            (me.c.provider == provider) & (me.c.ref == e.c.ref) & (me.c.ingestion_id == ingestion_id)
        )
        stale_filter = (e.c.provider == provider) & ~seen_this_cycle
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Without fresh statistics (a new database, or autovacuum off) PostgreSQL plans the
                # anti-join as a nested loop: minutes at 200k entities instead of ~3 s.
                conn.execute(sa.text(f"ANALYZE {e.name}"))
                conn.execute(sa.text(f"ANALYZE {s.LEDGER_SCHEMA}.{me.name}"))
            owned = conn.execute(sa.select(sa.func.count()).select_from(e).where(e.c.provider == provider)).scalar_one()
            seen = conn.execute(
                sa.select(sa.func.count()).select_from(me).where((me.c.provider == provider) & (me.c.ingestion_id == ingestion_id))
            ).scalar_one()
            stale = conn.execute(sa.select(sa.func.count()).select_from(e).where(stale_filter)).scalar_one()
            sample = list(conn.execute(sa.select(e.c.ref).where(stale_filter).order_by(e.c.ref).limit(20)).scalars())
            base = dict(provider=provider, ingestion_id=ingestion_id, owned=owned, seen=seen, stale=stale, stale_sample=sample)
            if stale == 0:
                return SweepResult(**base, removed=0, outcome="nothing-to-remove", message="no entity disappeared from the source")
            # Location entities are containers: a walk that found only a Location (a root file whose
            # targets match nothing) found nothing.
            seen_entities = conn.execute(
                sa.select(sa.func.count()).select_from(me.join(e, e.c.ref == me.c.ref))
                .where((me.c.provider == provider) & (me.c.ingestion_id == ingestion_id) & (e.c.kind != "location"))
            ).scalar_one()
            if reject_empty_source_collections and seen_entities == 0:
                return SweepResult(
                    **base,
                    removed=0,
                    outcome="rejected-empty",
                    message=f"source returned no entities; refusing to remove all {stale} entities of {provider!r} (reject_empty_source_collections)",
                )
            now = utcnow()
            kept = 0
            if confirm is not None:
                # The source is asked about every candidate; only what it confirms gone is removed,
                # and the guards below judge that.
                candidates = list(conn.execute(sa.select(e.c.ref).where(stale_filter).order_by(e.c.ref)).scalars())
                live = sorted(set(confirm(candidates)) & set(candidates))
                _mark_seen(conn, provider, live, ingestion_id, sequence, now)
                kept = len(live)
                stale -= kept
                base.update(stale=stale, stale_sample=list(conn.execute(sa.select(e.c.ref).where(stale_filter).order_by(e.c.ref).limit(20)).scalars()))
                if stale == 0:
                    return SweepResult(**base, removed=0, kept_live=kept, outcome="nothing-to-remove",
                                       message=f"the source still holds all {kept} entities this walk did not see: kept")
            percent = 100.0 * stale / owned if owned else 0.0
            if reject_removals_above_percentage is not None and percent > reject_removals_above_percentage:
                return SweepResult(
                    **base,
                    removed=0,
                    kept_live=kept,
                    outcome="rejected-threshold",
                    message=(
                        f"REMOVAL_THRESHOLD exceeded: attempted to remove {stale} of {owned} entities "
                        f"({percent:.1f}%) of {provider!r}, above reject_removals_above_percentage="
                        f"{reject_removals_above_percentage:g}%"
                    ),
                )
            stale_refs = sa.select(e.c.ref).where(stale_filter)
            conn.execute(
                s.removals.insert().from_select(
                    ["ref", "kind", "provider", "ingestion_id", "cycle", "removed_at", "body"],
                    sa.select(
                        e.c.ref, e.c.kind, e.c.provider, sa.literal(ingestion_id), sa.literal(cycle), sa.literal(now, s.TS), e.c.body
                    ).where(stale_filter),
                )
            )
            if (history := self._history(provider, ingestion_id, sequence, now, cycle)) is not None:
                history.record_removals(conn, stale_filter)
            conn.execute(s.relations.delete().where(s.relations.c.source_ref.in_(stale_refs)))
            conn.execute(me.delete().where((me.c.provider == provider) & me.c.ref.in_(stale_refs)))
            removed = conn.execute(e.delete().where(stale_filter)).rowcount
            message = f"removed {removed} entities ({percent:.1f}%)"
            if kept:
                message += f"; kept {kept} the walk did not see but the source confirmed it still holds"
            return SweepResult(**base, removed=removed, kept_live=kept, outcome="applied", message=message)

    def cycle_seen(self, provider: str, ingestion_id: int) -> int:
        """Distinct source items this cycle's walk accounted for: refs marked seen, plus items the
        source served that were rejected (a bad document is still an item of the source's total).
        Repeats within a chunk are not counted twice."""
        me, r = s.ingestion_mark_entities, s.rejections
        marked = sa.exists().where((me.c.provider == provider) & (me.c.ref == r.c.ref) & (me.c.ingestion_id == ingestion_id))
        mine = (r.c.provider == provider) & (r.c.ingestion_id == ingestion_id) & (r.c.rule != "duplicate")
        with self.engine.connect() as conn:
            seen = conn.execute(sa.select(sa.func.count()).select_from(me).where(
                (me.c.provider == provider) & (me.c.ingestion_id == ingestion_id))).scalar_one()
            rejected_refs = conn.execute(sa.select(sa.func.count(sa.distinct(r.c.ref))).where(
                mine & r.c.ref.is_not(None) & ~marked)).scalar_one()
            unnamed = conn.execute(sa.select(sa.func.count()).select_from(r).where(mine & r.c.ref.is_(None))).scalar_one()
        return seen + rejected_refs + unnamed

    # ------------------------------------------------------------------ reads

    def get_entity(self, ref: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.entities).where(s.entities.c.ref == ref.lower())).first()
        if row is None:
            return None
        return {**row._asdict(), "body": loads(row.body)}

    def relations_of(self, ref: str) -> list[tuple[str, str]]:
        """(type, target) for every relation whose source is `ref`, both stored directions merged."""
        ref = ref.lower()
        r = s.relations
        with self.engine.connect() as conn:
            forward = conn.execute(sa.select(r.c.type, r.c.target_ref).where(r.c.source_ref == ref)).all()
            backward = conn.execute(sa.select(r.c.type, r.c.source_ref).where(r.c.target_ref == ref)).all()
        pairs = {(t, target) for t, target in forward}
        pairs |= {(s.INVERSE_RELATION[t], source) for t, source in backward}
        return sorted(pairs)

    def count(self, provider: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(s.entities)
        if provider:
            q = q.where(s.entities.c.provider == provider)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one()

    def refs(self, provider: str | None = None) -> set[str]:
        q = sa.select(s.entities.c.ref)
        if provider:
            q = q.where(s.entities.c.provider == provider)
        with self.engine.connect() as conn:
            return set(conn.execute(q).scalars())

    def iter_entities(self, kinds: Sequence[str] | None = None, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Stream entity bodies without loading the whole catalog at once."""
        q = sa.select(s.entities.c.body).order_by(s.entities.c.id)
        if kinds:
            q = q.where(s.entities.c.kind.in_([k.lower() for k in kinds]))
        with self.engine.connect().execution_options(stream_results=True, yield_per=batch) as conn:
            for (body,) in conn.execute(q):
                yield orjson.loads(body)

    def search(self, text: str, limit: int = 20) -> list[dict[str, Any]]:
        """Entities whose ref, title, description or tags contain `text` (case-insensitive)."""
        needle = f"%{text.lower()}%"
        e = s.entities
        q = (
            sa.select(e.c.ref, e.c.body)
            .where(sa.or_(e.c.ref.like(needle), sa.func.lower(e.c.body).like(needle)))
            .order_by(sa.case((e.c.ref.like(needle), 0), else_=1), e.c.ref)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [{"ref": ref, "body": loads(body)} for ref, body in conn.execute(q)]

    def stats(self) -> dict[str, Any]:
        e = s.entities
        with self.engine.connect() as conn:
            by_kind = dict(conn.execute(sa.select(e.c.kind, sa.func.count()).group_by(e.c.kind)).all())
            by_provider = dict(conn.execute(sa.select(e.c.provider, sa.func.count()).group_by(e.c.provider)).all())
            relations = conn.execute(sa.select(sa.func.count()).select_from(s.relations)).scalar_one()
            rejected = conn.execute(sa.select(sa.func.count()).select_from(s.rejections)).scalar_one()
            removed = conn.execute(sa.select(sa.func.count()).select_from(s.removals)).scalar_one()
        return {
            "entities": sum(by_kind.values()),
            "by_kind": dict(sorted(by_kind.items())),
            "by_provider": dict(sorted(by_provider.items())),
            # Each stored row is one relation pair: Backstage would list it twice (both directions).
            "relation_pairs": relations,
            "rejected": rejected,
            "removed_total": removed,
        }

    def rejected(self, provider: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        r = s.rejections
        q = sa.select(r).order_by(r.c.provider, r.c.id).limit(limit)
        if provider:
            q = q.where(r.c.provider == provider)
        with self.engine.connect() as conn:
            return [row._asdict() for row in conn.execute(q)]

    def prune_rejections(self, provider: str, keep_ingestion_id: int) -> int:
        """Keep only the rejections of the latest cycle: older ones describe documents since fixed."""
        r = s.rejections
        with self.engine.begin() as conn:
            return conn.execute(
                r.delete().where((r.c.provider == provider) & (r.c.ingestion_id != keep_ingestion_id))
            ).rowcount
