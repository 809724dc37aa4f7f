"""In-process materialisation against the persistent instance, for the CLI, the demo and the benchmarks.

- `run_cycle`: one ingestion cycle (`catalog-pipelines ingest`, the demo, the benchmarks): every
  chunk is a real run of the chunk asset's partition, recorded in DAGSTER_HOME and visible in the
  web UI. The sensor-driven door (catalog_pipelines/sensors) requests the same runs through the daemon.
- `materialize_snapshot`, `materialize_insights` (every insight asset downstream of the catalog
  snapshot, the demo's one command), `materialize_waves` (`surveys load`), `materialize_usage`
  (`usage refresh`): the same runs that sensors, schedules and automation launch.

Nothing in the code location imports this module (it imports the Definitions, lazily).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg

from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.instance import ensure_instance_config
from catalog_pipelines.jobs import INSIGHTS_JOB, SURVEY_RESPONSES_JOB, USAGE_DAYS_JOB, chunk_job_name, insight_selection, sweep_job_name
from catalog_pipelines.partitions import chunk_partitions, chunk_run, cycle_run_tags
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings


@dataclass
class CycleReport:
    provider: str
    cycle: int
    chunks: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    sweep: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    partitions_added: int = 0
    walk_restarts: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class CycleFailed(RuntimeError):
    """A run of the provider's cycle failed. The ledger has recorded it as the run-failure sensor
    would (attempts, last error, next retry); `cause` is the root cause, not Dagster's wrapper."""

    def __init__(self, provider: str, cause: str, *, attempts: int | None = None,
                 next_retry_at: Any = None, report: CycleReport | None = None):
        self.provider, self.cause, self.attempts, self.next_retry_at, self.report = (
            provider, cause, attempts, next_retry_at, report)
        super().__init__(f"{provider}: {cause}")


def instance_from_env() -> dg.DagsterInstance:
    """The persistent instance under DAGSTER_HOME (defaulting into the data directory)."""
    settings = Settings.from_env()
    settings.ensure_dirs()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    ensure_instance_config(Path(settings.dagster_home))
    return dg.DagsterInstance.get()


def cycle_definitions(configs: list[ProviderConfig]) -> dg.Definitions:
    """The Definitions for running these providers' cycles (the CLI's `ingest` and `demo`)."""
    from catalog_pipelines.definitions import build_definitions

    return build_definitions(configs)


def latest_materialization_times(names: list[str]) -> dict[str, Any]:
    """When each asset (by user string) was last materialised in the instance of DAGSTER_HOME."""
    from catalog_pipelines.assets.dashboards import latest_materializations

    return latest_materializations(instance_from_env(), names)


# Dagster's console logger prints every event at DEBUG, and a step failure with its traceback at
# ERROR; the CLI shows its own progress and one line per failed provider instead (the traceback
# stays in the run's event log: `dagster` UI, run logs).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    events = result.get_asset_materialization_events()
    if not events:
        return {}
    meta = events[-1].materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def run_cycle(
    defs: dg.Definitions,
    config: ProviderConfig,
    instance: dg.DagsterInstance,
    *,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    max_chunks: int | None = None,
) -> CycleReport:
    """Run (or resume) one full cycle of `config`'s provider: every chunk, then the sweep.

    A walk the sweep finds incomplete is restarted from the first page in a new cycle (at most
    `cycle.MAX_WALK_RESTARTS` times; then the sweep decides without restarting): the report is the
    last cycle's, with `walk_restarts` saying how many walks were abandoned on the way.

    A failed run raises CycleFailed after recording the failure in the ledger exactly as the
    run-failure sensor does for daemon runs (ingestion/cycle.py: record_failure), so `admin status`
    and the sensor's backoff see it whichever door ran the cycle. (A walk restarted by a chunk, for
    a cursor loop say, is such a failure: the provider backs off before walking again.)
    """
    from catalog_pipelines.ingestion.cycle import MAX_WALK_RESTARTS, WALK_RESTARTED

    started = time.perf_counter()
    restarts = 0
    while True:
        report = _run_one_cycle(defs, config, instance, on_chunk=on_chunk, max_chunks=max_chunks)
        if report.sweep.get("outcome") != WALK_RESTARTED or restarts > MAX_WALK_RESTARTS:
            break
        restarts += 1
    report.walk_restarts = restarts
    report.seconds = time.perf_counter() - started
    return report


def _run_one_cycle(
    defs: dg.Definitions,
    config: ProviderConfig,
    instance: dg.DagsterInstance,
    *,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    max_chunks: int | None = None,
) -> CycleReport:
    from catalog_pipelines.ingestion.cycle import begin_cycle

    catalog = defs.resources["catalog"]
    ledger = catalog.ledger()
    started = time.perf_counter()
    pos = begin_cycle(ledger, config.name)
    report = CycleReport(provider=config.name, cycle=pos.ingestion.cycle)
    partitions = chunk_partitions(config.name)
    chunk_job = defs.resolve_job_def(chunk_job_name(config.name))

    def execute(job: dg.JobDefinition, key: str | None = None, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        # The same tags as the sensor's runs: the Runs page filters a cycle by `catalog/cycle`.
        result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET_RUN_CONFIG,
                                        tags=tags or cycle_run_tags(config.name, report.cycle))
        if not result.success:
            report.seconds = time.perf_counter() - started
            raise _cycle_failed(catalog, config, result, report)
        return result

    sequence = pos.next_sequence
    done = pos.needs_sweep
    while not done:
        count = config.options.chunks_per_run
        if max_chunks is not None:
            if report.chunks >= max_chunks:
                break
            count = min(count, max_chunks - report.chunks)
        keys, key, tags = chunk_run(config.name, report.cycle, sequence, count)
        missing = [k for k in keys if not instance.has_dynamic_partition(partitions.name, k)]
        if missing:
            instance.add_dynamic_partitions(partitions.name, missing)
            report.partitions_added += len(missing)
        written = _chunk_metadata(execute(chunk_job, key, tags))
        for meta in written:
            report.chunks += 1
            for k in ("added", "changed", "unchanged", "rejected"):
                setattr(report, k, getattr(report, k) + int(meta.get(k, 0)))
            if on_chunk:
                on_chunk(meta)
            done = bool(meta.get("done"))
            sequence = int(meta["sequence"]) + 1
        if not written:  # nothing left to write in this run (a run's first chunk always runs otherwise)
            break
    if done:
        report.sweep = _materialization_metadata(execute(defs.resolve_job_def(sweep_job_name(config.name))))
    report.seconds = time.perf_counter() - started
    return report


def _chunk_metadata(result: dg.ExecuteInProcessResult) -> list[dict[str, Any]]:
    """The metadata of every chunk a chunk run committed, in order (one per partition it wrote)."""
    return [{k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()]


def _cycle_failed(catalog: Any, config: ProviderConfig, result: dg.ExecuteInProcessResult,
                  report: CycleReport) -> CycleFailed:
    """Record a failed one-shot run in the ledger (unless the chunk was refused) and describe it."""
    from catalog_pipelines.assets.ingestion import failure_text, run_failure_cause
    from catalog_pipelines.ingestion.cycle import record_failure

    failure = result.get_run_failure_event()
    cause, refused = run_failure_cause(result.get_step_failure_events(),
                                       (failure.message if failure else None) or "run failed")
    ledger = catalog.ledger()
    if not refused:
        record_failure(ledger, config.name, config.options, failure_text(result.run_id, cause))
    current = ledger.open_ingestion(config.name)
    return CycleFailed(config.name, cause, report=report,
                       attempts=current.attempts if current else None,
                       next_retry_at=current.next_action_at if current and not refused else None)


def step_windows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, float, float, str]]:
    """(step key, start, end, Celery worker or "") of every step of a run, from the event log
    (STEP_START / STEP_SUCCESS times; the worker's node name from the Celery executor's engine
    event), ordered by start: what the benchmarks print and the scale-out tests check."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    workers: dict[str, str] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ends[event.step_key] = record.timestamp
        elif event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.engine_event_data:
            worker = event.engine_event_data.metadata.get("Celery worker")
            if worker is not None:
                workers[event.step_key] = str(getattr(worker, "value", worker))
    return [(key, start, ends.get(key, start), workers.get(key, "")) for key, start in sorted(starts.items(), key=lambda kv: kv[1])]


def materialize_snapshot(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, Any]:
    result = defs.resolve_job_def("catalog_snapshot_job").execute_in_process(instance=instance, raise_on_error=True, run_config=QUIET_RUN_CONFIG)
    return _materialization_metadata(result)


# The demo's synthetic people have no skill profiles: let the skills exchange make up seeded ones.
DEMO_RUN_CONFIG = {"ops": {"skills_exchange": {"config": {"synthetic_profiles": True}}}}


def materialize_insights(quiet: bool = False, demo: bool = False) -> list[str]:
    """Materialise every insight asset downstream of the catalog snapshot, in-process (`insights_job`).

    Used by the demo so that one command leaves dashboards-ready data behind. Partitioned insight
    assets are materialised for each of their partitions that has input data.
    """
    from catalog_pipelines.definitions import defs

    keys = insight_selection().resolve(defs.resolve_asset_graph())
    if not keys:
        return []
    instance = instance_from_env()
    run_config = {**QUIET_RUN_CONFIG, **(DEMO_RUN_CONFIG if demo else {})}
    if not demo:
        defs.resolve_job_def(INSIGHTS_JOB).execute_in_process(instance=instance, raise_on_error=True, run_config=run_config)
        return sorted(k.to_user_string() for k in keys)
    # The demo's report files first: no dependency edge ties the collectors to a demo asset
    # (production never runs it), so the demo orders them here.
    from catalog_pipelines.assets.facts import synthetic_fact_sources
    from catalog_pipelines.services.facts import DEMO_VENDORS, demo_vendor_pages, write_demo_collectors_config
    from catalog_pipelines.settings import environment
    from catalog_pipelines.web.replay import serve_replay

    resource = CatalogDatabase()
    dg.materialize([synthetic_fact_sources], instance=instance, resources={"catalog": resource}, run_config=QUIET_RUN_CONFIG)
    # The API collectors read vendor-shaped pages served on loopback for as long as the job runs,
    # through a collectors.yaml that points them there (the real collectors, real HTTP).
    pages, entities = demo_vendor_pages(resource.get_engine())
    with serve_replay(pages) as replay:
        config = write_demo_collectors_config(entities, {v: replay.base_url(v) for v in DEMO_VENDORS}, pages=pages)
        with environment(CATALOG_PIPELINES_COLLECTORS=str(config)):
            defs.resolve_job_def(INSIGHTS_JOB).execute_in_process(instance=instance, raise_on_error=True, run_config=run_config)
            # The delivery events the collectors stored: their days closed (a backfill), then what
            # reads the closed days computed again.
            from catalog_pipelines.assets.delivery import DELIVERY_EVENTS_DAILY

            materialize_delivery_days(instance)
            after = (dg.AssetSelection.keys(DELIVERY_EVENTS_DAILY).downstream() - dg.AssetSelection.keys(DELIVERY_EVENTS_DAILY)
                     ).resolve(defs.resolve_asset_graph()) & keys
            if after:
                defs.resolve_job_def(INSIGHTS_JOB).execute_in_process(instance=instance, raise_on_error=True, run_config=run_config,
                                                                      asset_selection=sorted(after))
    return sorted(k.to_user_string() for k in keys)


def failed_checks(instance: dg.DagsterInstance | None = None) -> list[dict[str, Any]]:
    """Every asset check of the code location whose latest execution failed or errored, as
    {asset, check, severity, description, run_id}: what the demo's last lines list."""
    from catalog_pipelines.definitions import defs
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    instance = instance or instance_from_env()
    graph = defs.resolve_asset_graph()
    keys = list(graph.asset_check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key, record in sorted(latest.items(), key=lambda item: (item[0].asset_key.to_user_string(), item[0].name)):
        evaluation = record.evaluation
        failed = record.status == Status.FAILED or (evaluation is not None and not evaluation.passed)
        if failed:
            out.append({
                "asset": key.asset_key.to_user_string(),
                "check": key.name,
                "severity": evaluation.severity.value if evaluation is not None else "ERROR",
                # What the check found, else what it checks.
                "description": (evaluation.description if evaluation is not None else None)
                or graph.get_check_spec(key).description or "",
                "run_id": record.run_id,
            })
    return out


def materialize_waves(instance: dg.DagsterInstance, wave_ids: list[str] | None = None, catalog_url: str = "") -> dict[str, Any]:
    """Run `survey_responses` for each wave with exports, then `survey_trends`, in-process.

    For the CLI and the demo: real runs recorded in the instance, like the sensor would launch.
    """
    from catalog_pipelines.assets.surveys import survey_asset_checks, survey_assets, survey_trends
    from catalog_pipelines.services.surveys import surveys_root
    from catalog_pipelines.storage.surveys_store import export_files
    from catalog_pipelines.jobs import survey_responses_job
    from catalog_pipelines.partitions import survey_waves

    defs = dg.Definitions(
        assets=survey_assets, asset_checks=survey_asset_checks, jobs=[survey_responses_job], resources={"catalog": CatalogDatabase(url=catalog_url)}
    )
    root = surveys_root()
    waves = [w for w in (wave_ids or survey_waves.get_partition_keys()) if export_files(root, w)[0]]
    quiet = QUIET_RUN_CONFIG
    job = defs.resolve_job_def(SURVEY_RESPONSES_JOB)
    landed = {}
    for wave_id in waves:
        result = job.execute_in_process(instance=instance, partition_key=wave_id, run_config=quiet)
        meta = result.asset_materializations_for_node("survey_responses")[0].metadata
        landed[wave_id] = meta["rows_landed"].value
    trends = dg.materialize([survey_trends], instance=instance, resources={"catalog": CatalogDatabase(url=catalog_url)}, run_config=quiet)
    checks = {e.check_name: e.passed for e in trends.get_asset_check_evaluations()}
    return {"waves": landed, "checks": checks}


def materialize_usage(instance: dg.DagsterInstance, days: list[date] | None = None, catalog_url: str = "") -> dict[str, Any]:
    """Run `usage_days_job` for the given days (default: every stored day that needs it) as one
    backfill-style run, then `usage_insights`, in-process: real runs recorded in the instance.

    For the CLI and the demo, like the sensor and the automation would launch them.
    """
    from catalog_pipelines.assets.usage import usage_assets, usage_insights
    from catalog_pipelines.services.usage import raw_store, summary_store
    from catalog_pipelines.jobs import usage_days_job
    from catalog_pipelines.partitions import usage_days

    raw = raw_store()
    summarised = set(summary_store().days())
    if days is None:
        days = sorted(set(raw.pending()) | {d for d in raw.days() if d not in summarised})
    valid = set(usage_days.get_partition_keys())
    keys = sorted(d.isoformat() for d in days if d.isoformat() in valid)
    defs = dg.Definitions(assets=usage_assets, jobs=[usage_days_job], resources={"catalog": CatalogDatabase(url=catalog_url)})
    quiet = QUIET_RUN_CONFIG

    out: dict[str, Any] = {"days": keys, "skipped": sorted(d.isoformat() for d in days if d.isoformat() not in valid)}
    checks: dict[str, bool] = {}
    if keys:
        # One run over the range, as a backfill with the single-run policy would launch it; days
        # in the gaps are summarised as the empty days they are.
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        days_run = defs.resolve_job_def(USAGE_DAYS_JOB).execute_in_process(instance=instance, tags=tags, run_config=quiet)
        checks.update({e.check_name: e.passed for e in days_run.get_asset_check_evaluations()})
    result = dg.materialize([usage_insights], instance=instance, resources={"catalog": CatalogDatabase(url=catalog_url)}, run_config=quiet)
    checks.update({e.check_name: e.passed for e in result.get_asset_check_evaluations()})
    out["checks"] = checks
    return out


def materialize_delivery_days(instance: dg.DagsterInstance, since: date | None = None, until: date | None = None,
                              catalog_url: str = "") -> dict[str, Any]:
    """Close the delivery events' days `[since, until]` (default: every day holding events, up to
    yesterday) with `delivery_days_job` as one backfill-style run (a range of partitions), in-process:
    a real run recorded in the instance. For the demo and the tests, as a backfill would launch it."""
    from catalog_pipelines.assets.delivery import build_delivery_event_assets
    from catalog_pipelines.jobs import DELIVERY_DAYS_JOB, build_delivery_days_job
    from catalog_pipelines.partitions import delivery_days
    from catalog_pipelines.services.delivery import event_day_range

    resource = CatalogDatabase(url=catalog_url)
    if since is None or until is None:
        first, last = event_day_range(resource.get_engine())
        since, until = since or first, until or last
    valid = delivery_days.get_partition_keys()
    keys = [k for k in valid if since is not None and until is not None and since.isoformat() <= k <= until.isoformat()]
    out: dict[str, Any] = {"days": len(keys), "first": keys[0] if keys else None, "last": keys[-1] if keys else None}
    if not keys:
        return out
    defs = dg.Definitions(assets=build_delivery_event_assets(), jobs=[build_delivery_days_job()], resources={"catalog": resource})
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    result = defs.resolve_job_def(DELIVERY_DAYS_JOB).execute_in_process(instance=instance, tags=tags, run_config=QUIET_RUN_CONFIG)
    out["checks"] = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    out["metadata"] = {k: v.value for k, v in result.asset_materializations_for_node("delivery_events_daily")[0].metadata.items()}
    return out
