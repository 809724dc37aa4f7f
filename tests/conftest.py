"""Shared fixtures: isolated data directories, and storage on both backends.

Every test that stores anything asks for it through a fixture here, and all of those depend on
`backend`, a session-scoped parameter: such a test runs once on the embedded default (SQLite
catalog, SQLite Dagster instance) and once on PostgreSQL (the catalog through SQLAlchemy, and
Dagster's run, event-log and schedule storage through dagster-postgres with deploy/dagster.yaml).
Tests that store nothing (the entity model, pure analytics) run once.

- `catalog_url`: an empty catalog for one test;
- `module_catalog_url`: an empty catalog for a module-scoped fixture to seed once;
- `dagster_instance`: a Dagster instance with no runs, events or schedules (and
  `module_dagster_instance` for module-scoped fixtures);
- `data_env`: the environment the CLI, the demo and subprocesses read (data directory,
  DAGSTER_HOME, catalog URL), for commands that build their own instance and catalog.

PostgreSQL tests use the server named by CATALOG_TEST_POSTGRES_URL (CI sets it; .ci/run points it
at the local server) and create throwaway databases per test session. Under CI a missing server
is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from peer import backstage_peer  # noqa: F401  (the real Backstage, session-scoped)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "tests" / "data" / "backstage-examples"


def _pg_admin_url() -> str | None:
    return os.environ.get("CATALOG_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of a fresh database on the test server, dropped at the end of the session."""
    admin = _pg_admin_url()
    if not admin:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: set CATALOG_TEST_POSTGRES_URL")
        pytest.skip("CATALOG_TEST_POSTGRES_URL is not set")
    with _throwaway_database(admin, "cp_test") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url):
    """A clean catalog on PostgreSQL for one test (tables emptied, schema kept)."""
    import sqlalchemy as sa

    from catalog_pipelines.storage import schema
    from catalog_pipelines.storage.db import get_engine

    engine = get_engine(postgres_server_url)
    with engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            if table.name != "catalog_schema_version":
                conn.execute(table.delete())
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("insight_"):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
    return postgres_server_url


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    """The storage backend of this run of the test: "sqlite" or "postgres"."""
    return request.param


@pytest.fixture
def catalog_url(backend, request, tmp_path):
    """An empty catalog database for one test, on this run's backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module")
def module_catalog_url(backend, request, tmp_path_factory):
    """An empty catalog for a module-scoped fixture to seed once (a database of its own on
    PostgreSQL, so the per-test clean-up of `catalog_url` does not touch it)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"
        return
    with _throwaway_database(request.getfixturevalue("postgres_server_url"), "cp_mod") as url:
        yield url


@pytest.fixture
def new_postgres_database(postgres_server_url):
    """A database of its own, with no tables yet, for one test (dropped afterwards)."""
    with _throwaway_database(postgres_server_url, "cp_new") as url:
        yield url


@pytest.fixture(scope="session")
def dagster_pg_database(postgres_server_url):
    """A database of its own for Dagster's storage, on the test server, dropped at the end."""
    with _throwaway_database(postgres_server_url, "cp_dagster") as url:
        yield url


@pytest.fixture(scope="session")
def production_dagster_home(dagster_pg_database, tmp_path_factory):
    """(home, env): one production DAGSTER_HOME (deploy/dagster.yaml, unchanged) per session;
    Dagster creates its tables in the database once (~5 s)."""
    from helpers import production_env, production_home, production_instance

    home = production_home(tmp_path_factory.mktemp("dagster_home"))
    env = production_env(dagster_pg_database, home)
    with production_instance(env):
        pass
    return home, env


@pytest.fixture
def dagster_instance(backend, request):
    """A Dagster instance with nothing in it, on this run's backend: `instance_for_test` (SQLite in
    a temporary directory), or the production configuration on PostgreSQL, emptied first."""
    if backend == "sqlite":
        with dg.instance_for_test() as instance:
            yield instance
        return
    from helpers import empty_dagster_database, production_instance

    _, env = request.getfixturevalue("production_dagster_home")
    empty_dagster_database(request.getfixturevalue("dagster_pg_database"))
    with production_instance(env) as instance:
        yield instance


@pytest.fixture(scope="module")
def module_dagster_instance(backend, request):
    """A Dagster instance for a module-scoped fixture that materialises once and keeps the result.
    On PostgreSQL it shares the session's Dagster database, which each test's `dagster_instance`
    empties: read what you need from the run result, not from the instance, in later tests."""
    if backend == "sqlite":
        with dg.instance_for_test() as instance:
            yield instance
        return
    from helpers import production_instance

    _, env = request.getfixturevalue("production_dagster_home")
    with production_instance(env) as instance:
        yield instance


@pytest.fixture
def data_env(backend, request, tmp_path, monkeypatch):
    """Point every path setting at a temporary directory with a fresh DAGSTER_HOME, and the
    catalog and Dagster's storage at this run's backend (empty)."""
    data = tmp_path / "data"
    home = data / "dagster_home"
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    if backend == "sqlite":
        # The CLI writes the embedded dagster.yaml and the catalog under the data directory.
        monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
        return data
    from helpers import empty_dagster_database, production_env, production_home

    database = request.getfixturevalue("dagster_pg_database")
    request.getfixturevalue("production_dagster_home")  # the tables exist
    production_home(home)
    for name, value in production_env(database, home).items():
        monkeypatch.setenv(name, value)
    empty_dagster_database(database)
    monkeypatch.setenv("CATALOG_DATABASE_URL", request.getfixturevalue("postgres_url"))
    return data


@contextlib.contextmanager
def _throwaway_database(server_url: str, prefix: str):
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        from catalog_pipelines.storage.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- pytest-xdist ---------------------------------------------------------------------------------
# `make test` runs the suite in several processes (--dist loadgroup). A test that needs one of these
# session resources joins its group, so one worker starts the resource once and runs every test
# that shares it (two Backstage peers would share one npm home; the analytics module builds into the
# source tree; Celery workers of two tests would share the broker's queues).
XDIST_GROUPS = {
    "backstage_peer": "backstage-peer",
    "prism_servers": "prism",
    "analytics_module": "analytics-module",
    # one RabbitMQ on loopback: two tests' Celery workers on the same queues take each other's tasks
    "celery_broker": "celery",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, group in XDIST_GROUPS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))
                break
