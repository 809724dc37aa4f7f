"""Sensors that drive ingestion cycles through the Dagster daemon, and per-provider health checks.

Each tick reads the ledger, asks the pure state machine (ingestion/engine.py) what to do, applies its
ledger updates and requests at most one run: the next chunk partition or the sweep. Failures are
fed back by the run-failure sensor so the state machine backs off. One run per provider at a time is
enforced twice: the sensor waits while the provider has a queued or running run, and the run queue
limits the `catalog/provider` tag to 1 per value (dagster.yaml).
"""

import datetime as dt

import dagster as dg

from catalog_pipelines.assets.ingestion import (
    chunk_job_name, chunk_key, chunk_partitions, sweep_asset_key, sweep_job_name,
)
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.resources import CatalogDatabase

PROVIDER_TAG = "catalog/provider"
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


def provider_run_in_progress(instance: dg.DagsterInstance, provider: str) -> bool:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(tags={PROVIDER_TAG: provider}, statuses=ACTIVE_STATUSES), limit=1
    )
    return bool(runs)


def tick(config: ProviderConfig, catalog: CatalogDatabase, instance: dg.DagsterInstance,
         now: dt.datetime | None = None) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of a provider's cycle: the body of its sensor, callable from tests."""
    from catalog_pipelines.ingestion.cycle import snapshot
    from catalog_pipelines.ingestion.engine import BURSTING, INGEST, decide
    from catalog_pipelines.storage.catalog import utcnow

    name = config.name
    now = now or utcnow()
    ledger = catalog.ledger()
    snap = snapshot(ledger, name, run_in_progress=provider_run_in_progress(instance, name))
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
            tags={PROVIDER_TAG: name, "catalog/cycle": str(current.cycle)},
        )])
    key = chunk_key(decision.sequence or 0)
    partitions = chunk_partitions(name)
    add = [] if instance.has_dynamic_partition(partitions.name, key) else [partitions.build_add_request([key])]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            job_name=chunk_job_name(name),
            partition_key=key,
            run_key=f"{name}:{current.id}:{key}:{attempt}",
            tags={PROVIDER_TAG: name, "catalog/cycle": str(current.cycle)},
        )],
        dynamic_partitions_requests=add,
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
        return tick(config, catalog, context.instance)

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

    provider = context.dagster_run.tags.get(PROVIDER_TAG)
    if provider not in configs:
        return
    errors = []
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        errors.append(data.error.to_string() if data and data.error else event.message or "step failed")
    text = "\n".join(errors) or (context.failure_event.message or "run failed")
    record_failure(catalog.ledger(), provider, configs[provider].options, f"run {context.dagster_run.run_id}: {text}")


def build_health_check(config: ProviderConfig) -> dg.AssetChecksDefinition:
    name = config.name

    @dg.asset_check(
        asset=sweep_asset_key(name),
        name="provider_health",
        description=(
            f"Health of provider `{name}`: fails when it is backing off past its schedule or a guard "
            "blocked its removal sweep. Metadata: state, attempts, last error, next action, entities "
            "owned, last cycle duration and throughput."
        ),
    )
    def provider_health(catalog: CatalogDatabase) -> dg.AssetCheckResult:
        from catalog_pipelines.ingestion.health import provider_health_report

        report = provider_health_report(catalog.ledger(), catalog.store(), config)
        return dg.AssetCheckResult(
            passed=report["healthy"],
            severity=dg.AssetCheckSeverity.ERROR,
            description=report["reason"],
            metadata={k: (dg.MetadataValue.text(str(v)) if v is not None else dg.MetadataValue.text("-"))
                      for k, v in report.items() if k != "healthy"},
        )

    return provider_health


def build_health_schedule(configs: list[ProviderConfig]) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="provider_health_schedule",
        cron_schedule="*/5 * * * *",
        target=dg.AssetSelection.checks_for_assets(*[sweep_asset_key(c.name) for c in configs]),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-evaluates every provider's health check every five minutes.",
    )


