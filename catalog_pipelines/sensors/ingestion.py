"""Sensors that drive ingestion cycles through the Dagster daemon (health checks: assets/ingestion.py).

Each tick reads the ledger, asks the pure state machine (ingestion/engine.py) what to do, applies its
ledger updates and requests at most one run: the next chunk partition or the sweep. Failures are
fed back by the run-failure sensor so the state machine backs off. One run per provider at a time is
enforced twice: the sensor waits while the provider has a queued or running run, and the run queue
limits the `catalog/provider` tag to 1 per value (dagster.yaml). A run whose worker died does not
count: the sensor fails it after `run_stale_after` without a sign of life (provider_run_in_progress).
"""

import datetime as dt

import dagster as dg

from catalog_pipelines.assets.ingestion import failure_text, run_failure_cause
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.jobs import chunk_job_name, sweep_job_name
from catalog_pipelines.partitions import PROVIDER_TAG, chunk_partitions, chunk_run, cycle_run_tags
from catalog_pipelines.resources import CatalogDatabase

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def next_cron_tick(cron: str, after: dt.datetime) -> dt.datetime:
    from dagster._utils.schedules import cron_string_iterator

    return next(cron_string_iterator(after.timestamp(), cron, "UTC"))


# Set on a run the ingestion sensor found dead and failed (its failure is then in the ledger already).
DEAD_RUN_TAG = "catalog/dead_run"


def last_activity(instance: dg.DagsterInstance, record: dg.RunRecord) -> dt.datetime:
    """When the run last showed a sign of life: its newest event, status change or start."""
    stamps = [record.update_timestamp.timestamp(), record.start_time or 0.0]
    latest = instance.get_records_for_run(record.dagster_run.run_id, limit=1, ascending=False).records
    if latest:
        stamps.append(latest[0].event_log_entry.timestamp)
    return dt.datetime.fromtimestamp(max(stamps), dt.timezone.utc)


def recover_dead_run(instance: dg.DagsterInstance, catalog: CatalogDatabase, config: ProviderConfig,
                     record: dg.RunRecord, seen: dt.datetime, now: dt.datetime, log=None) -> str:
    """Fail a run whose worker is gone, record it like any failed run, and audit it; returns why.

    The ledger counts it as a failed attempt whose backoff started when the run went silent, so a
    run that died long ago does not delay the cycle now. The run-failure sensor skips it (tag).
    """
    from catalog_pipelines.ingestion.cycle import record_failure
    from catalog_pipelines.storage.audit import record as audit

    run = record.dagster_run
    reason = (
        f"run {run.run_id} ({run.status.value}) has logged nothing since {seen.isoformat(timespec='seconds')}, "
        f"longer than run_stale_after ({config.options.run_stale_after}): its worker is gone; "
        f"marked failed by the {config.name} ingestion sensor"
    )
    instance.add_run_tags(run.run_id, {DEAD_RUN_TAG: "failed by the ingestion sensor"})
    instance.report_run_failed(run, reason)
    record_failure(catalog.ledger(), config.name, config.options, reason, now=seen)
    audit(catalog.get_engine(), actor=f"sensor:{config.name}_ingestion_sensor", action="ingestion.recover_dead_run",
          target=f"provider:{config.name}", outcome="success",
          details={"run_id": run.run_id, "status": run.status.value, "last_activity": seen.isoformat(),
                   "reason": reason}, at=now)
    if log is not None:
        log.warning(reason)
    return reason


def provider_run_in_progress(instance: dg.DagsterInstance, provider: str, *, config: ProviderConfig | None = None,
                             catalog: CatalogDatabase | None = None, now: dt.datetime | None = None,
                             log=None) -> bool:
    """True while the provider has a live queued or running run.

    Given its config and catalog, a run that is not queued and has shown no sign of life for
    `run_stale_after` is dead (kill -9 of its worker or of `catalog-pipelines ingest`: Dagster's run
    monitoring cannot check an in-process worker's health): it is failed and does not count.
    Queued runs always count: they wait for a slot, not for a worker.
    """
    records = instance.get_run_records(filters=dg.RunsFilter(tags={PROVIDER_TAG: provider}, statuses=ACTIVE_STATUSES))
    if config is None or catalog is None:
        return bool(records)
    from catalog_pipelines.storage.catalog import utcnow

    now = now or utcnow()
    alive = False
    for record in records:
        if record.dagster_run.status == dg.DagsterRunStatus.QUEUED:
            alive = True
            continue
        seen = last_activity(instance, record)
        if now - seen < config.options.run_stale_after:
            alive = True
            continue
        recover_dead_run(instance, catalog, config, record, seen, now, log)
    return alive


def tick(config: ProviderConfig, catalog: CatalogDatabase, instance: dg.DagsterInstance,
         now: dt.datetime | None = None, log=None) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of a provider's cycle: the body of its sensor, callable from tests."""
    from catalog_pipelines.ingestion.cycle import snapshot
    from catalog_pipelines.ingestion.engine import BURSTING, INGEST, decide
    from catalog_pipelines.storage.catalog import utcnow

    name = config.name
    now = now or utcnow()
    ledger = catalog.ledger()
    busy = provider_run_in_progress(instance, name, config=config, catalog=catalog, now=now, log=log)
    snap = snapshot(ledger, name, run_in_progress=busy)
    decision = decide(snap, config.options, now, next_cron_tick)
    current = ledger.open_ingestion(name)

    if decision.action == "start_cycle":
        if current is not None and decision.close_current is not None:
            ledger.close(current.id, **decision.close_current)
            ledger.clear_marks(name, keep_cycles=3)
        current = ledger.start_cycle(name, status=BURSTING, next_action=INGEST, next_action_at=now)
        ledger.update(current.id, burst_started_at=now)
        current = ledger.get(current.id)
    elif decision.updates and current is not None:
        ledger.update(current.id, **decision.updates)

    if decision.action == "wait":
        return dg.SkipReason(f"{name}: {decision.reason}")
    assert current is not None
    attempt = current.attempts
    if decision.action == "run_sweep":
        return dg.SensorResult(run_requests=[dg.RunRequest(
            job_name=sweep_job_name(name),
            run_key=f"{name}:{current.id}:sweep:{attempt}",
            tags=cycle_run_tags(name, current.cycle),
        )])
    keys, key, tags = chunk_run(name, current.cycle, decision.sequence or 0, config.options.chunks_per_run)
    partitions = chunk_partitions(name)
    missing = [k for k in keys if not instance.has_dynamic_partition(partitions.name, k)]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            job_name=chunk_job_name(name),
            partition_key=key,
            run_key=f"{name}:{current.id}:{keys[0]}:{attempt}",
            tags=tags,
        )],
        dynamic_partitions_requests=[partitions.build_add_request(missing)] if missing else [],
    )


def build_ingestion_sensor(config: ProviderConfig, jobs: list) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{config.name}_ingestion_sensor",
        minimum_interval_seconds=config.options.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=jobs,
        description=(
            f"Drives `{config.name}` ingestion cycles: requests the next chunk partition, the sweep at the "
            "end, and honours bursts, rests, backoff, pause and halt (ledger-driven state machine)."
        ),
    )
    def ingestion_sensor(context: dg.SensorEvaluationContext, catalog: CatalogDatabase):
        return tick(config, catalog, context.instance, log=context.log)

    return ingestion_sensor


def build_failure_sensor(configs: list[ProviderConfig], jobs: list) -> dg.SensorDefinition:
    by_name = {c.name: c for c in configs}

    @dg.run_failure_sensor(
        name="ingestion_failure_sensor",
        monitored_jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records failed chunk/sweep runs in the ledger so the provider backs off (with the full error).",
    )
    def ingestion_failure_sensor(context: dg.RunFailureSensorContext, catalog: CatalogDatabase):
        record_run_failure(context, catalog, by_name)

    return ingestion_failure_sensor


def record_run_failure(context: dg.RunFailureSensorContext, catalog: CatalogDatabase,
                       configs: dict[str, ProviderConfig]) -> None:
    from catalog_pipelines.ingestion.cycle import record_failure

    run = context.dagster_run
    provider = run.tags.get(PROVIDER_TAG)
    if provider not in configs or DEAD_RUN_TAG in run.tags:
        return  # not ours, or a dead run whose failure the ingestion sensor recorded already
    cause, refused = run_failure_cause(context.get_step_failure_events(),
                                       context.failure_event.message or "run failed")
    if refused:
        return  # a refused chunk (say, a manual re-run that would lose marks): the source is fine
    record_failure(catalog.ledger(), provider, configs[provider].options, failure_text(run.run_id, cause))
