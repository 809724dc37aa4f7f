"""The cycle state machine, driven with a fake clock: bursts, rests, backoff, cancel, controls, health."""

from __future__ import annotations

import datetime as dt

from catalog_pipelines.ingestion.config import IngestionOptions
from catalog_pipelines.ingestion.engine import (
    BACKOFF, BURSTING, CANCEL, INGEST, INTERSTITIAL, REST, RESTING,
    CycleState, ProviderSnapshot, backoff_delay, decide, health, on_failure,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
MIN = dt.timedelta(minutes=1)
OPTS = IngestionOptions(burst_length=dt.timedelta(minutes=3), burst_interval=dt.timedelta(minutes=2),
                        rest_length=dt.timedelta(hours=1))


def snap(cycle: CycleState | None, **kw) -> ProviderSnapshot:
    return ProviderSnapshot("p", cycle, **kw)


def state(**kw) -> CycleState:
    base = dict(cycle=1, status=BURSTING, next_action=INGEST, next_action_at=T0)
    base.update(kw)
    return CycleState(**base)


def test_no_open_cycle_starts_one_at_chunk_zero():
    d = decide(snap(None), OPTS, T0)
    assert (d.action, d.sequence, d.close_current) == ("start_cycle", 0, None)


def test_bursts_run_chunks_until_burst_length_then_pause_for_burst_interval():
    d = decide(snap(state(status="bursting", burst_started_at=None), next_sequence=0), OPTS, T0)
    assert d.action == "run_chunk" and d.updates["burst_started_at"] == T0
    d = decide(snap(state(burst_started_at=T0), next_sequence=4), OPTS, T0 + 2 * MIN)
    assert (d.action, d.sequence) == ("run_chunk", 4) and "burst_started_at" not in d.updates
    d = decide(snap(state(burst_started_at=T0), next_sequence=7), OPTS, T0 + 3 * MIN)
    assert d.action == "wait" and d.updates["status"] == INTERSTITIAL
    assert d.updates["next_action_at"] == T0 + 5 * MIN
    between = state(status=INTERSTITIAL, next_action_at=T0 + 5 * MIN)
    assert decide(snap(between, next_sequence=7), OPTS, T0 + 4 * MIN).action == "wait"
    d = decide(snap(between, next_sequence=7), OPTS, T0 + 5 * MIN)
    assert (d.action, d.sequence, d.updates["burst_started_at"]) == ("run_chunk", 7, T0 + 5 * MIN)


def test_a_new_burst_starts_at_once_when_the_source_already_rested_an_interval():
    # Burst used up, but the last chunk was written 5 minutes ago (e.g. the provider was halted).
    stale = state(burst_started_at=T0)
    d = decide(snap(stale, next_sequence=3, last_chunk_at=T0 + MIN), OPTS, T0 + 6 * MIN)
    assert d.action == "run_chunk" and d.updates["burst_started_at"] == T0 + 6 * MIN


def test_last_chunk_written_requests_the_sweep():
    d = decide(snap(state(burst_started_at=T0), next_sequence=9, needs_sweep=True), OPTS, T0 + MIN)
    assert d.action == "run_sweep"


def test_rest_then_a_new_cycle_closes_the_old_one():
    resting = state(status=RESTING, next_action=REST, next_action_at=T0 + dt.timedelta(hours=1), sweep_outcome="applied")
    assert decide(snap(resting), OPTS, T0 + 30 * MIN).action == "wait"
    d = decide(snap(resting), OPTS, T0 + dt.timedelta(hours=1))
    assert d.action == "start_cycle" and d.close_current["next_action"] == "nothing (done)"


def test_cron_schedule_replaces_rest_length():
    resting = state(status=RESTING, next_action=REST, next_action_at=T0 + dt.timedelta(hours=1),
                    ingestion_completed_at=T0)
    opts = IngestionOptions(cron_schedule="0 6 * * *")
    six = T0.replace(hour=6)
    tick = lambda cron, after: six  # noqa: E731
    assert decide(snap(resting), opts, T0 + dt.timedelta(hours=2), tick).action == "wait"
    assert decide(snap(resting), opts, six, tick).action == "start_cycle"


def test_failures_back_off_through_the_schedule_and_stay_at_the_last_step():
    opts = IngestionOptions()
    delays = [backoff_delay(opts, n) for n in range(1, 7)]
    assert delays[:4] == [MIN, 5 * MIN, 30 * MIN, dt.timedelta(hours=3)]
    assert delays[4:] == [dt.timedelta(hours=3)] * 2
    c = state()
    for expected in delays:
        updates = on_failure(c, opts, T0, "HTTP 503 from source")
        assert updates["next_action_at"] == T0 + expected and updates["next_action"] == BACKOFF
        c = state(**{**c.__dict__, **{k: v for k, v in updates.items() if k in CycleState.__dataclass_fields__}})
    # Past the schedule it keeps retrying (never gives up) ...
    assert decide(snap(c, next_sequence=3), opts, T0 + dt.timedelta(hours=3)).action == "run_chunk"
    # ... and is reported unhealthy, with the full error.
    h = health(snap(c), opts, T0)
    assert not h.healthy and "HTTP 503 from source" in h.reason


def test_backing_off_within_the_schedule_is_still_healthy_and_waits():
    c = state(status="backing off", next_action=BACKOFF, attempts=1, next_action_at=T0 + MIN, last_error="timeout")
    assert decide(snap(c, next_sequence=2), OPTS, T0).action == "wait"
    assert health(snap(c), OPTS, T0).healthy
    d = decide(snap(c, next_sequence=2), OPTS, T0 + MIN)
    assert (d.action, d.sequence) == ("run_chunk", 2)  # resumes from the last committed mark


def test_cancel_never_parks_the_provider():
    canceled = state(status="canceling", next_action=CANCEL, next_action_at=T0 + dt.timedelta(hours=24))
    d = decide(snap(canceled), OPTS, T0)
    assert d.action == "start_cycle" and d.close_current["next_action"] == "nothing (canceled)"


def test_pause_halt_and_running_runs_stop_new_requests():
    c = state()
    assert decide(snap(c, paused=True), OPTS, T0).action == "wait"
    assert decide(snap(c, halted_until=T0 + MIN), OPTS, T0).action == "wait"
    assert decide(snap(c, halted_until=T0 + MIN), OPTS, T0 + MIN).action == "run_chunk"
    assert decide(snap(c, run_in_progress=True), OPTS, T0).action == "wait"
    assert decide(snap(None, paused=True), OPTS, T0).action == "wait"


def test_guard_blocked_sweep_is_unhealthy_with_the_reason():
    c = state(status=RESTING, next_action=REST, sweep_outcome="rejected-threshold",
              last_error="REMOVAL_THRESHOLD exceeded: attempted to remove 60 of 100 entities")
    h = health(snap(c), OPTS, T0)
    assert not h.healthy and "REMOVAL_THRESHOLD" in h.reason
