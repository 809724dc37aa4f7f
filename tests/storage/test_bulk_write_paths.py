"""The chunk write path at bulk sizes, on both backends: batched writes, direct COPY of new
entities and their relations, lazy validation, and the atomicity of all of it.

Chunks here are larger than WRITE_BATCH (several write batches in one transaction) and each batch
is larger than COPY_THRESHOLD (so PostgreSQL takes COPY).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from catalog_pipelines.ingestion.chunks import ProcessedChunk, iter_processed, process_chunk
from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
from catalog_pipelines.storage import catalog as catalog_module
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.catalog import WRITE_BATCH, CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger
from catalog_pipelines.storage.sql import COPY_THRESHOLD

N = 2 * WRITE_BATCH + 300  # three batches, the last one small
assert WRITE_BATCH >= COPY_THRESHOLD


def body(i: int, depends: list[int] | None = None, description: str = "") -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": f"svc-{i}", "description": description},
        "spec": {"type": "service", "lifecycle": "production", "owner": f"team-{i % 7}",
                 "dependsOn": [f"component:svc-{j}" for j in (depends if depends is not None else [i + 1, i + 2])]},
    }


def processed(bodies: list[dict]) -> list[ProcessedEntity]:
    out = [process_entity(RawEntity(entity=b, location=f"test#{i}")) for i, b in enumerate(bodies)]
    assert all(isinstance(e, ProcessedEntity) for e in out)
    return out


@pytest.fixture
def db(catalog_url):
    engine = get_engine(catalog_url)
    return CatalogStore(engine), Ledger(engine), engine


def write(store, ingestion, entities, seq=0, done=True, **kw):
    return store.write_chunk(provider="p", ingestion_id=ingestion.id, sequence=seq, cursor_in=None,
                             cursor={"next": seq + 1}, done=done, entities=entities,
                             rejections=kw.pop("rejections", []), **kw)


def table_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (s.entities, s.relations, s.rejections, s.ingestion_marks, s.ingestion_mark_entities)}


def stored_relations(engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(s.relations.c.source_ref, s.relations.c.type, s.relations.c.target_ref)).tuples())


def declared(entities: list[ProcessedEntity]) -> set[tuple[str, str, str]]:
    return {(r.source, r.type, r.target) for e in entities for r in e.relations if r.source == e.ref}


def orphans(engine) -> int:
    """Relation rows whose source entity is not stored: the invariant says there are none."""
    r, e = s.relations, s.entities
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(r).where(~sa.exists().where(e.c.ref == r.c.source_ref))
        ).scalar_one()


def test_a_multi_batch_chunk_writes_exactly_the_declared_rows(db):
    store, ledger, engine = db
    entities = processed([body(i) for i in range(N)])
    result = write(store, ledger.start_cycle("p"), entities)
    assert (result.added, result.changed, result.unchanged) == (N, 0, 0)
    assert result.relations_written == len(declared(entities))
    assert stored_relations(engine) == declared(entities)
    assert table_counts(engine) == {"entities": N, "relations": len(declared(entities)), "rejections": 0,
                                    "ingestion_marks": 1, "ingestion_mark_entities": N}


@pytest.mark.parametrize("where", ["before-commit", "write-batch-2", "producer-mid-stream"])
def test_a_failure_anywhere_in_a_multi_batch_chunk_leaves_nothing(db, monkeypatch, where):
    store, ledger, engine = db
    ingestion = ledger.start_cycle("p")
    entities = processed([body(i) for i in range(N)])
    kw = {}
    if where == "before-commit":
        kw["fail_before_commit"] = True
    elif where == "write-batch-2":
        # The second batch's relation insert fails after the first batch's rows and the second
        # batch's entity rows are already in the transaction.
        real, calls = catalog_module.insert_in_flight, []

        def failing(conn, table, columns, rows, in_flight):
            assert table is s.relations
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("injected write failure")
            return real(conn, table, columns, rows, in_flight)

        monkeypatch.setattr(catalog_module, "insert_in_flight", failing)
    else:
        def lazy(items):
            for i, e in enumerate(items):
                if i == WRITE_BATCH + 10:
                    raise RuntimeError("injected source failure")
                yield e

        entities = lazy(entities)
    with pytest.raises(RuntimeError, match="injected"):
        write(store, ingestion, entities, **kw)
    assert table_counts(engine) == {"entities": 0, "relations": 0, "rejections": 0,
                                    "ingestion_marks": 0, "ingestion_mark_entities": 0}
    # The connection went back to the pool clean: the same chunk now commits in full.
    monkeypatch.undo()
    entities = processed([body(i) for i in range(N)])
    assert write(store, ingestion, entities).added == N
    assert stored_relations(engine) == declared(entities)


def test_relation_rows_the_server_rejects_while_in_flight_roll_back_the_whole_chunk(db):
    """On PostgreSQL a batch's relation COPY is still open while the next batch is validated; a row
    the server refuses (here a stray row already holding the key) fails the chunk when that COPY
    ends, and nothing of the chunk stays. On SQLite the same insert fails at once."""
    store, ledger, engine = db
    bad = WRITE_BATCH + 5  # in the second batch: the first batch's rows are already in
    stray = {"source_ref": f"component:default/svc-{bad}", "type": "dependsOn", "target_ref": f"component:default/svc-{bad + 1}"}
    with engine.begin() as conn:
        conn.execute(s.relations.insert().values(**stray))
    # psycopg's own UniqueViolation from the raw COPY on PostgreSQL, SQLAlchemy's IntegrityError on SQLite.
    with pytest.raises(Exception, match="duplicate key value|UNIQUE constraint failed"):
        write(store, ledger.start_cycle("p"), processed([body(i) for i in range(N)]))
    assert table_counts(engine) == {"entities": 0, "relations": 1, "rejections": 0,
                                    "ingestion_marks": 0, "ingestion_mark_entities": 0}
    # The connection went back to the pool usable: without the stray row the chunk commits.
    with engine.begin() as conn:
        conn.execute(s.relations.delete())
    assert write(store, ledger.start_cycle("p"), processed([body(i) for i in range(N)])).added == N


def test_changed_entities_relations_are_replaced_across_batches(db):
    store, ledger, engine = db
    write(store, ledger.start_cycle("p"), processed([body(i) for i in range(N)]))
    # Every 3rd entity changes its dependencies, spread over all batches; the rest are unchanged.
    second = processed([body(i, depends=[i + 5]) if i % 3 == 0 else body(i) for i in range(N)])
    result = write(store, ledger.start_cycle("p"), second)
    assert (result.added, result.changed, result.unchanged) == (0, len(range(0, N, 3)), N - len(range(0, N, 3)))
    assert stored_relations(engine) == declared(second)


def test_duplicates_within_a_chunk_keep_the_first_even_in_different_batches(db):
    store, ledger, engine = db
    bodies = [body(i) for i in range(N)]
    bodies.append(body(3, depends=[999_999]))  # same ref as svc-3 (first batch), in the last batch
    raw = [RawEntity(entity=b, location=f"test#{i}") for i, b in enumerate(bodies)]
    out = ProcessedChunk([], [], [])
    result = write(store, ledger.start_cycle("p"), iter_processed(raw, {}, "p", out),
                   unchanged_refs=out.unchanged, rejections=out.rejected)
    assert result.added == N
    # Two locations declaring one ref: a conflict, and the first location keeps it.
    assert [(r.rule, r.ref) for r in result.rejections] == [("conflict", "component:default/svc-3")]
    assert "test#3" in result.rejections[0].message and f"test#{N}" in result.rejections[0].message
    assert stored_relations(engine) == declared(process_chunk(raw[:N]).accepted)
    assert table_counts(engine)["rejections"] == 1


def test_lazy_validation_appends_rejections_and_unchanged_after_the_source_ones(db):
    store, ledger, engine = db
    raw = [RawEntity(entity=body(i), location=f"test#{i}") for i in range(N)]
    raw.append(RawEntity(entity={"kind": "Component"}, location="broken"))
    source_rejection = process_entity(RawEntity(entity=[], location="from-source"))
    refs = [f"component:default/svc-{i}" for i in range(N)]
    results = []
    for _ in range(2):  # all new, then all unchanged (document fingerprints match)
        out = ProcessedChunk([], [], [source_rejection])
        results.append(write(store, ledger.start_cycle("p"), lambda stored, out=out: iter_processed(raw, stored, "p", out),
                             refs=refs, unchanged_refs=out.unchanged, rejections=out.rejected))
    assert [(r.added, r.changed, r.unchanged) for r in results] == [(N, 0, 0), (0, 0, N)]
    assert [r.location for r in results[1].rejections] == ["from-source", "broken"]
    assert table_counts(engine)["ingestion_mark_entities"] == N


def test_a_removed_entity_leaves_no_relation_rows_so_it_can_come_back_as_new(db):
    """The invariant the direct COPY of a new entity's relations relies on: relation rows exist only
    while their source entity does. The sweep is the only code that deletes entities."""
    store, ledger, engine = db
    everyone = processed([body(i) for i in range(N)])
    ingestion = ledger.start_cycle("p")
    write(store, ingestion, everyone)
    store.sweep(provider="p", ingestion_id=ingestion.id, cycle=ingestion.cycle,
                reject_removals_above_percentage=None, reject_empty_source_collections=False)
    ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    # Cycle 2: the first 600 disappear from the source and are swept.
    ingestion = ledger.start_cycle("p")
    write(store, ingestion, everyone[600:])
    sweep = store.sweep(provider="p", ingestion_id=ingestion.id, cycle=ingestion.cycle,
                        reject_removals_above_percentage=None, reject_empty_source_collections=False)
    ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    assert sweep.removed == 600
    assert orphans(engine) == 0
    assert stored_relations(engine) == declared(everyone[600:])
    # Cycle 3: they come back, new again and with different relations; nothing conflicts.
    back = processed([body(i, depends=[i + 7]) for i in range(600)])
    result = write(store, ledger.start_cycle("p"), back + everyone[600:])
    assert (result.added, result.unchanged) == (600, N - 600)
    assert stored_relations(engine) == declared(back + everyone[600:])
    assert orphans(engine) == 0
