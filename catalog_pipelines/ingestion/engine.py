"""The ingestion cycle as a pure state machine: given where a provider stands and the time, what next.

    bursting ──(burst_length used up)──▶ interstitial ──(burst_interval)──▶ bursting …
    bursting ──(last chunk written)──▶ sweep ──▶ resting ──(rest_length or cron tick)──▶ new cycle
    any run failure ──▶ backing off ──(backoff[attempts])──▶ bursting (resume from the last mark)
    paused / halted until T: nothing is requested; canceling: the cycle closes, a new one starts

No I/O and no Dagster: the sensor gathers a `ProviderSnapshot`, calls `decide`, and applies the
`Decision` (ledger updates, then at most one run request). Tests drive it with a fake clock.

Backstage defects fixed here, each with a test in tests/ingestion/test_engine.py:
- after the last backoff step the provider keeps retrying at that interval AND reports unhealthy;
- cancel never parks a provider: the next tick closes the cycle and starts a new one;
- a 0% removal threshold rejects any removal (storage/catalog.py: sweep);
- a guard-rejected removal is retried next cycle (staleness is recomputed from the ledger);
- chunk writes and the mark are one transaction (storage/catalog.py: write_chunk).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from catalog_pipelines.ingestion.config import IngestionOptions

Action = Literal["wait", "run_chunk", "run_sweep", "start_cycle"]

# Ledger vocabulary (Backstage's, so its admin routes report familiar values).
BURSTING, INTERSTITIAL, RESTING, BACKING_OFF, CANCELING, COMPLETE = (
    "bursting", "interstitial", "resting", "backing off", "canceling", "complete",
)
INGEST, REST, BACKOFF, CANCEL = "ingest", "rest", "backoff", "cancel"


@dataclass(frozen=True)
class CycleState:
    """The open cycle's ledger row, reduced to what the decision needs."""

    cycle: int
    status: str
    next_action: str
    next_action_at: dt.datetime
    attempts: int = 0
    last_error: str | None = None
    burst_started_at: dt.datetime | None = None
    ingestion_completed_at: dt.datetime | None = None
    sweep_outcome: str | None = None


@dataclass(frozen=True)
class ProviderSnapshot:
    provider: str
    cycle: CycleState | None  # None: no open cycle
    next_sequence: int = 0
    needs_sweep: bool = False
    paused: bool = False
    halted_until: dt.datetime | None = None
    run_in_progress: bool = False
    last_chunk_at: dt.datetime | None = None  # when the cycle's latest chunk was written


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    sequence: int | None = None
    # Values to write on the open cycle's row before acting.
    updates: dict[str, Any] = field(default_factory=dict)
    # start_cycle: values to close the current open cycle with first (None: there is none).
    close_current: dict[str, Any] | None = None


def backoff_delay(options: IngestionOptions, attempts: int) -> dt.timedelta:
    """Delay after the `attempts`-th consecutive failure (1-based); the last step repeats for ever."""
    steps = options.backoff
    return steps[min(max(attempts, 1), len(steps)) - 1]


def decide(
    snap: ProviderSnapshot,
    options: IngestionOptions,
    now: dt.datetime,
    next_cron_tick: Callable[[str, dt.datetime], dt.datetime] | None = None,
) -> Decision:
    if snap.paused:
        return Decision("wait", "paused by an operator")
    if snap.halted_until is not None and now < snap.halted_until:
        return Decision("wait", f"halted until {snap.halted_until.isoformat()}")
    if snap.run_in_progress:
        return Decision("wait", "a run for this provider is in progress")

    c = snap.cycle
    if c is None:
        return Decision("start_cycle", "no open cycle: starting one", sequence=0)

    if c.next_action == CANCEL:
        return Decision(
            "start_cycle",
            "cycle canceled: starting a new one",
            sequence=0,
            close_current={"status": COMPLETE, "next_action": "nothing (canceled)", "rest_completed_at": now},
        )

    if c.next_action == REST:
        due = c.next_action_at
        if options.cron_schedule and next_cron_tick and c.ingestion_completed_at:
            due = next_cron_tick(options.cron_schedule, c.ingestion_completed_at)
        if now < due:
            return Decision("wait", f"resting until {due.isoformat()}")
        return Decision(
            "start_cycle",
            "rest is over: starting the next cycle",
            sequence=0,
            close_current={"status": COMPLETE, "next_action": "nothing (done)", "rest_completed_at": now},
        )

    if c.next_action == BACKOFF and now < c.next_action_at:
        return Decision("wait", f"backing off after {c.attempts} failure(s) until {c.next_action_at.isoformat()}")

    if snap.needs_sweep:
        return Decision("run_sweep", "every chunk is written: sweeping removals",
                        updates={"status": BURSTING, "next_action": INGEST})

    if c.status == INTERSTITIAL and now < c.next_action_at:
        return Decision("wait", f"between bursts until {c.next_action_at.isoformat()}")

    burst_start = c.burst_started_at
    new_burst = c.status != BURSTING or burst_start is None or c.next_action == BACKOFF
    # After a pause, halt or slow stretch the source has already rested a full interval: a new burst
    # starts at once instead of resting again.
    rested = snap.last_chunk_at is not None and now - snap.last_chunk_at >= options.burst_interval
    if not new_burst and now - burst_start >= options.burst_length and rested:
        new_burst = True
    if not new_burst and now - burst_start >= options.burst_length:
        return Decision(
            "wait",
            f"burst of {options.burst_length} used up: pausing {options.burst_interval}",
            updates={"status": INTERSTITIAL, "next_action": INGEST, "next_action_at": now + options.burst_interval,
                     "burst_started_at": None},
        )
    updates: dict[str, Any] = {"status": BURSTING, "next_action": INGEST, "next_action_at": now}
    if new_burst:
        updates["burst_started_at"] = now
    return Decision("run_chunk", f"ingesting chunk {snap.next_sequence}", sequence=snap.next_sequence, updates=updates)


def on_failure(c: CycleState, options: IngestionOptions, now: dt.datetime, error: str) -> dict[str, Any]:
    """Ledger updates after a run failed (its own retries exhausted): back off and remember why."""
    attempts = c.attempts + 1
    return {
        "status": BACKING_OFF,
        "next_action": BACKOFF,
        "attempts": attempts,
        "last_error": error,
        "next_action_at": now + backoff_delay(options, attempts),
        "burst_started_at": None,
    }


def on_chunk_success() -> dict[str, Any]:
    """A chunk landed: the failure streak is over."""
    return {"attempts": 0, "last_error": None}


@dataclass(frozen=True)
class Health:
    state: str
    healthy: bool
    reason: str
    next_action_at: dt.datetime | None


def health(snap: ProviderSnapshot, options: IngestionOptions, now: dt.datetime) -> Health:
    """Unhealthy when backing off past the configured schedule, or when a guard blocked the sweep."""
    c = snap.cycle
    if snap.paused:
        return Health("paused", True, "paused by an operator", None)
    if snap.halted_until and now < snap.halted_until:
        return Health("halted", True, f"halted until {snap.halted_until.isoformat()}", snap.halted_until)
    if c is None:
        return Health("idle", True, "no cycle has started yet", None)
    if c.next_action == BACKOFF and c.attempts >= len(options.backoff):
        return Health(BACKING_OFF, False,
                      f"{c.attempts} consecutive failures, past the {len(options.backoff)}-step backoff schedule; "
                      f"retrying every {options.backoff[-1]}. Last error: {c.last_error}", c.next_action_at)
    if c.sweep_outcome and c.sweep_outcome.startswith("rejected"):
        return Health(c.status, False, f"removal sweep blocked by a guard: {c.last_error}", c.next_action_at)
    if c.sweep_outcome == "skipped-incomplete":
        return Health(c.status, False, f"removal sweep skipped, the walk could not be verified complete: {c.last_error}",
                      c.next_action_at)
    if c.next_action == BACKOFF:
        return Health(BACKING_OFF, True, f"retrying after {c.attempts} failure(s): {c.last_error}", c.next_action_at)
    return Health(c.status, True, c.status, c.next_action_at)
