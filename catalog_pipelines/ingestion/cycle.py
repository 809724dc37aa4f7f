"""Cycle bookkeeping shared by every door: where a cycle stands, and the end-of-cycle sweep."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from catalog_pipelines.ingestion.config import IngestionOptions
from catalog_pipelines.ingestion.engine import CANCELING, REST, RESTING
from catalog_pipelines.storage.catalog import CatalogStore, SweepResult, utcnow
from catalog_pipelines.storage.ledger import Ingestion, Ledger


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


def run_sweep(
    store: CatalogStore, ledger: Ledger, ingestion: Ingestion, options: IngestionOptions, now: dt.datetime | None = None
) -> SweepResult:
    """Sweep removals at the end of a cycle and put the cycle to rest."""
    now = now or utcnow()
    last = ledger.last_mark(ingestion.id)
    if last is None or not last.done:
        raise SweepNotReady(
            f"{ingestion.provider}: cycle {ingestion.cycle} has not reached the end of its source "
            f"(last chunk: {None if last is None else last.sequence})"
        )
    result = store.sweep(
        provider=ingestion.provider,
        ingestion_id=ingestion.id,
        cycle=ingestion.cycle,
        reject_removals_above_percentage=options.reject_removals_above_percentage,
        reject_empty_source_collections=options.reject_empty_source_collections,
    )
    rejected = result.outcome.startswith("rejected")
    outcome = dict(
        ingestion_completed_at=now,
        attempts=0,
        entities_seen=result.seen,
        removed=result.removed,
        sweep_outcome=result.outcome,
        sweep_message=result.message,
        # A guard rejection is not a failure of the source, but operators must see it.
        last_error=result.message if rejected else None,
    )
    rest = dict(status=RESTING, next_action=REST, next_action_at=now + options.rest_length)
    if not ledger.update_unless_status(ingestion.id, CANCELING, **rest, **outcome):
        # An operator canceled the cycle while it swept: they asked for a new cycle, so it does not
        # rest; the next tick closes it (the sweep, its own transaction, stands) and starts the next.
        ledger.update(ingestion.id, **outcome)
    store.prune_rejections(ingestion.provider, keep_ingestion_id=ingestion.id)
    return result


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
