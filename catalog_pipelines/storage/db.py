"""Engines for the catalog database and idempotent, versioned schema creation."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from catalog_pipelines.storage import schema

_ENGINES: dict[str, sa.Engine] = {}


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the web UI, the CLI) run while a chunk writes. A large autocheckpoint
    # interval matters: each checkpoint fsyncs the file, and a chunk commit would otherwise
    # trigger one almost every time (measured: 22 s vs 12 s for 800k relation rows).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA wal_autocheckpoint=20000")
    cur.execute("PRAGMA cache_size=-131072")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_catalog_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite gets WAL and its parent directory, PostgreSQL the ledger schema."""
    if url.startswith("postgresql://"):
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, 2.0 to psycopg2: be explicit.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite has no schemas; the ledger tables share the file.
        return engine.execution_options(schema_translate_map={schema.LEDGER_SCHEMA: None})
    return sa.create_engine(url, pool_pre_ping=True)


class NoCatalog(LookupError):
    """There is no catalog database at the URL (reading commands never create one)."""


def catalog_exists(url: str) -> bool:
    """True when `url` holds a catalog: the SQLite file exists, or the server has its tables."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if not path or path == ":memory:":
            return True
        if not Path(path).is_file():
            return False
    if url in _ENGINES:
        return True
    engine = create_catalog_engine(url)
    try:
        return sa.inspect(engine).has_table(schema.entities.name, schema=schema.entities.schema)
    finally:
        engine.dispose()


def get_existing_engine(url: str) -> sa.Engine:
    """`get_engine` for readers: NoCatalog instead of creating an empty catalog."""
    if url not in _ENGINES and not catalog_exists(url):
        raise NoCatalog(f"no catalog at {sa.engine.make_url(url).render_as_string(hide_password=True)}")
    return get_engine(url)


def get_engine(url: str) -> sa.Engine:
    """One engine per URL per process, with the schema in place."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = create_catalog_engine(url)
        ensure_schema(engine)
        _ENGINES[url] = engine
    return engine


@contextlib.contextmanager
def transaction_with_ddl(engine: sa.Engine) -> Iterator[sa.Connection]:
    """`engine.begin()`, except that on SQLite DDL is inside the transaction too.

    Python's sqlite3 driver (pysqlite) emits BEGIN only before INSERT/UPDATE/DELETE, so a DROP or
    CREATE TABLE commits on its own: a table replaced by pandas' `to_sql` was left empty when the
    insert after it failed. Here the connection runs in driver autocommit and the transaction is
    begun and ended explicitly, so everything in it commits or rolls back together. (PostgreSQL's
    DDL is transactional already.)
    """
    if not is_sqlite(engine):
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        # Pooled connections get their isolation level back on check-in.
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


def dispose_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def ensure_schema(engine: sa.Engine) -> int:
    """Create missing tables and record the schema version; safe to call from every process.

    Returns the version now in place. A database from a newer version of the project is refused
    rather than silently used.
    """
    with engine.begin() as conn:
        if not is_sqlite(engine):
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema.LEDGER_SCHEMA}"))
        had_history = sa.inspect(conn).has_table(schema.entity_history.name)
        schema.metadata.create_all(conn, checkfirst=True)
        if not had_history:
            # Catalog history (storage/history.py) is new to this database: the entities stored
            # before it get a baseline version (a table, not a schema version: older code keeps
            # working against the same database).
            from catalog_pipelines.storage.history import baseline

            baseline(conn)
        else:
            from catalog_pipelines.storage.history import add_missing_columns

            add_missing_columns(conn)
        current = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
        if current is not None and current > schema.SCHEMA_VERSION:
            raise RuntimeError(
                f"catalog database schema is version {current}, newer than this code's "
                f"{schema.SCHEMA_VERSION}: upgrade catalog-pipelines"
            )
        if current is None or current < schema.SCHEMA_VERSION:
            # One step per version, before recording the new version. A fresh database was just
            # created at the current version, so the steps find nothing to do there.
            if current is not None and current < 2 and not is_sqlite(engine):
                _migrate_ref_collation(conn)
            if current is not None and current < 4:
                # Version 3: the delivery event tables' `collected_at` index (what changed since
                # the delivery metrics were last computed); version 4: the pull requests' and
                # deployments' (repository, day) index (a new day's link look-back) and the open
                # pull requests' partial index.
                for table in schema.delivery_event_tables.values():
                    for index in table.indexes:
                        index.create(conn, checkfirst=True)
            conn.execute(
                schema.schema_version.insert().values(
                    version=schema.SCHEMA_VERSION, applied_at=dt.datetime.now(dt.timezone.utc)
                )
            )
    return schema.SCHEMA_VERSION


def _migrate_ref_collation(conn: sa.Connection) -> None:
    """Version 2: ref columns (and their indexes, which PostgreSQL rebuilds) get the "C" collation."""
    from catalog_pipelines.storage.sql import qualified_name

    for table in schema.metadata.sorted_tables:
        for column in table.columns:
            collation = getattr(column.type.dialect_impl(conn.dialect), "collation", None)
            if collation != schema.REF_COLLATION:
                continue
            current = conn.execute(
                sa.text(
                    "SELECT collation_name FROM information_schema.columns "
                    "WHERE table_schema = :schema AND table_name = :table AND column_name = :column"
                ),
                {"schema": table.schema or "public", "table": table.name, "column": column.name},
            ).scalar()
            if current == schema.REF_COLLATION:
                continue
            conn.execute(
                sa.text(
                    f'ALTER TABLE {qualified_name(table)} ALTER COLUMN "{column.name}" '
                    f'TYPE VARCHAR({column.type.length}) COLLATE "{schema.REF_COLLATION}"'
                )
            )
