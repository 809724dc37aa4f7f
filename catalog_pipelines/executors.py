"""Which executor runs the ingestion and insight jobs: their own default, or Celery workers.

`CATALOG_PIPELINES_EXECUTOR` picks it when the code location is imported (by the webserver, the
daemon, every run worker and every Celery worker alike, so all of them must share it):

- unset or `default`: each job keeps the executor it was defined with (in-process for ingestion,
  where a chunk is one step and a subprocess per step would cost more than the chunk);
- `celery`: every step is sent to a Celery queue and runs on whichever `dagster-celery` worker takes
  it, so the chunks of different providers and independent insight assets run on as many machines
  as there are workers. Needs the `production` extra (dagster-celery) and the broker and result
  backend URLs in `CATALOG_PIPELINES_CELERY_BROKER` / `CATALOG_PIPELINES_CELERY_BACKEND`; the
  workers read the same variables through `deploy/celery/celery.yaml`.

Celery is imported only when selected: the default code location never loads it.

`execute_in_process` (the CLI's `ingest`, the demo, tests) always runs in-process whatever is set
here; the executor applies to runs launched through the run queue (sensors, schedules, the UI).
"""

from __future__ import annotations


import dagster as dg

from catalog_pipelines.settings import Settings

EXECUTOR_ENV = "CATALOG_PIPELINES_EXECUTOR"
BROKER_ENV = "CATALOG_PIPELINES_CELERY_BROKER"
BACKEND_ENV = "CATALOG_PIPELINES_CELERY_BACKEND"
EXECUTORS = ("default", "celery")

# Celery settings that the executor (which sends the tasks) and the workers (deploy/celery/celery.yaml,
# which run them) must agree on; tests/dagster/test_production_celery.py checks that they do.
CELERY_CONFIG_SOURCE = {
    # A worker holds one step at a time, so that two providers' chunks queued together go to two
    # workers instead of both waiting on the first worker that prefetched them. The multiplier alone
    # is not enough: with Celery's default early acknowledgement a busy worker acks the step it is
    # running and reserves the next one too (this made the parallel-providers test flaky). Acking
    # late keeps the running step unacknowledged, so a busy worker reserves nothing; as a bonus a
    # step whose worker dies is redelivered instead of lost (a chunk write is one transaction, so
    # running it again is safe).
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    "broker_connection_retry_on_startup": True,
}


class ExecutorConfigError(ValueError):
    """The executor environment variables are missing or wrong; the message says which."""


def selected_executor() -> str:
    value = (Settings.from_env().executor or "default").strip().lower().replace("-", "_")
    if value in ("", "in_process"):
        # "in_process" reads naturally but would force multi-step jobs in-process too; it means
        # "what the job was defined with", which is in-process for every ingestion job.
        return "default"
    if value not in EXECUTORS:
        raise ExecutorConfigError(f"{EXECUTOR_ENV}={value!r}: expected one of {', '.join(EXECUTORS)}")
    return value


def job_executor(default: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """The executor for a job whose own choice is `default`, as the environment selects."""
    if selected_executor() == "celery":
        return celery_executor()
    return default


def celery_executor() -> dg.ExecutorDefinition:
    """`dagster_celery.celery_executor` bound to the broker and backend from the environment."""
    settings = Settings.from_env()
    missing = [name for name, value in ((BROKER_ENV, settings.celery_broker), (BACKEND_ENV, settings.celery_backend)) if not value]
    if missing:
        raise ExecutorConfigError(
            f"{EXECUTOR_ENV}=celery needs {' and '.join(missing)} (e.g. pyamqp://user:password@host:5672// "
            "and rpc://, or redis://host:6379/0 for both); the Celery workers must use the same values"
        )
    try:
        from dagster_celery import celery_executor as base
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ExecutorConfigError(
            f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install 'catalog-pipelines[production]'"
        ) from exc
    # Env sources, not values: the URLs (with their passwords) stay in the environment of each
    # process; the code location only names the variables.
    return base.configured(
        {
            "broker": {"env": BROKER_ENV},
            "backend": {"env": BACKEND_ENV},
            "config_source": dict(CELERY_CONFIG_SOURCE),
        },
        name="celery",
    )
