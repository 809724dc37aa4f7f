"""The production Dagster instance: deploy/dagster.yaml on PostgreSQL, configured from the environment.

Protects: Dagster's run, event-log and schedule storage really land in PostgreSQL through the
explicit psycopg2 scheme (with psycopg 3 installed beside it), chunk runs work against that
instance, the production run queue and run monitoring match the embedded default's, every
environment variable the deploy files read is documented, and the default code location never
imports Celery.

The fixtures `dagster_pg_database` and `production_dagster_home` live in conftest.py (the whole suite's
PostgreSQL runs use them); `production_env`, `production_home` and `production_instance` in helpers.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from helpers import REPO_ROOT, production_env, production_home, production_instance

REPO = REPO_ROOT
DEPLOY = REPO / "deploy"
PRODUCTION_YAML = DEPLOY / "dagster.yaml"
ENV_EXAMPLE = DEPLOY / "dagster.env.example"
DOCS = REPO / "docs" / "production.md"
ENV_SOURCE = re.compile(r"\{env:\s*([A-Z][A-Z0-9_]*)\s*\}")


# ##### HELPERS (shared with the other test_production_* modules)


def require(module: str) -> None:
    """The production extra must be installed: CI fails without it, a developer's run skips."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        message = f"{module} is missing: pip install -e '.[production]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def env_names(path: Path) -> set[str]:
    """Every `{env: NAME}` a Dagster YAML file reads (comments aside)."""
    lines = (line.split("#", 1)[0] for line in path.read_text().splitlines())
    return set(ENV_SOURCE.findall("\n".join(lines)))


def source_refs(config) -> set[str]:
    """The refs a provider's source holds that pass validation: what one full cycle must store."""
    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import ProcessedEntity

    provider, refs, cursor = config.build(), set(), None
    with provider.around():
        while True:
            page = provider.next(cursor)
            for raw in page.entities:
                outcome = process_entity(raw)
                if isinstance(outcome, ProcessedEntity):
                    refs.add(outcome.ref)
            if page.done:
                return refs
            cursor = page.cursor


def write_providers(path: Path, providers: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"providers": providers}, sort_keys=False))
    return path


EXAMPLES_ROOTS = [str(REPO / "tests/data/backstage-examples/all.yaml"), str(REPO / "tests/data/backstage-examples/acme-corp.yaml")]


# ##### TESTS


@pytest.mark.postgres
def test_production_instance_stores_runs_events_and_schedules_in_postgres(production_dagster_home):
    _, env = production_dagster_home
    with production_instance(env) as instance:
        info = instance.info_dict()
        assert type(instance.run_storage).__name__ == "PostgresRunStorage", info
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage", info
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage", info
        # Explicit psycopg2: a bare postgresql:// would load psycopg 3 under SQLAlchemy 2.1.
        assert instance.run_storage._engine.url.drivername == "postgresql+psycopg2"
        assert instance.run_storage._engine.url.database == env["DAGSTER_PG_DB"]
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4


@pytest.mark.postgres
def test_chunk_runs_on_the_production_instance_are_recorded_in_postgres(production_dagster_home, postgres_url, tmp_path, monkeypatch):
    from catalog_pipelines.assets.ingestion import chunk_asset_key
    from catalog_pipelines.partitions import chunk_partitions
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import load_providers
    from catalog_pipelines.runs import run_cycle

    _, env = production_dagster_home
    providers = write_providers(tmp_path / "providers.yaml", [
        {"name": "pg_examples", "type": "files", "roots": EXAMPLES_ROOTS, "options": {"chunk_size": 40}},
    ])
    (config,) = load_providers(providers)
    defs = build_definitions([config], catalog_url=postgres_url)
    with production_instance(env) as instance:
        report = run_cycle(defs, config, instance)
        keys = instance.get_dynamic_partitions(chunk_partitions("pg_examples").name)
        materialized = instance.get_materialized_partitions(chunk_asset_key("pg_examples"))
        runs = instance.get_run_records(dg.RunsFilter(tags={"catalog/provider": "pg_examples"}))

    assert report.chunks >= 2 and report.sweep["outcome"] == "nothing-to-remove"
    assert report.added == len(source_refs(config))
    assert set(keys) == set(materialized) and len(keys) == report.chunks
    # Every chunk run plus the sweep, all successful, all in PostgreSQL.
    assert len(runs) == report.chunks + 1
    assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}


@pytest.mark.postgres
def test_production_run_queue_and_monitoring_match_the_embedded_instance(production_dagster_home, tmp_path, monkeypatch):
    from catalog_pipelines.runs import ensure_instance_config

    _, env = production_dagster_home
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "embedded"))  # the embedded event log is relative to it
    ensure_instance_config(tmp_path / "embedded")
    embedded = dg.DagsterInstance.from_config(str(tmp_path / "embedded"))
    with production_instance(env) as production:
        ours, theirs = production.get_concurrency_config(), embedded.get_concurrency_config()
        assert ours.run_queue_config.tag_concurrency_limits == theirs.run_queue_config.tag_concurrency_limits
        assert ours.run_queue_config.tag_concurrency_limits == [
            {"key": "catalog/provider", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        for setting in ("enabled", "free_slots_after_run_end_seconds", "max_runtime_seconds", "poll_interval_seconds"):
            assert production.run_monitoring_settings[setting] == embedded.run_monitoring_settings[setting], setting
        assert production.run_monitoring_enabled
        # A run whose worker was killed (STARTED for ever: the default launcher has no health check)
        # is cancelled and failed after this long, freeing its provider's slot.
        assert 0 < production.run_monitoring_max_runtime_seconds == embedded.run_monitoring_max_runtime_seconds
        # Crashed runs are retried; failed assets are not (their RetryPolicy and the ledger's backoff
        # handle them, and a run retry would reset the op retry count).
        assert production.run_retries_enabled and production.run_retries_max_retries >= 1
        assert production.run_retries_retry_on_asset_or_op_failure is False
    embedded.dispose()


def test_the_embedded_instance_monitors_runs_and_ends_those_past_a_max_runtime(tmp_path, monkeypatch):
    """kill -9 of a run worker leaves its run STARTED; the default launcher has no health check, so
    without a max runtime run monitoring would never end it (and its provider's slot stays taken)."""
    from catalog_pipelines.runs import ensure_instance_config

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "embedded"))  # the embedded event log is relative to it
    ensure_instance_config(tmp_path / "embedded")
    embedded = dg.DagsterInstance.from_config(str(tmp_path / "embedded"))
    try:
        assert embedded.run_monitoring_enabled
        assert 3600 <= embedded.run_monitoring_max_runtime_seconds <= 86400
        assert embedded.run_monitoring_settings["poll_interval_seconds"] <= 120
    finally:
        embedded.dispose()


def test_production_instance_names_the_missing_environment_variable(tmp_path, monkeypatch):
    home = production_home(tmp_path / "home")
    env = production_env("postgresql+psycopg://postgres@127.0.0.1:5432/nowhere", home)
    del env["DAGSTER_PG_HOST"]
    monkeypatch.delenv("DAGSTER_PG_HOST", raising=False)
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"), production_instance(env):
        pass


def test_every_environment_variable_of_the_deploy_files_is_documented():
    from catalog_pipelines import executors

    dagster_yaml = env_names(PRODUCTION_YAML)
    celery_yaml = env_names(DEPLOY / "celery" / "celery.yaml")
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"} <= dagster_yaml
    assert celery_yaml == {executors.BROKER_ENV, executors.BACKEND_ENV}
    example = ENV_EXAMPLE.read_text()
    docs = DOCS.read_text()
    for name in dagster_yaml | celery_yaml | {executors.EXECUTOR_ENV, "DAGSTER_HOME", "CATALOG_DATABASE_URL"}:
        assert re.search(rf"^#?{name}=", example, re.MULTILINE), f"{name} missing from {ENV_EXAMPLE.name}"
        assert f"`{name}`" in docs, f"{name} is not documented in docs/production.md"
    # And the other way round: the example sets nothing that nobody reads.
    settings_vars = set(re.findall(r'"((?:CATALOG_|DAGSTER_)[A-Z_]+)"', (REPO / "catalog_pipelines/settings.py").read_text()))
    known = dagster_yaml | celery_yaml | settings_vars | {executors.EXECUTOR_ENV, "DAGSTER_HOME"}
    assert set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE)) <= known


def test_default_code_location_does_not_import_celery():
    env = {k: v for k, v in os.environ.items() if k != "CATALOG_PIPELINES_EXECUTOR"}
    code = "import sys, catalog_pipelines.definitions; print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'dagster_celery', 'kombu')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
