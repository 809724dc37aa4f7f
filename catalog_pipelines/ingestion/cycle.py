"""Cycle bookkeeping shared by every door: where a cycle stands, and the end-of-cycle sweep."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from catalog_pipelines.ingestion.config import IngestionOptions
from catalog_pipelines.ingestion.engine import BURSTING, CANCELING, COMPLETE, INGEST, REST, RESTING
from catalog_pipelines.providers.base import ConfirmsRemovals, EntityProvider
from catalog_pipelines.storage.catalog import CatalogStore, SweepResult, utcnow
from catalog_pipelines.storage.ledger import Ingestion, Ledger

# Outcomes of a cycle whose walk could not be verified complete (no entity was removed).
WALK_RESTARTED = "walk-restarted"
SKIPPED_INCOMPLETE = "skipped-incomplete"
# Walks restarted in a row before the sweep stops restarting: it then removes only what the source
# confirms gone (a provider that can ask it), or nothing.
MAX_WALK_RESTARTS = 2


class SweepNotReady(RuntimeError):
    """The sweep was asked for before the cycle's last chunk was written."""


@dataclass
class CyclePosition:
    ingestion: Ingestion
    next_sequence: int  # the chunk to run next
    needs_sweep: bool  # every chunk is written; the sweep is due
    swept: bool  # the sweep ran; the cycle is resting


def position(ledger: Ledger, ingestion: Ingestion) -> CyclePosition:
    last = ledger.last_mark(ingestion.id)
    swept = ingestion.sweep_outcome is not None
    if last is None:
        return CyclePosition(ingestion, 0, False, swept)
    return CyclePosition(ingestion, last.sequence + 1, last.done and not swept, swept)


def begin_cycle(ledger: Ledger, provider: str, now: dt.datetime | None = None) -> CyclePosition:
    """Resume the provider's unfinished cycle, or close a swept one and start the next.

    Used by the one-shot door (`catalog-pipelines ingest`), which always wants a full pass now; the
    sensor-driven state machine decides on its own when resting ends.
    """
    now = now or utcnow()
    current = ledger.open_ingestion(provider)
    if current is not None:
        pos = position(ledger, current)
        if not pos.swept:
            return pos
        finish_rest(ledger, current, now)
    return position(ledger, ledger.start_cycle(provider))


def finish_rest(ledger: Ledger, ingestion: Ingestion, now: dt.datetime) -> None:
    ledger.close(ingestion.id, status="complete", next_action="nothing (done)", rest_completed_at=now)
    ledger.clear_marks(ingestion.provider, keep_cycles=3)


def restart_walk(ledger: Ledger, ingestion: Ingestion, reason: str, now: dt.datetime | None = None) -> Ingestion:
    """Give up a walk that cannot be trusted: close its cycle without a sweep and open the next one,
    which starts from the source's first page. Nothing is removed; what the abandoned walk wrote
    stays (it was live when read) and the new walk marks it again."""
    now = now or utcnow()
    ledger.close(ingestion.id, status=COMPLETE, next_action="nothing (walk restarted)", ingestion_completed_at=now,
                 rest_completed_at=now, sweep_outcome=WALK_RESTARTED, sweep_message=reason, removed=0)
    ledger.clear_marks(ingestion.provider, keep_cycles=3)
    fresh = ledger.start_cycle(ingestion.provider, status=BURSTING, next_action=INGEST, next_action_at=now)
    # Restarts in a row count as consecutive failures, so a source that never lets a walk finish
    # backs off further each time (1m, 5m, 30m, 3h) and is reported unhealthy past the schedule,
    # although each of its walks may write a few chunks successfully before going wrong.
    ledger.update(fresh.id, last_error=reason, attempts=walk_restarts_in_a_row(ledger, ingestion.provider))
    return fresh


def walk_restarts_in_a_row(ledger: Ledger, provider: str) -> int:
    """How many of the provider's latest closed cycles, newest first, ended in a walk restart."""
    count = 0
    for past in ledger.history(provider, limit=MAX_WALK_RESTARTS + 2):
        if past.is_open:
            continue
        if past.sweep_outcome != WALK_RESTARTED:
            break
        count += 1
    return count


def walk_doubt(store: CatalogStore, ledger: Ledger, ingestion: Ingestion, provider: EntityProvider | None) -> str | None:
    """Why the cycle's walk cannot be trusted to have seen every entity of the source, or None.

    The provider may have said so on the walk's last page (`Page.doubt`: the source changed while
    it was walked, kept on the last mark). For a provider whose page totals are exact counts of what the source holds (`counts_exactly`,
    e.g. `backstage_api`, which counts afresh after the last page), every one of the last page's
    total must be accounted for by a ref this cycle marked or an item it rejected. Fewer means the
    walk skipped some, and a sweep on it would remove live entities. (A total that is only an upper
    bound, like the synthetic source's slot count, is progress information and is not checked.)
    """
    last = ledger.last_mark(ingestion.id)
    if last is not None and isinstance(last.cursor, dict) and last.cursor.get("doubt"):
        return str(last.cursor["doubt"])
    if not getattr(provider, "counts_exactly", False):
        return None
    if last is None or last.source_total is None:
        return None
    seen = store.cycle_seen(ingestion.provider, ingestion.id)
    if seen < last.source_total:
        return (f"{ingestion.provider}: the walk accounted for {seen} entities but the source reports "
                f"{last.source_total}: {last.source_total - seen} were skipped")
    return None


def run_sweep(
    store: CatalogStore,
    ledger: Ledger,
    ingestion: Ingestion,
    options: IngestionOptions,
    now: dt.datetime | None = None,
    provider: EntityProvider | None = None,
) -> SweepResult:
    """Sweep removals at the end of a cycle and put the cycle to rest, if the walk was complete.

    A walk in doubt (`walk_doubt`) is restarted from the first page instead (a new cycle, nothing
    removed), up to MAX_WALK_RESTARTS times in a row; after that the sweep removes only what
    `provider` confirms gone, or, for a provider that cannot ask its source, nothing. A provider
    that can confirm is asked about every candidate even after a complete walk.
    """
    now = now or utcnow()
    last = ledger.last_mark(ingestion.id)
    if last is None or not last.done:
        raise SweepNotReady(
            f"{ingestion.provider}: cycle {ingestion.cycle} has not reached the end of its source "
            f"(last chunk: {None if last is None else last.sequence})"
        )
    confirm = provider.still_present if isinstance(provider, ConfirmsRemovals) else None
    doubt = walk_doubt(store, ledger, ingestion, provider)
    if doubt is not None:
        if walk_restarts_in_a_row(ledger, ingestion.provider) < MAX_WALK_RESTARTS:
            restart_walk(ledger, ingestion, doubt, now)
            return _unswept(store, ingestion, WALK_RESTARTED, f"{doubt}; restarting the walk from the first page")
        if confirm is None:
            result = _unswept(store, ingestion, SKIPPED_INCOMPLETE,
                              f"{doubt}; {MAX_WALK_RESTARTS} restarts did not help and the source cannot confirm removals: "
                              "nothing removed this cycle")
            _rest(store, ledger, ingestion, options, now, result, error=result.message)
            return result
    result = store.sweep(
        provider=ingestion.provider,
        ingestion_id=ingestion.id,
        cycle=ingestion.cycle,
        reject_removals_above_percentage=options.reject_removals_above_percentage,
        reject_empty_source_collections=options.reject_empty_source_collections,
        confirm=confirm,
        sequence=last.sequence,
    )
    if doubt is not None:
        result.message = f"{doubt}; removed only what the source confirmed gone: {result.message}"
    rejected = result.outcome.startswith("rejected")
    # A guard rejection is not a failure of the source, but operators must see it.
    _rest(store, ledger, ingestion, options, now, result, error=result.message if rejected else None)
    return result


def _unswept(store: CatalogStore, ingestion: Ingestion, outcome: str, message: str) -> SweepResult:
    owned = store.count(ingestion.provider)
    seen = store.cycle_seen(ingestion.provider, ingestion.id)
    return SweepResult(provider=ingestion.provider, ingestion_id=ingestion.id, owned=owned, seen=seen, stale=0,
                       removed=0, outcome=outcome, message=message)


def _rest(store: CatalogStore, ledger: Ledger, ingestion: Ingestion, options: IngestionOptions, now: dt.datetime,
          result: SweepResult, error: str | None) -> None:
    outcome = dict(
        ingestion_completed_at=now,
        attempts=0,
        entities_seen=result.seen,
        removed=result.removed,
        sweep_outcome=result.outcome,
        sweep_message=result.message,
        last_error=error,
    )
    rest = dict(status=RESTING, next_action=REST, next_action_at=now + options.rest_length)
    if not ledger.update_unless_status(ingestion.id, CANCELING, **rest, **outcome):
        # An operator canceled the cycle while it swept: they asked for a new cycle, so it does not
        # rest; the next tick closes it (the sweep, its own transaction, stands) and starts the next.
        ledger.update(ingestion.id, **outcome)
    store.prune_rejections(ingestion.provider, keep_ingestion_id=ingestion.id)
    if options.history_keep_cycles:
        from catalog_pipelines.storage.history import prune

        prune(store.engine, ingestion.provider, ingestion.cycle, options.history_keep_cycles)


def snapshot(ledger: Ledger, provider: str, *, run_in_progress: bool = False):
    """Where `provider` stands, as the state machine (ingestion/engine.py) sees it."""
    from catalog_pipelines.ingestion.engine import CycleState, ProviderSnapshot

    controls = ledger.controls(provider)
    current = ledger.open_ingestion(provider)
    if current is None:
        return ProviderSnapshot(provider, None, paused=bool(controls["paused"]),
                                halted_until=controls["halted_until"], run_in_progress=run_in_progress)
    pos = position(ledger, current)
    last = ledger.last_mark(current.id)
    state = CycleState(
        cycle=current.cycle,
        status=current.status,
        next_action=current.next_action,
        next_action_at=current.next_action_at,
        attempts=current.attempts,
        last_error=current.last_error,
        burst_started_at=current.burst_started_at,
        ingestion_completed_at=current.ingestion_completed_at,
        sweep_outcome=current.sweep_outcome,
    )
    return ProviderSnapshot(
        provider,
        state,
        next_sequence=pos.next_sequence,
        needs_sweep=pos.needs_sweep,
        paused=bool(controls["paused"]),
        halted_until=controls["halted_until"],
        run_in_progress=run_in_progress,
        last_chunk_at=last.created_at if last else None,
    )


def record_chunk_success(ledger: Ledger, ingestion: Ingestion) -> None:
    from catalog_pipelines.ingestion.engine import on_chunk_success

    ledger.update(ingestion.id, **on_chunk_success())


def record_failure(ledger: Ledger, provider: str, options: IngestionOptions, error: str, now: dt.datetime | None = None) -> None:
    """A run for `provider` failed after its own retries: the cycle backs off (engine.on_failure)."""
    from catalog_pipelines.ingestion.engine import on_failure

    now = now or utcnow()
    current = ledger.open_ingestion(provider)
    if current is None:
        return
    state = snapshot(ledger, provider).cycle
    ledger.update(current.id, **on_failure(state, options, now, error))

