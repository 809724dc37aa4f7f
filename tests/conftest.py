"""Shared fixtures: isolated data directories, and catalog databases on both backends.

PostgreSQL tests use the server named by CATALOG_TEST_POSTGRES_URL (CI sets it; .ci/run points it
at the local server) and create a throwaway database per test session. Under CI a missing server
is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

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
    import sqlalchemy as sa

    name = f"cp_test_{uuid.uuid4().hex[:10]}"
    admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_engine.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from catalog_pipelines.storage.db import dispose_engines

    dispose_engines()
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path):
    """The catalog database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """Point every path setting at a temporary directory (and a fresh DAGSTER_HOME)."""
    data = tmp_path / "data"
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
    return data
