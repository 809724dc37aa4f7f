"""The embedded Dagster instance's configuration (SQLite under DAGSTER_HOME), relocatable.

`ensure_instance_config` writes `<DAGSTER_HOME>/dagster.yaml` once. It names no absolute path: the
event log's directory is relative to the instance's home (`RelocatableSqliteEventLogStorage`), so a
data directory that is copied or moved writes its events into itself, never into the original.
A dagster.yaml an older version wrote (absolute `base_dir`) is rewritten on the next CLI use.
deploy/dagster.yaml is the PostgreSQL production configuration.

Dagster imports this module when it loads the instance: keep it light (dagster only).
"""

from __future__ import annotations

from pathlib import Path

from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage
from dagster._serdes import ConfigurableClassData

MARKER = "# Written by catalog-pipelines for the embedded default"


class RelocatableSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log with `base_dir` relative to DAGSTER_HOME.

    Dagster hands a storage only its own config, not the instance's directory, so a relative
    `base_dir` is resolved against the DAGSTER_HOME variable: the directory Dagster reads this
    dagster.yaml from (`DagsterInstance.get()`, the webserver, the daemon, run workers; the CLI sets
    it). Opening the instance by path (`DagsterInstance.from_config(dir)`) needs DAGSTER_HOME set
    to that directory as well: without it this is an error, never a guess. An absolute one is kept.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(str(resolve_under_home(base_dir)), inst_data=inst_data)


def resolve_under_home(base_dir: str) -> Path:
    from catalog_pipelines.settings import Settings

    path = Path(base_dir)
    if path.is_absolute():
        return path
    settings = Settings.from_env()
    if "dagster_home" not in settings.model_fields_set:
        raise RuntimeError(f"dagster.yaml: event_log_storage.base_dir {base_dir!r} is relative to DAGSTER_HOME, which is "
                           "not set: set DAGSTER_HOME to the directory holding this dagster.yaml")
    return Path(settings.dagster_home) / path


def ensure_instance_config(home: Path) -> None:
    """Write the embedded default's dagster.yaml (SQLite storage, no telemetry), once; rewrite one
    an older catalog-pipelines wrote. A dagster.yaml someone else wrote is left alone.

    The run monitoring settings free concurrency slots held by crashed runs, which would otherwise
    block a provider whose pool allows one run at a time.
    """
    config = home / "dagster.yaml"
    if config.exists():
        text = config.read_text()
        if not text.startswith(MARKER) or text == DEFAULT_INSTANCE_YAML:
            return
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(DEFAULT_INSTANCE_YAML)


DEFAULT_INSTANCE_YAML = MARKER + """ (SQLite under DAGSTER_HOME).
# deploy/dagster.yaml is the PostgreSQL production configuration.
#
# One event-log database for all runs: Dagster's default SQLite event log creates and migrates a
# database file per run, which cost ~0.8 s of every chunk run here. Its directory is relative to
# DAGSTER_HOME (no absolute path anywhere), so a copied or moved data directory keeps its own logs.
event_log_storage:
  module: catalog_pipelines.instance
  class: RelocatableSqliteEventLogStorage
  config:
    base_dir: history
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


if __name__ == "__main__":  # `make ui`: write (or bring up to date) the instance config first
    from catalog_pipelines.settings import Settings

    ensure_instance_config(Path(Settings.from_env().dagster_home))
