"""The body of one chunk run: several chunks of a cycle, one after another (`chunks_per_run`).

Apart from `chunks.py` (one chunk) and `cycle.py` (where a cycle stands), which it uses both.
"""

from __future__ import annotations

from collections.abc import Iterator

from catalog_pipelines.ingestion.chunks import PREFETCH_WHEN_UNCHANGED, ChunkOrderError, ChunkOutcome, Prefetch, run_chunk
from catalog_pipelines.ingestion.config import IngestionOptions
from catalog_pipelines.ingestion.cycle import position, record_chunk_success
from catalog_pipelines.providers.base import EntityProvider
from catalog_pipelines.storage.catalog import CatalogStore, utcnow
from catalog_pipelines.storage.ledger import Ingestion, Ledger


def run_chunks(store: CatalogStore, ledger: Ledger, provider: EntityProvider, name: str, sequences: list[int],
               options: IngestionOptions, *, retrying: bool = False) -> Iterator[ChunkOutcome]:
    """Write chunks `sequences` (consecutive) of `name`'s open cycle one after another: the body of
    one chunk run, which may cover several chunk partitions (`chunks_per_run`).

    Each chunk is `chunks.run_chunk`: its own transaction with its own mark, refused
    (`ChunkOrderError`) where it would lose ledger state, so a crash in chunk k leaves chunks
    before k written and nothing of k. Yields each chunk's outcome once it is committed.

    A run of several chunks stops early, between chunks, where a run per chunk would not have been
    requested: the source ended, an operator paused, halted or canceled the provider, or the
    sensor's burst (`burst_length` since `burst_started_at`) is used up; the next tick decides what
    follows, as after any run. `retrying` (the step's Dagster retry): chunks of `sequences` that an
    earlier attempt of the same run committed are skipped, not refused.
    """
    ingestion = ledger.open_ingestion(name)
    if ingestion is None:
        raise ChunkOrderError(f"provider {name!r} has no open cycle: start one with `catalog-pipelines ingest` or the sensor")
    if retrying and len(sequences) > 1:
        written = position(ledger, ingestion).next_sequence
        sequences = [s for s in sequences if s >= written]
    prefetch = Prefetch(provider, options.chunk_size) if len(sequences) > 1 else None
    read_ahead = False  # the first chunk's share of unchanged documents is not known yet
    try:
        for index, sequence in enumerate(sequences):
            if index and not _may_continue(ledger, ingestion, options):
                return
            last = index == len(sequences) - 1
            outcome = run_chunk(store, ledger, provider, ingestion, sequence, options.chunk_size, prefetch=prefetch,
                                read_ahead=read_ahead and not last)
            record_chunk_success(ledger, ingestion)
            r = outcome.result
            read_ahead = r.unchanged >= PREFETCH_WHEN_UNCHANGED * max(r.accepted + r.rejected, 1)
            yield outcome
            if outcome.done:
                return
    finally:
        if prefetch is not None:
            prefetch.close()


def _may_continue(ledger: Ledger, ingestion: Ingestion, options: IngestionOptions) -> bool:
    """Whether a run of several chunks goes on to its next chunk (see run_chunks)."""
    from catalog_pipelines.ingestion.engine import BURSTING, CANCEL

    controls = ledger.controls(ingestion.provider)
    now = utcnow()
    if controls["paused"] or (controls["halted_until"] is not None and now < controls["halted_until"]):
        return False
    current = ledger.get(ingestion.id)
    if current is None or not current.is_open or current.sweep_outcome is not None or current.next_action == CANCEL:
        return False
    burst = current.burst_started_at
    return not (current.status == BURSTING and burst is not None and now - burst >= options.burst_length)
