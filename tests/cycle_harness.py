"""Drive provider cycles through the real sensor code against a real Dagster instance.

Each step evaluates the provider's sensor body (`tick`) at a fake time, applies the dynamic
partition requests to the instance as the daemon would, and launches the requested run in-process.
A failed run is reported to the run-failure sensor exactly as the daemon would report it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg

from catalog_pipelines.definitions import build_definitions
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.sensors.ingestion import record_run_failure, tick
from catalog_pipelines.storage.catalog import set_clock


@dataclass
class Harness:
    config: ProviderConfig
    catalog_url: str
    instance: dg.DagsterInstance
    now: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        set_clock(lambda: self.now)
        self.defs = build_definitions([self.config], catalog_url=self.catalog_url)
        self.catalog = self.defs.resources["catalog"]

    def reconfigure(self, config: ProviderConfig) -> None:
        """The source changed between cycles (same provider name, same database and instance)."""
        self.config = config
        self.__post_init__()

    def step(self) -> str:
        """One sensor tick plus the run it requested; returns what happened."""
        result = tick(self.config, self.catalog, self.instance, now=self.now)
        if isinstance(result, dg.SkipReason):
            self.skips.append(result.skip_message or "")
            return "wait"
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        (run,) = result.run_requests
        out = self.launch(run.job_name, run.partition_key, run.tags)
        if not out.success:
            return "failed"
        return "sweep" if run.job_name.endswith("_sweep_job") else "chunk"

    def launch(self, job_name: str, partition_key: str | None = None,
               tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        """Run a job in-process as the daemon would launch it (a sensor's request, or an operator's
        re-run from the UI); a failed run is reported to the run-failure sensor."""
        job = self.defs.resolve_job_def(job_name)
        out = job.execute_in_process(instance=self.instance, partition_key=partition_key, tags=tags,
                                     raise_on_error=False,
                                     run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        self.runs.append(out)
        if not out.success:
            self.report_failure(out.dagster_run)
        return out

    def report_failure(self, run: dg.DagsterRun) -> None:
        """What the run-failure sensor does with a failed run of this instance."""
        run = self.instance.get_run_by_id(run.run_id)
        (failure,) = [e.dagster_event for e in self.instance.all_logs(run.run_id) if e.dagster_event
                      and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE]
        ctx = dg.build_run_status_sensor_context(
            sensor_name="ingestion_failure_sensor", dagster_instance=self.instance,
            dagster_run=run, dagster_event=failure,
        ).for_run_failure()
        record_run_failure(ctx, self.catalog, {self.config.name: self.config})

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta

    def run_until_resting(self, max_steps: int = 500, tick_every: dt.timedelta = dt.timedelta(seconds=30)) -> list[str]:
        """Tick until a sweep has put a cycle to rest (a sweep that restarted the walk instead goes
        on ticking through the new walk); the clock moves `tick_every` per tick."""
        events = []
        for _ in range(max_steps):
            event = self.step()
            events.append(event)
            if event == "sweep" and self.catalog.ledger().history(self.config.name, limit=1)[0].sweep_outcome is not None:
                return events
            self.advance(tick_every)
        raise AssertionError(f"cycle did not finish in {max_steps} ticks: {events[-20:]} {self.skips[-3:]}")
