"""Cycles driven through the real sensor code and real Dagster runs (issue: incremental cycles).

The sensor body is evaluated tick by tick against a real instance and catalog database; each run it
requests is launched in-process. A fake clock makes rests, bursts and backoff instantaneous.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.ingestion.health import provider_health_report
from catalog_pipelines.providers.synthetic import SyntheticOrg
from tests.cycle_harness import Harness

MIN = dt.timedelta(minutes=1)


def synthetic(size=600, generation=0, remove=0.0, **options) -> ProviderConfig:
    opts = dict(chunk_size=200, burst_length=dt.timedelta(minutes=2), burst_interval=dt.timedelta(minutes=1),
                rest_length=dt.timedelta(hours=1), retry_max=0, retry_delay_seconds=0)
    opts.update(options)
    return ProviderConfig(name="org", type="synthetic",
                          params={"size": size, "seed": 7, "generation": generation, "remove_fraction": remove},
                          options=IngestionOptions(**opts))


@pytest.fixture
def instance(dagster_instance):
    return dagster_instance


@pytest.fixture
def harness(instance, catalog_url):
    from catalog_pipelines.storage.catalog import set_clock

    yield Harness(synthetic(), catalog_url, instance)
    set_clock(None)


def expected_refs(size=600, generation=0, remove=0.0) -> set[str]:
    from catalog_pipelines.model.refs import entity_ref_of

    org = SyntheticOrg(size, seed=7, generation=generation, remove_fraction=remove)
    return {entity_ref_of(e) for e in org.iter_entities()}


def test_sensor_driven_cycle_ingests_the_synthetic_org_end_to_end(harness):
    events = harness.run_until_resting()
    assert events.count("chunk") == 3 and events[-1] == "sweep"
    store = harness.catalog.store()
    assert store.refs("org") == expected_refs()
    # Resting: the sensor waits until rest_length is over, then starts cycle 2 at chunk 0.
    assert harness.step() == "wait" and "resting" in harness.skips[-1]
    harness.advance(dt.timedelta(hours=1))
    assert harness.step() == "chunk"
    ingestion = harness.catalog.ledger().open_ingestion("org")
    assert ingestion.cycle == 2
    # Partition keys are re-used by the second cycle: none added.
    assert harness.instance.get_dynamic_partitions("org_chunks") == ["00000", "00001", "00002"]


def test_bursts_pause_for_the_burst_interval(harness):
    harness.config = synthetic(burst_length=dt.timedelta(seconds=50))
    harness.__post_init__()
    assert harness.step() == "chunk"
    harness.advance(dt.timedelta(seconds=30))
    assert harness.step() == "chunk"
    harness.advance(dt.timedelta(seconds=30))  # 60 s into a 50 s burst
    assert harness.step() == "wait" and "burst" in harness.skips[-1]
    harness.advance(dt.timedelta(seconds=30))
    assert harness.step() == "wait" and "between bursts" in harness.skips[-1]
    harness.advance(dt.timedelta(seconds=30))
    assert harness.step() == "chunk"


def test_pause_and_halt_stop_new_runs_within_one_tick_and_delay_resumes(harness):
    ledger = harness.catalog.ledger()
    assert harness.step() == "chunk"
    ledger.set_controls("org", paused=True, actor="user:default/ops")
    assert harness.step() == "wait" and "paused" in harness.skips[-1]
    ledger.set_controls("org", paused=False, halted_until=harness.now + dt.timedelta(hours=24))
    harness.advance(MIN)
    assert harness.step() == "wait" and "halted" in harness.skips[-1]
    harness.advance(dt.timedelta(hours=24))
    assert harness.step() == "chunk"


def test_source_failures_back_off_then_resume_from_the_last_committed_mark(harness, monkeypatch):
    from catalog_pipelines.providers import synthetic as synth

    assert harness.step() == "chunk"
    original = synth.SyntheticOrgProvider.next
    failures = {"left": 2}

    def flaky(self, cursor):
        if failures["left"]:
            failures["left"] -= 1
            raise synth.ProviderError("HTTP 503 from the source") if hasattr(synth, "ProviderError") else RuntimeError("HTTP 503")
        return original(self, cursor)

    monkeypatch.setattr(synth.SyntheticOrgProvider, "next", flaky)
    harness.advance(MIN)
    assert harness.step() == "failed"
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert report["state"] == "backing off" and "503" in report["last_error"] and report["healthy"]
    assert harness.step() == "wait"  # within the 1-minute backoff
    harness.advance(MIN)
    assert harness.step() == "failed"
    harness.advance(5 * MIN)
    assert harness.step() == "chunk"  # chunk 1 again, from chunk 0's cursor
    events = harness.run_until_resting()
    assert events[-1] == "sweep"
    assert harness.catalog.store().refs("org") == expected_refs()


def test_backoff_past_the_schedule_fails_the_health_check(harness, monkeypatch):
    from catalog_pipelines.providers import synthetic as synth

    def broken(self, cursor):
        raise RuntimeError("connection refused by source")

    monkeypatch.setattr(synth.SyntheticOrgProvider, "next", broken)
    for _ in range(6):
        assert harness.step() == "failed"
        harness.advance(dt.timedelta(hours=3))
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert not report["healthy"] and report["attempts"] == 6 and "connection refused" in report["reason"]
    # The asset check in the UI says the same.
    check = harness.defs.get_asset_checks_def(dg.AssetCheckKey(dg.AssetKey("org_removal_sweep"), "provider_health"))
    result = dg.materialize([check], resources={"catalog": harness.catalog}, instance=harness.instance,
                            selection=dg.AssetSelection.all_asset_checks(), raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and not evaluations[0].passed


def test_guards_keep_entities_when_the_source_drops_most_of_them(harness):
    harness.config = synthetic(reject_removals_above_percentage=50, reject_empty_source_collections=True)
    harness.__post_init__()
    harness.run_until_resting()
    before = harness.catalog.store().refs("org")
    # Cycle 2: the source lost 60% of its entities (an outage, not a real removal).
    harness.reconfigure(synthetic(generation=1, remove=0.6, reject_removals_above_percentage=50, reject_empty_source_collections=True))
    harness.advance(dt.timedelta(hours=1))
    harness.run_until_resting()
    assert harness.catalog.store().refs("org") == before
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert not report["healthy"] and "REMOVAL_THRESHOLD" in report["reason"]
    # Cycle 3: the source is back, except 3% that truly disappeared; those are removed now.
    harness.reconfigure(synthetic(generation=1, remove=0.03, reject_removals_above_percentage=50, reject_empty_source_collections=True))
    harness.advance(dt.timedelta(hours=1))
    harness.run_until_resting()
    assert harness.catalog.store().refs("org") == expected_refs(generation=1, remove=0.03)
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert report["healthy"], report


def test_cancel_starts_a_new_cycle_on_the_next_tick(harness):
    ledger = harness.catalog.ledger()
    assert harness.step() == "chunk"
    ingestion = ledger.open_ingestion("org")
    ledger.update(ingestion.id, status="canceling", next_action="cancel")
    assert harness.step() == "chunk"
    assert ledger.open_ingestion("org").cycle == ingestion.cycle + 1


def test_the_real_sensor_definition_requests_the_first_chunk(harness):
    sensor = harness.defs.get_sensor_def("org_ingestion_sensor")
    result = sensor(dg.build_sensor_context(instance=harness.instance, resources={"catalog": harness.catalog}))
    assert [r.partition_key for r in result.run_requests] == ["00000"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["00000"]


def test_random_500s_timeouts_and_429s_still_store_every_entity_exactly_once(instance, catalog_url):
    """A Backstage-shaped source failing at random: in-run retries, run failures and the ledger's
    backoff between them, and the cycle still lands every entity once."""
    import sqlalchemy as sa

    from backstage_fake import FakeBackstage
    from catalog_pipelines.storage import schema
    from catalog_pipelines.storage.catalog import set_clock

    org = SyntheticOrg(240, seed=3, dangling_fraction=0)
    items = list(org.iter_entities())
    with FakeBackstage(items, token="t0ken-for-tests", fault_rate=0.5, seed=11, timeout_seconds=0.6, retry_after="0") as server:
        config = ProviderConfig(
            name="api", type="backstage_api",
            params={"base_url": server.base_url, "token": "t0ken-for-tests", "page_size": 40, "timeout": 0.3,
                    "max_retries": 0, "backoff_base": 0.0, "backoff_max": 0.0},
            options=IngestionOptions(chunk_size=80, burst_length=dt.timedelta(hours=1), retry_max=1, retry_delay_seconds=0),
        )
        harness = Harness(config, catalog_url, instance)
        try:
            events = harness.run_until_resting(max_steps=400, tick_every=dt.timedelta(hours=3))
        finally:
            set_clock(None)
        faulted = [r for r in server.requests if r.outcome != "ok"]
    assert events[-1] == "sweep"
    assert faulted, "the fake server injected no faults"
    assert "failed" in events, "no run failed: the ledger backoff path was not exercised"
    store = harness.catalog.store()
    expected = {e.ref for e in (process_one(i) for i in items)}
    assert store.refs("api") == expected
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(schema.entities)).scalar_one()
    assert rows == len(expected) == len(items)


def test_a_crash_inside_the_chunk_transaction_resumes_from_the_last_committed_mark(harness, monkeypatch):
    from catalog_pipelines.storage.catalog import CatalogStore

    assert harness.step() == "chunk"
    ledger = harness.catalog.ledger()
    ingestion = ledger.open_ingestion("org")
    committed = harness.catalog.store().count("org")
    original = CatalogStore.write_chunk
    monkeypatch.setattr(CatalogStore, "write_chunk", lambda self, **kw: original(self, **{**kw, "fail_before_commit": True}))
    assert harness.step() == "failed"
    assert harness.catalog.store().count("org") == committed
    assert [m.sequence for m in ledger.marks(ingestion.id)] == [0]
    monkeypatch.setattr(CatalogStore, "write_chunk", original)
    harness.advance(dt.timedelta(minutes=1))
    events = harness.run_until_resting()
    assert events[0] == "chunk" and events[-1] == "sweep"
    assert [m.sequence for m in ledger.marks(ingestion.id)] == [0, 1, 2]
    assert harness.catalog.store().refs("org") == expected_refs()


def process_one(item):
    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import RawEntity

    return process_entity(RawEntity(entity=item, location="test"))


# ------------------------------------------------------------------ re-running a chunk (issue 15, item 5)


def marks_of(harness) -> list[tuple[int, object, bool]]:
    ledger = harness.catalog.ledger()
    return [(m.sequence, m.cursor, m.done) for m in ledger.marks(ledger.open_ingestion("org").id)]


def refusal(out: dg.ExecuteInProcessResult) -> str:
    (failure,) = out.get_step_failure_events()
    return failure.event_specific_data.user_failure_data.description


def test_rerunning_a_chunk_of_a_finished_cycle_is_refused_and_keeps_every_mark(harness):
    harness.run_until_resting()
    before = marks_of(harness)
    assert [m[0] for m in before] == [0, 1, 2]
    # An operator re-runs partition 00001 from the UI while the cycle rests.
    out = harness.launch("org_chunk_job", "00001", {"catalog/provider": "org"})
    assert not out.success
    reason = refusal(out)
    assert "chunk 1 of cycle 1 refused" in reason and "finished" in reason, reason
    assert marks_of(harness) == before
    # A refusal is not a source failure: no retry inside the run, no backoff, still healthy.
    assert len([e for e in out.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 0
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert (report["state"], report["attempts"], report["last_error"], report["healthy"]) == ("resting", 0, None, True)
    assert harness.catalog.store().refs("org") == expected_refs()


def test_an_earlier_chunk_of_an_open_cycle_is_refused_and_its_last_chunk_reruns_idempotently(harness):
    assert harness.step() == "chunk"
    harness.advance(dt.timedelta(seconds=30))
    assert harness.step() == "chunk"
    before = marks_of(harness)
    assert [m[0] for m in before] == [0, 1]
    refused = harness.launch("org_chunk_job", "00000", {"catalog/provider": "org"})
    assert not refused.success and "chunks 1..1 continue from it" in refusal(refused)
    assert marks_of(harness) == before
    # The last written chunk re-reads its page from the same cursor and replaces only its own mark.
    again = harness.launch("org_chunk_job", "00001", {"catalog/provider": "org"})
    assert again.success
    assert marks_of(harness) == before
    assert harness.catalog.store().count("org") == 400
    harness.advance(dt.timedelta(seconds=30))
    assert harness.run_until_resting()[-1] == "sweep"
    assert harness.catalog.store().refs("org") == expected_refs()
    assert harness.catalog.ledger().open_ingestion("org").attempts == 0


def test_a_dagster_retry_reruns_the_chunk_whose_write_did_not_commit(harness, monkeypatch):
    """The chunk's RetryPolicy still works under the re-run rules: the retried chunk has no mark yet."""
    from catalog_pipelines.storage.catalog import CatalogStore

    harness.config = synthetic(retry_max=1)
    harness.__post_init__()
    original, calls = CatalogStore.write_chunk, []

    def fails_once(self, **kw):
        calls.append(kw["sequence"])
        return original(self, **{**kw, "fail_before_commit": len(calls) == 1})

    monkeypatch.setattr(CatalogStore, "write_chunk", fails_once)
    assert harness.step() == "chunk"
    assert calls == [0, 0]
    assert [m[0] for m in marks_of(harness)] == [0]
    assert harness.catalog.ledger().open_ingestion("org").attempts == 0


# ------------------------------------------------------------------ dead runs (issue 15, item 8)


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def started_run_without_a_worker(harness, partition: str) -> dg.DagsterRun:
    """A chunk run that started and whose worker was then killed (kill -9): STARTED for ever."""
    job = harness.defs.resolve_job_def("org_chunk_job")
    run = harness.instance.create_run_for_job(job, tags={"catalog/provider": "org", "dagster/partition": partition})
    harness.instance.report_engine_event("run worker started", run)
    harness.instance.handle_run_event(run.run_id, dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name))
    assert harness.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    return run


def test_a_run_whose_worker_died_is_failed_and_the_sensor_resumes_its_provider(harness):
    from catalog_pipelines.storage.audit import entries

    assert harness.step() == "chunk"
    dead = started_run_without_a_worker(harness, "00001")
    # The ledger's clock is the real one from here, as the run's events are.
    harness.now = real_now() + dt.timedelta(minutes=10)
    assert harness.step() == "wait" and "in progress" in harness.skips[-1]  # a live run still blocks
    assert harness.instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.STARTED
    harness.now = real_now() + dt.timedelta(days=2)
    assert harness.step() == "chunk"  # chunk 1 again: the dead run never wrote its mark
    assert [m[0] for m in marks_of(harness)] == [0, 1]
    run = harness.instance.get_run_by_id(dead.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    failure = [e for e in harness.instance.all_logs(dead.run_id) if e.dagster_event
               and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE]
    assert "logged nothing since" in failure[0].dagster_event.message and "run_stale_after" in failure[0].dagster_event.message
    (audited,) = entries(harness.catalog.get_engine(), action="ingestion.recover_dead_run")
    assert audited.target == "provider:org" and audited.details["run_id"] == dead.run_id
    # The sensor recorded the failure; the run-failure sensor does not count it a second time.
    ledger = harness.catalog.ledger()
    ingestion = ledger.open_ingestion("org")
    ledger.update(ingestion.id, attempts=0, last_error=None)
    harness.report_failure(run)
    assert ledger.open_ingestion("org").attempts == 0


def test_the_dead_run_counts_as_a_failed_attempt_backing_off_from_when_it_went_silent(harness):
    from catalog_pipelines.sensors.ingestion import provider_run_in_progress

    assert harness.step() == "chunk"
    dead = started_run_without_a_worker(harness, "00001")
    now = real_now() + dt.timedelta(hours=2)
    assert not provider_run_in_progress(harness.instance, "org", config=harness.config, catalog=harness.catalog, now=now)
    current = harness.catalog.ledger().open_ingestion("org")
    assert current.attempts == 1 and dead.run_id in current.last_error and current.next_action == "backoff"
    # Backoff (1 minute) counted from the run's last event, an hour before `now`: already over.
    assert current.next_action_at < now - dt.timedelta(minutes=30)
