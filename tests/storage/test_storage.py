"""Chunk writes and the removal sweep on both backends: atomicity, idempotence, guards, ownership."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger


def component(name: str, owner: str = "team-a", depends: list[str] | None = None, description: str = "") -> ProcessedEntity:
    body = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name, "description": description},
        "spec": {"type": "service", "lifecycle": "production", "owner": owner, "dependsOn": depends or []},
    }
    out = process_entity(RawEntity(entity=body, location=f"test:{name}"))
    assert isinstance(out, ProcessedEntity), out
    return out


@pytest.fixture
def db(catalog_url):
    engine = get_engine(catalog_url)
    return CatalogStore(engine), Ledger(engine)


def write(store, ledger, provider, entities, seq=0, done=True, **kw):
    ingestion = ledger.start_cycle(provider)
    return store.write_chunk(provider=provider, ingestion_id=ingestion.id, sequence=seq, cursor_in=None,
                             cursor={"next": seq + 1}, done=done, entities=entities, rejections=[], **kw)


def full_cycle(store, ledger, provider, entities, **guards):
    """Write all entities as one chunk of a fresh cycle, sweep, and close the cycle."""
    ingestion = ledger.start_cycle(provider)
    result = write(store, ledger, provider, entities)
    sweep = store.sweep(provider=provider, ingestion_id=ingestion.id, cycle=ingestion.cycle,
                        reject_removals_above_percentage=guards.get("threshold"),
                        reject_empty_source_collections=guards.get("reject_empty", False))
    ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    return result, sweep


def test_second_identical_chunk_writes_no_entity_rows(db):
    store, ledger = db
    entities = [component(f"svc-{i}", depends=[f"component:svc-{i + 1}"]) for i in range(20)]
    first, _ = full_cycle(store, ledger, "p", entities)
    assert (first.added, first.changed, first.unchanged) == (20, 0, 0)
    before = {r["ref"]: r["last_changed"] for r in (store.get_entity(e.ref) for e in entities)}
    second, sweep = full_cycle(store, ledger, "p", entities)
    assert (second.added, second.changed, second.unchanged) == (0, 0, 20)
    assert sweep.outcome == "nothing-to-remove"
    after = {r["ref"]: r["last_changed"] for r in (store.get_entity(e.ref) for e in entities)}
    assert before == after


def test_chunk_reads_stored_fingerprints_once_inside_its_transaction(db, monkeypatch):
    """Given a validator that takes the stored fingerprints, write_chunk looks them up once for the
    whole chunk (not again per batch) and hands the same lookup to the validator."""
    from catalog_pipelines.storage import catalog

    store, ledger = db
    old = [component(f"svc-{i}") for i in range(30)]
    write(store, ledger, "p", old)
    lookups, seen = [], []
    real = catalog._fingerprints
    monkeypatch.setattr(catalog, "_fingerprints", lambda conn, refs: lookups.append(list(refs)) or real(conn, refs))
    monkeypatch.setattr(catalog, "WRITE_BATCH", 7)
    changed = component("svc-0", description="changed")
    chunk = [changed, *old[1:], *(component(f"new-{i}") for i in range(10))]

    def validate(stored):
        seen.append(dict(stored))
        return [e for e in chunk if stored.get(e.ref, ("", ""))[0] != e.content_hash]

    result = write(store, ledger, "p", validate, refs=[e.ref for e in chunk])
    assert len(lookups) == 1 and sorted(seen[0]) == sorted(e.ref for e in old)
    assert (result.added, result.changed) == (10, 1)


def test_entity_whose_ref_was_not_looked_up_is_still_matched_against_the_catalog(db):
    """A ref missing from the up-front lookup (its raw document gave no fingerprint) is looked up
    when written: an existing entity is updated, not inserted a second time."""
    store, ledger = db
    write(store, ledger, "p", [component("a")])
    result = write(store, ledger, "p", lambda stored: [component("a", description="new")], refs=[])
    assert (result.added, result.changed) == (0, 1)
    assert store.count("p") == 1


def test_changed_entity_replaces_its_relations(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component("a", depends=["component:b"]), component("b")])
    assert ("dependsOn", "component:default/b") in store.relations_of("component:default/a")
    assert ("dependencyOf", "component:default/a") in store.relations_of("component:default/b")
    result, _ = full_cycle(store, ledger, "p", [component("a", depends=["component:c"]), component("b")])
    assert (result.changed, result.unchanged) == (1, 1)
    rels = store.relations_of("component:default/a")
    assert ("dependsOn", "component:default/c") in rels and ("dependsOn", "component:default/b") not in rels
    assert ("dependencyOf", "component:default/a") not in store.relations_of("component:default/b")


def test_crash_before_commit_leaves_no_half_chunk(db):
    store, ledger = db
    ingestion = ledger.start_cycle("p")
    with pytest.raises(RuntimeError, match="injected"):
        store.write_chunk(provider="p", ingestion_id=ingestion.id, sequence=0, cursor_in=None, cursor={"next": 1},
                          done=False, entities=[component("a", depends=["component:b"])], rejections=[],
                          fail_before_commit=True)
    assert store.count() == 0
    assert ledger.marks(ingestion.id) == []
    with store.engine.connect() as conn:
        for table in (s.relations, s.ingestion_mark_entities, s.rejections):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0


def test_rerunning_a_chunk_is_idempotent_and_replaces_its_mark(db):
    store, ledger = db
    ents = [component("a"), component("b")]
    write(store, ledger, "p", ents, seq=0, done=False)
    write(store, ledger, "p", ents, seq=0, done=False)
    ingestion = ledger.open_ingestion("p")
    marks = ledger.marks(ingestion.id)
    assert [m.sequence for m in marks] == [0]
    assert (marks[0].added, marks[0].unchanged) == (0, 2)
    assert store.count() == 2


def test_two_providers_with_the_same_ref_do_not_steal_each_other(db):
    store, ledger = db
    full_cycle(store, ledger, "first", [component("shared"), component("only-first")])
    result, sweep = full_cycle(store, ledger, "second", [component("shared", description="other")])
    assert result.added == 0 and result.rejected == 1
    assert "already provided by 'first'" in result.rejections[0].message
    assert store.get_entity("component:default/shared")["provider"] == "first"
    # The first provider still sees its ref as its own: nothing of it is removed.
    _, sweep_first = full_cycle(store, ledger, "first", [component("shared"), component("only-first")])
    assert sweep_first.outcome == "nothing-to-remove"
    assert store.count() == 2


def test_refs_compare_case_insensitively(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component("MixedCase")])
    assert store.get_entity("Component:Default/MIXEDCASE") is not None
    result, _ = full_cycle(store, ledger, "p", [component("mixedcase")])
    # Same entity (the name's case changed): one row, updated in place, nothing removed.
    assert result.changed == 1 and store.count() == 1


def test_sweep_removes_what_disappeared_and_records_it(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(100)])
    _, sweep = full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(97)], threshold=5)
    assert (sweep.outcome, sweep.removed, sweep.stale) == ("applied", 3, 3)
    assert store.count("p") == 97
    with store.engine.connect() as conn:
        removed = set(conn.execute(sa.select(s.removals.c.ref)).scalars())
    assert removed == {"component:default/s97", "component:default/s98", "component:default/s99"}


def test_guard_rejects_mass_removal_and_next_cycle_retries(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(100)])
    _, sweep = full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(40)], threshold=50)
    assert sweep.outcome == "rejected-threshold" and sweep.removed == 0
    assert "60.0%" in sweep.message and store.count("p") == 100
    # Next cycle the source is healthy again except 2 entities that truly went away.
    _, sweep = full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(98)], threshold=50)
    assert (sweep.outcome, sweep.removed) == ("applied", 2)


def test_zero_percent_threshold_rejects_any_removal(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(10)])
    _, sweep = full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(9)], threshold=0)
    assert sweep.outcome == "rejected-threshold" and store.count("p") == 10


def test_empty_source_is_refused_when_guarded(db):
    store, ledger = db
    full_cycle(store, ledger, "p", [component(f"s{i}") for i in range(10)])
    _, sweep = full_cycle(store, ledger, "p", [], reject_empty=True)
    assert sweep.outcome == "rejected-empty" and store.count("p") == 10
    _, sweep = full_cycle(store, ledger, "p", [], reject_empty=False)
    assert sweep.outcome == "applied" and store.count("p") == 0


def test_schema_creation_is_idempotent(catalog_url):
    from catalog_pipelines.storage.db import create_catalog_engine, ensure_schema

    engine = create_catalog_engine(catalog_url)
    assert ensure_schema(engine) == ensure_schema(engine) == s.SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.schema_version)).scalar_one() == 1


@pytest.mark.postgres
def test_version_1_postgres_catalog_is_migrated_to_bytewise_ref_collation(new_postgres_database):
    """Schema v2 gives ref columns the "C" collation; a v1 database (locale collation) is altered in
    place, keeping its rows, and the version is recorded."""
    from catalog_pipelines.storage.db import create_catalog_engine, ensure_schema

    engine = create_catalog_engine(new_postgres_database)
    ensure_schema(engine)
    ref_columns = [("public", "entities", "ref"), ("public", "relations", "source_ref"),
                   ("public", "relations", "target_ref"), ("public", "rejections", "ref"),
                   ("public", "removals", "ref"), ("ingestion", "ingestion_mark_entities", "ref")]

    def collations(conn):
        return [conn.execute(sa.text("SELECT collation_name FROM information_schema.columns WHERE "
                                     "table_schema = :s AND table_name = :t AND column_name = :c"),
                             {"s": sch, "t": t, "c": c}).scalar() for sch, t, c in ref_columns]

    with engine.begin() as conn:
        assert collations(conn) == ["C"] * len(ref_columns)
        # Turn it back into what version 1 created: the database's default collation.
        for sch, t, c in ref_columns:
            conn.execute(sa.text(f'ALTER TABLE "{sch}"."{t}" ALTER COLUMN "{c}" TYPE VARCHAR(512) COLLATE "default"'))
        conn.execute(s.schema_version.delete())
        conn.execute(s.schema_version.insert().values(version=1, applied_at=dt.datetime.now(dt.timezone.utc)))
        conn.execute(s.relations.insert().values(source_ref="component:default/a", type="dependsOn",
                                                 target_ref="component:default/b"))
        assert collations(conn) == [None] * len(ref_columns)
    assert ensure_schema(engine) == s.SCHEMA_VERSION
    with engine.connect() as conn:
        assert collations(conn) == ["C"] * len(ref_columns)
        assert conn.execute(sa.select(s.relations.c.target_ref)).scalars().all() == ["component:default/b"]
        assert sorted(conn.execute(sa.select(s.schema_version.c.version)).scalars()) == [1, s.SCHEMA_VERSION]
    engine.dispose()


def test_older_catalog_gets_the_delivery_event_indexes_its_version_lacks(catalog_url):
    """Schema v3 indexes the delivery event tables' `collected_at` (what changed since the delivery
    metrics were last computed), v4 the pull requests' and deployments' (repository, day) (a new
    day's link look-back) and the open pull requests' partial index; a v2 database gets them all,
    a v3 one v4's, their rows kept."""
    from catalog_pipelines.model import delivery_events as ev
    from catalog_pipelines.storage.db import create_catalog_engine, ensure_schema

    engine = create_catalog_engine(catalog_url)
    ensure_schema(engine)
    collected = [f"ix_{t.name}_collected" for t in s.delivery_event_tables.values()]
    by_repository = [f"ix_{s.delivery_event_tables[k].name}_repository_day" for k in (ev.PULL_REQUESTS, ev.DEPLOYMENTS)]
    by_repository.append(f"ix_{s.delivery_event_tables[ev.PULL_REQUESTS].name}_open")
    for version, dropped in ((2, collected + by_repository), (3, by_repository)):
        with engine.begin() as conn:
            conn.execute(s.delivery_event_tables[ev.DEPLOYMENTS].insert().values(
                source="github", event_key=f"k{version}", day=dt.date(2025, 6, 1), repository="acme/api",
                collected_at=dt.datetime(2025, 6, 2, tzinfo=dt.timezone.utc)))
            for name in dropped:
                conn.execute(sa.text(f"DROP INDEX {name}"))
            conn.execute(s.schema_version.delete())
            conn.execute(s.schema_version.insert().values(version=version, applied_at=dt.datetime.now(dt.timezone.utc)))
        assert ensure_schema(engine) == s.SCHEMA_VERSION == 4
        inspector = sa.inspect(engine)
        for t in s.delivery_event_tables.values():
            names = {i["name"] for i in inspector.get_indexes(t.name)}
            assert f"ix_{t.name}_collected" in names
            assert (f"ix_{t.name}_repository_day" in names) == (f"ix_{t.name}_repository_day" in by_repository)
            assert (f"ix_{t.name}_open" in names) == (t.name == s.delivery_event_tables[ev.PULL_REQUESTS].name)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(s.delivery_event_tables[ev.DEPLOYMENTS])).scalar() == (
                1 if version == 2 else 2)
    engine.dispose()


def test_large_chunks_take_the_bulk_path_and_stay_idempotent(db, catalog_url, monkeypatch):
    """Chunks above the COPY threshold go through COPY + INSERT … ON CONFLICT on PostgreSQL; the
    results (rows, relations, marks, re-runs) are the same as the row-by-row path."""
    from catalog_pipelines.storage import sql

    store, ledger = db
    used = []
    real = sql._copy_capable
    monkeypatch.setattr(sql, "_copy_capable", lambda conn: used.append(real(conn)) or used[-1])
    ents = [component(f"bulk-{i}", depends=[f"component:bulk-{(i + 1) % 1200}"]) for i in range(1200)]
    first = write(store, ledger, "p", ents, seq=0, done=False)
    again = write(store, ledger, "p", ents, seq=0, done=False)
    assert (first.added, again.unchanged) == (1200, 1200)
    assert store.count("p") == 1200
    assert ("dependsOn", "component:default/bulk-1") in store.relations_of("component:default/bulk-0")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.relations)).scalar_one() == 2400
        assert conn.execute(sa.select(sa.func.count()).select_from(s.ingestion_mark_entities)).scalar_one() == 1200
    assert any(used) == catalog_url.startswith("postgresql")


def test_entities_frame_without_bodies_matches_the_full_frame(catalog_url):
    from catalog_pipelines.storage.frames import entities_frame
    from tests.helpers import seed_catalog

    seed_catalog(catalog_url, [
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "a", "namespace": "ns1"},
         "spec": {"type": "service", "lifecycle": "production", "owner": "team-x", "system": "sys"}},
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "team-x"},
         "spec": {"type": "team", "children": []}},
        {"apiVersion": "backstage.io/v1alpha1", "kind": "API", "metadata": {"name": "b"},
         "spec": {"type": "openapi", "lifecycle": "beta", "owner": "user:default/bob", "definition": "x"}},
    ])
    engine = get_engine(catalog_url)
    full = entities_frame(engine).drop(columns=["entity"])
    slim = entities_frame(engine, with_body=False)
    assert slim.equals(full), (slim, full)
    assert slim.loc[slim["ref"] == "component:ns1/a", "owner"].item() == "group:ns1/team-x"


def test_an_areas_tables_are_replaced_together_or_not_at_all(catalog_url):
    import pandas as pd

    from catalog_pipelines.model.insight_tables import InsightTable
    from catalog_pipelines.storage.insights import read_frame, write_frames

    report, trend = InsightTable("demo", "report"), InsightTable("demo", "trend")
    engine = get_engine(catalog_url)
    write_frames(engine, {report: pd.DataFrame({"v": [1, 2]}), trend: pd.DataFrame({"t": [1]})})
    # The second table cannot be stored (a column of dicts): the first one's new rows roll back too.
    with pytest.raises(Exception):
        write_frames(engine, {report: pd.DataFrame({"v": [3]}),
                              trend: pd.DataFrame({"t": [{"not": "storable"}]})}, append={trend})
    assert read_frame(engine, report)["v"].tolist() == [1, 2]
    assert write_frames(engine, {report: pd.DataFrame({"v": [3]}), trend: pd.DataFrame({"t": [2]})},
                        append={trend}) == {"report": 1, "trend": 1}
    assert read_frame(engine, report)["v"].tolist() == [3]
    assert read_frame(engine, trend)["t"].tolist() == [1, 2]


def test_large_insight_frames_round_trip_every_value_through_the_bulk_path(catalog_url):
    """Frames above the COPY threshold (COPY on PostgreSQL) store exactly what the row INSERTs
    stored: NaN and None as NULL, text with tabs, newlines and backslashes, booleans, floats,
    integers and UTC times, replaced and appended in one transaction."""
    import datetime as dt

    import pandas as pd

    from catalog_pipelines.model.insight_tables import InsightTable
    from catalog_pipelines.storage.insights import read_frame, write_frames
    from catalog_pipelines.storage.sql import COPY_THRESHOLD

    n = COPY_THRESHOLD * 2 + 7
    at = dt.datetime(2026, 12, 7, 8, 30, tzinfo=dt.timezone.utc)
    frame = pd.DataFrame({
        "ref": [f"component:default/c{i}" for i in range(n)],
        "text": [("tab\there", "new\nline\r", "back\\slash", None, "plain")[i % 5] for i in range(n)],
        "score": [float("nan") if i % 7 == 0 else i / 3 for i in range(n)],
        "count": list(range(n)),
        "passed": [i % 2 == 0 for i in range(n)],
        "at": [at + dt.timedelta(seconds=i) for i in range(n)],
    })
    report, history = InsightTable("demo", "bulk_report"), InsightTable("demo", "bulk_history")
    engine = get_engine(catalog_url)
    write_frames(engine, {report: frame, history: frame.head(3)})
    assert write_frames(engine, {report: frame, history: frame}, append={history}) == {"bulk_report": n, "bulk_history": n}

    stored = read_frame(engine, report)
    assert stored["ref"].tolist() == frame["ref"].tolist()
    assert stored["text"].tolist() == frame["text"].tolist()
    assert stored["score"].isna().tolist() == frame["score"].isna().tolist()
    assert stored["score"].dropna().tolist() == frame["score"].dropna().tolist()
    assert stored["count"].tolist() == frame["count"].tolist()
    assert [bool(v) for v in stored["passed"]] == frame["passed"].tolist()
    assert pd.to_datetime(stored["at"], utc=True).tolist() == frame["at"].tolist()
    assert len(read_frame(engine, history)) == n + 3


def test_copy_text_escapes_only_values_that_need_it():
    from catalog_pipelines.storage.sql import copy_text

    assert copy_text([("a", "b"), ("c", "d")]) == b"a\tb\nc\td\n"
    assert copy_text([("tab\there", "back\\slash"), ("new\nline", "cr\r")]) == (
        b"tab\\there\tback\\\\slash\nnew\\nline\tcr\\r\n"
    )
    assert copy_text([]) == b""


def test_rows_inserted_in_flight_arrive_exactly_including_copy_special_characters(catalog_url):
    """insert_in_flight (COPY left open on PostgreSQL) stores every value as given, escapes and all,
    once its in-flight stack is closed."""
    import contextlib

    from catalog_pipelines.storage.sql import COPY_THRESHOLD, insert_in_flight

    engine = get_engine(catalog_url)
    odd = ["tab\tin", "back\\slash", "new\nline", "cr\rhere", "ünïcødé", "\\N"]
    rows = [(f"component:default/s{i}", "dependsOn", f"component:default/{odd[i % len(odd)]}-{i}")
            for i in range(COPY_THRESHOLD + 100)]
    with engine.begin() as conn, contextlib.ExitStack() as in_flight:
        insert_in_flight(conn, s.relations, ("source_ref", "type", "target_ref"), rows, in_flight)
        in_flight.close()
        stored = set(conn.execute(sa.select(s.relations.c.source_ref, s.relations.c.type, s.relations.c.target_ref)).tuples())
    assert stored == set(rows)
