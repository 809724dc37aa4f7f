"""Test helpers shared across test modules."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger

# Where things are, for test modules in any area folder (tests/<area>/test_*.py): use these rather
# than `Path(__file__)` arithmetic, which breaks when a test module moves.
TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
TEST_DATA = TESTS_DIR / "data"


def seed_catalog(url: str, entities: list[dict[str, Any]], provider: str = "seed") -> CatalogStore:
    """Validate Backstage entity dicts and store them as one complete cycle of `provider`.

    Invalid entities raise: a test seeding bad data by accident should fail loudly.
    """
    engine = get_engine(url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    processed: list[ProcessedEntity] = []
    for index, entity in enumerate(entities):
        outcome = process_entity(RawEntity(entity=entity, location=f"test:{provider}", doc_index=index))
        if not isinstance(outcome, ProcessedEntity):
            raise ValueError(f"seed entity {index} rejected: {outcome.message}")
        processed.append(outcome)
    ingestion = ledger.start_cycle(provider)
    seq = (ledger.last_mark(ingestion.id).sequence + 1) if ledger.last_mark(ingestion.id) else 0
    store.write_chunk(
        provider=provider, ingestion_id=ingestion.id, sequence=seq, cursor_in=None, cursor=None,
        done=True, entities=processed, rejections=[],
    )
    return store


# One valid Component descriptor (format with `name=`), for tests that write descriptor files.
COMPONENT = """apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: service
  lifecycle: production
  owner: team-a
"""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_groups(procs: list[subprocess.Popen], grace: float = 10) -> None:
    """Stop processes started with `start_new_session=True`, and their children: SIGTERM the
    groups, wait up to `grace` seconds in all, then SIGKILL what is left."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# ##### THE PRODUCTION DAGSTER INSTANCE (deploy/dagster.yaml on PostgreSQL)

PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster.yaml"


def production_env(dagster_db_url: str, home: Path) -> dict[str, str]:
    """The environment deploy/dagster.yaml needs, pointing at `dagster_db_url`."""
    import sqlalchemy as sa

    url = sa.engine.make_url(dagster_db_url)
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_MAX_CONCURRENT_RUNS": "4",
        "DAGSTER_COMPUTE_LOG_DIR": str(home / "compute_logs"),
    }


def production_home(path: Path) -> Path:
    """A DAGSTER_HOME holding the production dagster.yaml, unchanged."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRODUCTION_YAML, path / "dagster.yaml")
    return path


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def production_instance(env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    """The instance deploy/dagster.yaml describes, with its environment set while it is in use
    (Dagster resolves `{env: …}` when it loads each part, some of them lazily)."""
    with patched_environ(env):
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        try:
            yield instance
        finally:
            instance.dispose()


# Dagster's own bookkeeping: which schema migrations and data migrations ran. Everything else is data.
_DAGSTER_SCHEMA_TABLES = {"alembic_version", "secondary_indexes", "instance_info"}


def empty_dagster_database(url: str) -> None:
    """Delete every run, event, partition, schedule tick and key-value of a Dagster PostgreSQL
    database, keeping its schema: a fresh instance for the next test without recreating ~40 tables.

    DELETE rather than TRUNCATE: TRUNCATE waits for every open connection's lock (a webserver
    stopped a moment ago may still hold one), DELETE only for conflicting row locks.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tables = sa.MetaData()
            tables.reflect(conn)
            for table in reversed(tables.sorted_tables):  # referencing rows before the rows they reference
                if table.name not in _DAGSTER_SCHEMA_TABLES:
                    conn.execute(table.delete())
    finally:
        engine.dispose()


def require_chromium() -> str:
    """The system Chromium's path for Playwright (no browser download); a missing browser or
    playwright skips locally and fails under CI (`.ci/run` installs both)."""
    import pytest

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: pip install playwright")
        pytest.skip("playwright is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: apt-get install chromium")
        pytest.skip("chromium is not installed")
    return chromium
EXAMPLE_COLLECTOR_SRC = REPO_ROOT / "examples" / "collector-package" / "src"


def install_example_collector(path: Path, monkeypatch) -> None:
    """examples/collector-package as an installed distribution: its dist-info (with the entry
    points of its pyproject.toml) on sys.path, so `importlib.metadata` finds type `acme_deploys`
    in the group catalog_pipelines.collectors as after `pip install`."""
    import sys
    import tomllib

    info = path / "acme_facts_collector-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-facts-collector\nVersion: 1.0.0\n")
    groups = tomllib.loads((EXAMPLE_COLLECTOR_SRC.parent / "pyproject.toml").read_text())["project"]["entry-points"]
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items()))
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.syspath_prepend(str(EXAMPLE_COLLECTOR_SRC))
    monkeypatch.delitem(sys.modules, "acme_facts_collector", raising=False)


class NpmUnavailable(RuntimeError):
    """node or npm is not on PATH."""


def npm_install(home: Path, package: str, installed: Path, timeout: float = 600) -> Path:
    """`npm install <package>` into the folder `home` unless `installed` (a file the package
    brings) is already there; returns `installed`. NpmUnavailable without node/npm."""
    import json

    if installed.exists():
        return installed
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise NpmUnavailable(f"{package} needs {' and '.join(missing)} on PATH")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "package.json").exists():
        (home / "package.json").write_text(json.dumps({"name": f"{home.name}-home", "private": True}) + "\n")
    log = home / "install.log"
    with open(log, "wb") as out:
        code = subprocess.call(["npm", "install", "--no-audit", "--no-fund", package], cwd=home,
                               stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if code != 0 or not installed.exists():
        raise RuntimeError(f"npm install {package} failed (exit {code}); log: {log}")
    return installed
