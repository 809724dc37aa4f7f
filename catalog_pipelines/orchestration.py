"""Run ingestion cycles through Dagster in-process against the persistent instance.

This is the one-shot door (`catalog-pipelines ingest`, the demo, the benchmarks): every chunk is a
real run of the chunk asset's partition, recorded in DAGSTER_HOME and visible in the web UI.
The sensor-driven door (catalog_pipelines/sensors) requests the same runs through the daemon.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from catalog_pipelines.assets.ingestion import chunk_job_name, chunk_key, chunk_partitions, sweep_job_name
from catalog_pipelines.ingestion.config import ProviderConfig
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


def ensure_instance_config(home: Path) -> None:
    """Write the embedded default's dagster.yaml once (SQLite storage, no telemetry).

    The run monitoring settings free concurrency slots held by crashed runs, which would otherwise
    block a provider whose pool allows one run at a time.
    """
    config = home / "dagster.yaml"
    if not config.exists():
        home.mkdir(parents=True, exist_ok=True)
        config.write_text(DEFAULT_INSTANCE_YAML.format(history=(home / "history").resolve()))


DEFAULT_INSTANCE_YAML = """\
# Written by catalog-pipelines for the embedded default (SQLite under DAGSTER_HOME).
# deploy/dagster.yaml is the PostgreSQL production configuration.
#
# One event-log database for all runs: Dagster's default SQLite event log creates and migrates a
# database file per run, which cost ~0.8 s of every chunk run here.
event_log_storage:
  module: dagster._core.storage.event_log
  class: ConsolidatedSqliteEventLogStorage
  config:
    base_dir: {history}
telemetry:
  enabled: false
# Sensor-driven chunks are sequential (each resumes from the previous chunk's cursor), so the
# queue's default 5 s dequeue interval would add up to 5 s to every chunk of a cycle.
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
# Run monitoring (in `dagster-daemon`) fails runs that never start, and cancels then fails runs
# past max_runtime_seconds: the default launcher cannot check a run worker's health, so a run whose
# worker was killed stays STARTED until then. The ingestion sensors fail their own dead runs sooner
# (`run_stale_after`, an hour without an event). Six hours leaves room for the slowest insight run.
run_monitoring:
  enabled: true
  max_runtime_seconds: 21600
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 30
concurrency:
  runs:
    # At most one queued run per provider at a time (the sensors tag runs with their provider).
    tag_concurrency_limits:
      - key: catalog/provider
        value:
          applyLimitPerUniqueValue: true
        limit: 1
"""


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

    def execute(job: dg.JobDefinition, key: str | None = None) -> dg.ExecuteInProcessResult:
        result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False, run_config=QUIET_RUN_CONFIG)
        if not result.success:
            report.seconds = time.perf_counter() - started
            raise _cycle_failed(catalog, config, result, report)
        return result

    sequence = pos.next_sequence
    done = pos.needs_sweep
    while not done:
        if max_chunks is not None and report.chunks >= max_chunks:
            break
        key = chunk_key(sequence)
        if not instance.has_dynamic_partition(partitions.name, key):
            instance.add_dynamic_partitions(partitions.name, [key])
            report.partitions_added += 1
        meta = _materialization_metadata(execute(chunk_job, key))
        report.chunks += 1
        for k in ("added", "changed", "unchanged", "rejected"):
            setattr(report, k, getattr(report, k) + int(meta.get(k, 0)))
        if on_chunk:
            on_chunk(meta)
        done = bool(meta.get("done"))
        sequence += 1
    if done:
        report.sweep = _materialization_metadata(execute(defs.resolve_job_def(sweep_job_name(config.name))))
    report.seconds = time.perf_counter() - started
    return report


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


def materialize_snapshot(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[str, Any]:
    result = defs.resolve_job_def("catalog_snapshot_job").execute_in_process(instance=instance, raise_on_error=True, run_config=QUIET_RUN_CONFIG)
    return _materialization_metadata(result)
