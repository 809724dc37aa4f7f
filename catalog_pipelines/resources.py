"""Dagster resources: the catalog database connection (URL -> engine, store, ledger).

Connections only: every query lives in `catalog_pipelines/storage/`, and assets reach data through
`catalog_pipelines/services/` (which take the engine). Heavy modules are imported inside methods:
the code location is re-imported by every run, so its import must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import sqlalchemy as sa

    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.ledger import Ledger


class CatalogDatabase(dg.ConfigurableResource):
    """The catalog database (SQLite by default, PostgreSQL in production) and its ingestion ledger."""

    url: str = ""

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        from catalog_pipelines.settings import Settings

        return Settings.from_env().catalog_database_url

    def get_engine(self) -> "sa.Engine":
        from catalog_pipelines.storage.db import get_engine

        return get_engine(self.resolved_url())

    def store(self) -> "CatalogStore":
        from catalog_pipelines.storage.catalog import CatalogStore

        return CatalogStore(self.get_engine())

    def ledger(self) -> "Ledger":
        from catalog_pipelines.storage.ledger import Ledger

        return Ledger(self.get_engine())
