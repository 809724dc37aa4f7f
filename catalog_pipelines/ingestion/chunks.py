"""One chunk of a cycle: collect pages from the provider, validate, write atomically with the mark.

This is the body of the chunk asset, kept free of Dagster so it is tested with plain pytest and
reused by every door (asset, CLI, benchmarks).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity, Rejection
from catalog_pipelines.model.refs import canonical_ref
from catalog_pipelines.providers.base import EntityProvider, ProviderError, WalkInDoubt
from catalog_pipelines.storage.catalog import CatalogStore, ChunkResult, conflict_message, dumps
from catalog_pipelines.storage.ledger import Ingestion, Ledger


class ChunkOrderError(RuntimeError):
    """A chunk that cannot run without skipping or losing ledger state: refused, with the reason.

    Raised before anything is read from the source or written. The chunk asset turns it into a
    `dg.Failure` that is not retried, shows the reason in the UI and leaves the provider's backoff
    alone (a refused manual re-run is not a source failure). See chunk_start_cursor for the rules.
    """


class WalkRestarted(ProviderError):
    """The walk was in doubt (`WalkInDoubt`): its cycle was closed without a sweep and a new cycle
    opened that starts from the source's first page. Raised so the run fails visibly and the
    provider backs off before walking again; nothing of the chunk was written."""


# Pages in a row that bring nothing and do not end the walk before the walk is in doubt: a source
# stuck handing out empty pages would otherwise keep a chunk (and its run) going for ever.
MAX_EMPTY_PAGES = 5


@dataclass
class CollectedChunk:
    raw: list[RawEntity]
    rejections: list[Rejection]
    cursor: Any
    done: bool
    total: int | None
    pages: int
    doubt: str | None = None  # the last page's: the walk ended, but the source changed meanwhile


@dataclass
class ChunkOutcome:
    provider: str
    ingestion_id: int
    cycle: int
    sequence: int
    cursor_in: Any
    cursor: Any
    done: bool
    result: ChunkResult
    pages: int
    source_total: int | None
    seconds: float

    def metadata(self) -> dict[str, Any]:
        r = self.result
        return {
            "cycle": self.cycle,
            "sequence": self.sequence,
            "added": r.added,
            "changed": r.changed,
            "unchanged": r.unchanged,
            "rejected": r.rejected,
            "relations_written": r.relations_written,
            "pages": self.pages,
            "done": self.done,
            "cursor": self.cursor,
            "source_total": self.source_total,
            "duration_s": round(self.seconds, 3),
            # Two locations declaring one entity: who kept it, who was refused (the first 20).
            "conflicts": [x.message for x in r.rejections if x.rule == "conflict"][:20],
        }


def collect_chunk(provider: EntityProvider, cursor: Any, chunk_size: int) -> CollectedChunk:
    """Pull pages until `chunk_size` entities are collected or the source is done.

    A chunk always ends on a page boundary, because only there does the source give a cursor.
    Raises `WalkInDoubt` when the source hands back a cursor it gave before in this chunk (a loop
    of any length) or serves MAX_EMPTY_PAGES empty pages in a row without ending.
    """
    raw: list[RawEntity] = []
    rejections: list[Rejection] = []
    done, total, pages, empty = False, None, 0, 0
    cursors = {_cursor_key(cursor)}
    with provider.around():
        while True:
            page = provider.next(cursor)
            pages += 1
            raw.extend(page.entities)
            rejections.extend(page.rejections)
            cursor, done = page.cursor, page.done
            total = page.total if page.total is not None else total
            if done or len(raw) >= chunk_size:
                break
            key = _cursor_key(cursor)
            if key in cursors:
                raise WalkInDoubt(f"{provider.name}: page {pages} of the chunk handed back a cursor the source gave "
                                  f"earlier in this chunk (a cursor loop): {key[:120]}")
            cursors.add(key)
            empty = empty + 1 if not page.entities and not page.rejections else 0
            if empty >= MAX_EMPTY_PAGES:
                raise WalkInDoubt(f"{provider.name}: {empty} empty pages in a row without reaching the end of the source")
    return CollectedChunk(raw, rejections, cursor, done, total, pages, page.doubt if done else None)


def _cursor_key(cursor: Any) -> str:
    return orjson.dumps(cursor, option=orjson.OPT_SORT_KEYS).decode()


def check_walk(ledger: Ledger, ingestion: Ingestion, sequence: int, collected: CollectedChunk, chunk_size: int) -> None:
    """Walk-level checks across the cycle's chunks (each chunk may run in another process).

    A cursor this chunk ends on must not be one an earlier chunk of the walk ended on (a loop that
    spans chunks), and the items the walk served must stay within what the source's total allows.
    """
    if not collected.done and ledger.cursor_repeats(ingestion.id, sequence, dumps(collected.cursor)):
        raise WalkInDoubt(f"{ingestion.provider}: chunk {sequence} ended on a cursor an earlier chunk of this walk "
                          "ended on (a cursor loop)")
    served, reported = ledger.walk_served(ingestion.id, before=sequence)
    served += len(collected.raw) + len(collected.rejections)
    total = max(t for t in (reported, collected.total, 0) if t is not None)
    if collected.total is not None or reported is not None:
        bound = 2 * total + chunk_size
        if served > bound:
            raise WalkInDoubt(f"{ingestion.provider}: the walk has served {served} items although the source reports "
                              f"{total}: it is going round in circles")


# Bump when validation or relation rules change: stored fingerprints then no longer match, so the
# next cycle re-validates every entity instead of trusting what an older model accepted.
MODEL_VERSION = "1"


def fingerprint(item: RawEntity) -> tuple[str | None, str | None]:
    """(canonical ref, content hash) of a raw document, without validating it.

    The hash covers the document exactly as the source gave it (keys sorted) plus MODEL_VERSION.
    A document whose fingerprint matches the stored one is unchanged and skips validation and
    relation derivation: that is what makes an unchanged cycle cheap.
    """
    entity = item.entity
    if not isinstance(entity, dict):
        return None, None
    kind, meta = entity.get("kind"), entity.get("metadata")
    if not isinstance(kind, str) or not isinstance(meta, dict):
        return None, None
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None, None
    try:
        body = orjson.dumps(entity, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None, None
    digest = hashlib.sha256(MODEL_VERSION.encode() + body).hexdigest()
    return canonical_ref(kind, namespace, name), digest


@dataclass
class ProcessedChunk:
    accepted: list[ProcessedEntity]  # new or changed: validated, to write
    unchanged: list[str]  # refs whose stored fingerprint matches: only their mark is written
    rejected: list[Rejection]


def process_chunk(raw: list[RawEntity], stored: dict[str, tuple[str, str, str]] | None = None,
                  provider: str | None = None) -> ProcessedChunk:
    """Validate the documents that changed; a duplicate ref within the chunk keeps its first occurrence.

    `stored` maps ref → (fingerprint, owning provider, location) for the refs already in the catalog.
    """
    out = ProcessedChunk([], [], [])
    out.accepted.extend(iter_processed(raw, stored, provider, out))
    return out


def iter_processed(
    raw: list[RawEntity],
    stored: dict[str, tuple[str, str]] | None,
    provider: str | None,
    out: ProcessedChunk,
    prints: list[tuple[str | None, str | None]] | None = None,
) -> Iterator[ProcessedEntity]:
    """`process_chunk`, lazily: yields each accepted entity as soon as it is validated, and appends
    unchanged refs and rejections to `out` as it goes (complete once the iterator is exhausted).

    Lazy so that the chunk is stored batch by batch as it is validated. `prints` are
    the documents' fingerprints if the caller already computed them (one per document of `raw`).
    """
    stored = stored or {}
    first_seen: dict[str, str] = {}

    def duplicate(ref: str, item: RawEntity) -> bool:
        if ref not in first_seen:
            first_seen[ref] = item.location
            return False
        first = first_seen[ref]
        # The same location serving a document twice (a source that repeats an item) is a duplicate;
        # two locations declaring one ref are a conflict, and the first keeps it (as across chunks).
        rule, message = (("duplicate", f"duplicate entity {ref} in the same chunk (first at {first})") if first == item.location
                         else ("conflict", conflict_message(ref, first, item.location)))
        out.rejected.append(
            Rejection(location=item.location, doc_index=item.doc_index, ref=ref, field="metadata.name",
                      rule=rule, value=ref, message=message)
        )
        return True

    for item, (ref, digest) in zip(raw, prints if prints is not None else map(fingerprint, raw)):
        if ref is not None and provider is not None and stored.get(ref) == (digest, provider, item.location):
            if not duplicate(ref, item):
                out.unchanged.append(ref)
            continue
        outcome = process_entity(item)
        if isinstance(outcome, Rejection):
            out.rejected.append(outcome)
            continue
        if duplicate(outcome.ref, item):
            continue
        if digest is not None:
            outcome.content_hash = digest
        yield outcome


def chunk_start_cursor(ledger: Ledger, ingestion: Ingestion, sequence: int) -> Any:
    """Where chunk `sequence` starts: after the previous chunk's mark.

    A chunk may run when it is the cycle's next chunk (no mark yet: a first run, or a Dagster retry
    of a run that did not commit) or when it is the cycle's last written chunk and the sweep has
    not run (an idempotent re-run: it re-reads its page from the same cursor and replaces only its
    own mark). Anything else would lose ledger state, so it is refused with ChunkOrderError:
    - a chunk whose later chunks are written (their marks continue from its cursor);
    - any chunk of a cycle whose sweep ran (the cycle is finished; a new cycle re-ingests);
    - a chunk whose previous chunk is missing, or after the chunk that ended the cycle.
    """
    where = f"{ingestion.provider}: chunk {sequence} of cycle {ingestion.cycle}"
    if ingestion.sweep_outcome is not None:
        raise ChunkOrderError(
            f"{where} refused: the cycle is finished (its sweep ran: {ingestion.sweep_outcome}) and its chunk "
            "marks are kept as written; start a new cycle to re-ingest (admin start or trigger)"
        )
    last = ledger.last_mark(ingestion.id)
    if last is not None and last.sequence > sequence and ledger.mark(ingestion.id, sequence) is not None:
        raise ChunkOrderError(
            f"{where} refused: chunks {sequence + 1}..{last.sequence} continue from it and re-running it would "
            f"discard their marks; only the cycle's last chunk ({last.sequence}) can be re-run"
        )
    if sequence == 0:
        return None
    previous = ledger.mark(ingestion.id, sequence - 1)
    if previous is None:
        raise ChunkOrderError(f"{where} refused: it needs chunk {sequence - 1} first")
    if previous.done:
        raise ChunkOrderError(f"{where} refused: the cycle already ended at chunk {sequence - 1}; nothing to ingest")
    return previous.cursor


# Objects allocated between two young-generation collections of the cyclic garbage collector
# while a chunk runs (CPython's default is 700). A chunk allocates millions of small objects
# (documents, relations, rows) that reference counting frees; none form cycles on the hot path.
# With the default, the collector re-scans the chunk's 20,000 live documents hundreds of times:
# measured at 200k entities, 9 of 19 s of CPU (source, fingerprints and validation) went to it.
CHUNK_GC_THRESHOLD = 100_000


@contextlib.contextmanager
def fewer_gc_passes(threshold: int = CHUNK_GC_THRESHOLD) -> Iterator[None]:
    """Run the cyclic collector less often inside the block; the previous thresholds come back after.

    Not disabled: garbage cycles (an exception's traceback, say) are still collected, just in
    bigger batches, so memory stays bounded.
    """
    previous = gc.get_threshold()
    gc.set_threshold(max(threshold, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


class Prefetch:
    """Reads the next chunk's pages on a worker thread while this chunk is written.

    For a run of several chunks (`chunk_runs.run_chunks`) whose chunks are mostly unchanged: writing
    such a chunk is mostly waiting for the database (fingerprint lookup, mark upserts), which
    releases the GIL, so the source's next pages are read meanwhile instead of after. Only the
    source is read ahead; the chunk still starts only once `chunk_start_cursor` allows it, and
    uses the pages read ahead only if they start at the cursor it resumes from (otherwise, and for
    whatever a failed run read ahead, they are dropped). The provider is used by one thread at a
    time: the main thread has finished collecting when the worker starts, and waits for the worker
    before it collects again.
    """

    def __init__(self, provider: EntityProvider, chunk_size: int):
        from concurrent.futures import ThreadPoolExecutor

        self.provider, self.chunk_size = provider, chunk_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-prefetch")
        self._ahead: tuple[Any, Any] | None = None  # (cursor it starts at, future of its CollectedChunk)

    def start(self, cursor: Any) -> None:
        self.drop()
        self._ahead = (cursor, self._pool.submit(collect_chunk, self.provider, cursor, self.chunk_size))

    def take(self, cursor: Any) -> CollectedChunk | None:
        """The chunk read ahead from `cursor` (its source errors raised here), or None."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if ahead[0] != cursor:
            _settle(ahead[1])
            return None
        return ahead[1].result()

    def drop(self) -> None:
        if self._ahead is not None:
            _settle(self._ahead[1])
            self._ahead = None

    def close(self) -> None:
        self.drop()
        self._pool.shutdown(wait=True)


def _settle(future: Any) -> None:
    """Wait for a read-ahead nobody will use (the provider must be idle before it is used again)."""
    try:
        future.result()
    except Exception:  # noqa: BLE001 - a read-ahead that is not used cannot fail the chunk
        pass


# A chunk with at least this share of unchanged documents lets the next one be read ahead
# (`Prefetch`): its write is mostly the database's work. Validating changed documents holds the GIL,
# and a second thread reading the source then only takes turns with it (measured slower before).
PREFETCH_WHEN_UNCHANGED = 0.5


@fewer_gc_passes()
def run_chunk(
    store: CatalogStore,
    ledger: Ledger,
    provider: EntityProvider,
    ingestion: Ingestion,
    sequence: int,
    chunk_size: int,
    *,
    fail_before_commit: bool = False,
    prefetch: Prefetch | None = None,
    read_ahead: bool = False,
) -> ChunkOutcome:
    """Collect, validate and write chunk `sequence` (one transaction with its mark).

    `prefetch` (a run of several chunks): pages it read ahead from this chunk's start cursor are
    used instead of reading them again; with `read_ahead`, the next chunk's pages are read on its
    thread while this chunk is written.
    """
    started = time.perf_counter()
    cursor_in = chunk_start_cursor(ledger, ingestion, sequence)
    try:
        collected = prefetch.take(cursor_in) if prefetch is not None else None
        if collected is None:
            collected = collect_chunk(provider, cursor_in, chunk_size)
        check_walk(ledger, ingestion, sequence, collected, chunk_size)
    except WalkInDoubt as doubt:
        from catalog_pipelines.ingestion.cycle import restart_walk

        fresh = restart_walk(ledger, ingestion, str(doubt))
        raise WalkRestarted(f"{doubt}; cycle {ingestion.cycle} closed without a sweep, cycle {fresh.cycle} "
                            "restarts the walk from the first page") from doubt
    if prefetch is not None and read_ahead and not collected.done:
        prefetch.start(collected.cursor)
    prints = [fingerprint(item) for item in collected.raw]
    # Source rejections first, then validation's, as the lazy validation below appends them.
    chunk = ProcessedChunk([], [], list(collected.rejections))
    result = store.write_chunk(
        provider=ingestion.provider,
        ingestion_id=ingestion.id,
        sequence=sequence,
        cursor_in=cursor_in,
        # A walk's last mark has no cursor to resume from; it keeps the walk's doubt for the sweep.
        cursor={"doubt": collected.doubt} if collected.done and collected.doubt else collected.cursor,
        done=collected.done,
        # Validated lazily against the fingerprints stored for the chunk's refs, which
        # write_chunk reads inside its transaction.
        entities=lambda stored: iter_processed(collected.raw, stored, ingestion.provider, chunk, prints),
        refs=[ref for ref, _ in prints if ref is not None],
        unchanged_refs=chunk.unchanged,
        rejections=chunk.rejected,
        source_total=collected.total,
        started=started,
        fail_before_commit=fail_before_commit,
    )
    return ChunkOutcome(
        provider=ingestion.provider,
        ingestion_id=ingestion.id,
        cycle=ingestion.cycle,
        sequence=sequence,
        cursor_in=cursor_in,
        # A walk's last mark has no cursor to resume from; it keeps the walk's doubt for the sweep.
        cursor={"doubt": collected.doubt} if collected.done and collected.doubt else collected.cursor,
        done=collected.done,
        result=result,
        pages=collected.pages,
        source_total=collected.total,
        seconds=time.perf_counter() - started,
    )
