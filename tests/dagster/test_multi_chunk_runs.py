"""Runs that write several chunk partitions (`chunks_per_run`), through the real sensor code and
real Dagster runs: each chunk is its own transaction, mark and partition materialisation, and every
guarantee of a run per chunk holds (crash, retry, backoff, pause between chunks)."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.providers.synthetic import SyntheticOrg
from tests.cycle_harness import Harness


def synthetic(**options) -> ProviderConfig:
    opts = dict(chunk_size=200, chunks_per_run=5, burst_length=dt.timedelta(minutes=2),
                burst_interval=dt.timedelta(minutes=1), rest_length=dt.timedelta(hours=1), retry_max=0,
                retry_delay_seconds=0)
    opts.update(options)
    return ProviderConfig(name="org", type="synthetic", params={"size": 600, "seed": 7}, options=IngestionOptions(**opts))


@pytest.fixture
def harness(dagster_instance, catalog_url):
    from catalog_pipelines.storage.catalog import set_clock

    yield Harness(synthetic(), catalog_url, dagster_instance)
    set_clock(None)


def expected_refs() -> set[str]:
    from catalog_pipelines.model.refs import entity_ref_of

    return {entity_ref_of(e) for e in SyntheticOrg(600, seed=7).iter_entities()}


def marks_of(harness) -> list[tuple[int, object, bool]]:
    ledger = harness.catalog.ledger()
    return [(m.sequence, m.cursor, m.done) for m in ledger.marks(ledger.open_ingestion("org").id)]


def materialised(run) -> list[tuple[str, int]]:
    return [(e.materialization.partition, e.materialization.metadata["sequence"].value)
            for e in run.get_asset_materialization_events()]


def test_one_run_writes_several_chunks_each_recorded_as_its_own_partition(harness):
    assert harness.step() == "chunk"
    (run,) = harness.runs
    assert materialised(run) == [("00000", 0), ("00001", 1), ("00002", 2)]  # the source ended at chunk 2
    assert run.dagster_run.tags["catalog/chunk"] == "c1-00000..00004"
    assert [m[0] for m in marks_of(harness)] == [0, 1, 2]
    assert harness.step() == "sweep"
    assert harness.catalog.store().refs("org") == expected_refs()


def test_a_crash_in_a_later_chunk_keeps_the_chunks_before_it_and_the_next_run_resumes_there(harness, monkeypatch):
    from catalog_pipelines.storage.catalog import CatalogStore

    original = CatalogStore.write_chunk
    monkeypatch.setattr(CatalogStore, "write_chunk",
                        lambda self, **kw: original(self, **{**kw, "fail_before_commit": kw["sequence"] == 1}))
    assert harness.step() == "failed"
    assert materialised(harness.runs[-1]) == [("00000", 0)]
    assert [m[0] for m in marks_of(harness)] == [0]
    assert harness.catalog.store().count("org") == 200
    ingestion = harness.catalog.ledger().open_ingestion("org")
    assert ingestion.attempts == 1 and ingestion.next_action == "backoff"  # the failure sensor's backoff
    monkeypatch.setattr(CatalogStore, "write_chunk", original)
    harness.advance(dt.timedelta(minutes=1))
    assert harness.step() == "chunk"
    assert materialised(harness.runs[-1]) == [("00001", 1), ("00002", 2)]
    assert harness.run_until_resting()[-1] == "sweep"
    assert harness.catalog.store().refs("org") == expected_refs()


def test_a_dagster_retry_of_the_run_skips_the_chunks_its_first_attempt_committed(harness, monkeypatch):
    from catalog_pipelines.storage.catalog import CatalogStore

    harness.reconfigure(synthetic(retry_max=1))
    original, calls = CatalogStore.write_chunk, []

    def fails_once(self, **kw):
        calls.append(kw["sequence"])
        return original(self, **{**kw, "fail_before_commit": calls == [0, 1]})

    monkeypatch.setattr(CatalogStore, "write_chunk", fails_once)
    assert harness.step() == "chunk"
    assert calls == [0, 1, 1, 2]
    assert [p for p, _ in materialised(harness.runs[-1])] == ["00000", "00001", "00002"]
    assert [m[0] for m in marks_of(harness)] == [0, 1, 2]
    assert harness.catalog.ledger().open_ingestion("org").attempts == 0


def test_a_pause_between_chunks_ends_the_run_after_the_chunk_it_was_writing(harness, monkeypatch):
    from catalog_pipelines.storage.catalog import CatalogStore

    original = CatalogStore.write_chunk

    def pause_during_first(self, **kw):
        harness.catalog.ledger().set_controls("org", paused=True, actor="user:default/ops")
        return original(self, **kw)

    monkeypatch.setattr(CatalogStore, "write_chunk", pause_during_first)
    assert harness.step() == "chunk"
    assert materialised(harness.runs[-1]) == [("00000", 0)]
    assert harness.step() == "wait" and "paused" in harness.skips[-1]
    monkeypatch.setattr(CatalogStore, "write_chunk", original)
    harness.catalog.ledger().set_controls("org", paused=False)
    assert harness.run_until_resting()[-1] == "sweep"
    assert [m[0] for m in marks_of(harness)] == [0, 1, 2]


def test_an_unchanged_cycle_reads_the_next_chunk_ahead_and_stores_the_same_catalog(harness, monkeypatch):
    import threading

    from catalog_pipelines.providers.synthetic import SyntheticOrgProvider

    assert harness.run_until_resting()[-1] == "sweep"
    original, readers = SyntheticOrgProvider.next, []

    def recording(self, cursor):
        readers.append(threading.current_thread().name.startswith("chunk-prefetch"))
        return original(self, cursor)

    monkeypatch.setattr(SyntheticOrgProvider, "next", recording)
    harness.advance(dt.timedelta(hours=1))
    assert harness.step() == "chunk"  # cycle 2, nothing changed: chunks 0-2 in one run
    assert [p for p, _ in materialised(harness.runs[-1])] == ["00000", "00001", "00002"]
    # Chunk 0 was read by the run itself; chunk 0 was unchanged, so chunks 1 and 2 were read ahead.
    assert readers[0] is False and any(readers[1:])
    marks = harness.catalog.ledger().marks(harness.catalog.ledger().open_ingestion("org").id)
    assert [(m.sequence, m.unchanged, m.added) for m in marks] == [(0, 200, 0), (1, 200, 0), (2, 200, 0)]
    assert harness.step() == "sweep"
    assert harness.catalog.store().refs("org") == expected_refs()
