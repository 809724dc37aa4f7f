"""Chunk processing: unchanged documents skip validation; changes and model upgrades do not."""

from __future__ import annotations

import pytest

from catalog_pipelines.ingestion import chunks
from catalog_pipelines.ingestion.chunks import run_chunk
from catalog_pipelines.providers.synthetic import SyntheticOrgProvider
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger


@pytest.fixture
def counting(monkeypatch):
    calls = {"n": 0}
    real = chunks.process_entity

    def counted(item, **kw):
        calls["n"] += 1
        return real(item, **kw)

    monkeypatch.setattr(chunks, "process_entity", counted)
    return calls


def one_cycle(store, ledger, provider):
    ingestion = ledger.start_cycle(provider.name)
    outcome = run_chunk(store, ledger, provider, ingestion, 0, 10_000)
    assert outcome.done
    ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    return outcome.result


def test_unchanged_documents_skip_validation_but_are_marked_seen(catalog_url, counting):
    engine = get_engine(catalog_url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    first = one_cycle(store, ledger, SyntheticOrgProvider("org", 300, seed=5))
    assert first.added == 300 and counting["n"] == 300
    counting["n"] = 0
    second = one_cycle(store, ledger, SyntheticOrgProvider("org", 300, seed=5))
    assert (second.added, second.changed, second.unchanged) == (0, 0, 300) and counting["n"] == 0
    # Marks were still written, so the sweep sees every entity of this cycle.
    ingestion = ledger.history("org", 1)[0]
    sweep = store.sweep(provider="org", ingestion_id=ingestion.id, cycle=ingestion.cycle,
                        reject_removals_above_percentage=None, reject_empty_source_collections=False)
    assert sweep.stale == 0


def test_changed_documents_and_a_model_upgrade_are_validated_again(catalog_url, counting, monkeypatch):
    engine = get_engine(catalog_url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    one_cycle(store, ledger, SyntheticOrgProvider("org", 300, seed=5))
    counting["n"] = 0
    changed = one_cycle(store, ledger, SyntheticOrgProvider("org", 300, seed=5, generation=1, change_fraction=0.1))
    assert changed.changed == counting["n"] > 0
    counting["n"] = 0
    monkeypatch.setattr(chunks, "MODEL_VERSION", "upgraded")
    upgraded = one_cycle(store, ledger, SyntheticOrgProvider("org", 300, seed=5, generation=1, change_fraction=0.1))
    # Same documents, new rules: every one re-validated; none rewritten twice in a row after that.
    assert counting["n"] == 300 and upgraded.changed == 300


def test_chunk_runs_the_cyclic_collector_less_often_and_restores_its_thresholds():
    import gc

    from catalog_pipelines.ingestion.chunks import CHUNK_GC_THRESHOLD, fewer_gc_passes

    before = gc.get_threshold()
    with fewer_gc_passes():
        assert gc.get_threshold() == (max(CHUNK_GC_THRESHOLD, before[0]), *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_gc_passes():
        raise RuntimeError("chunk failed")
    assert gc.get_threshold() == before


def test_run_chunk_runs_under_the_raised_gc_threshold(monkeypatch, catalog_url):
    import gc

    from catalog_pipelines.ingestion.chunks import CHUNK_GC_THRESHOLD

    seen = []
    real = chunks.collect_chunk
    monkeypatch.setattr(chunks, "collect_chunk", lambda *a, **k: seen.append(gc.get_threshold()[0]) or real(*a, **k))
    engine = get_engine(catalog_url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    ingestion = ledger.start_cycle("p")
    before = gc.get_threshold()
    run_chunk(store, ledger, SyntheticOrgProvider("p", 60), ingestion, 0, 100)
    assert seen and seen[0] >= CHUNK_GC_THRESHOLD
    assert gc.get_threshold() == before


def test_a_read_ahead_is_used_only_from_the_cursor_the_chunk_resumes_at_and_its_errors_are_the_chunks():
    from catalog_pipelines.ingestion.chunks import Prefetch, collect_chunk
    from catalog_pipelines.providers.base import ProviderError

    provider = SyntheticOrgProvider("org", 300, seed=5)
    first = collect_chunk(provider, None, 100)
    ahead = Prefetch(provider, 100)
    try:
        ahead.start(first.cursor)
        assert ahead.take({"elsewhere": 1}) is None  # another cursor: dropped, the chunk reads itself
        ahead.start(first.cursor)
        taken = ahead.take(first.cursor)
        assert [r.entity for r in taken.raw] == [r.entity for r in collect_chunk(provider, first.cursor, 100).raw]

        class Failing:
            name = "org"

            def around(self):
                return provider.around()

            def next(self, cursor):
                raise ProviderError("HTTP 503 from the source")

        failing = Prefetch(Failing(), 100)
        failing.start(first.cursor)
        with pytest.raises(ProviderError, match="503"):
            failing.take(first.cursor)
        failing.close()
    finally:
        ahead.close()
