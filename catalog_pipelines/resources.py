"""Dagster resources: the catalog database, as every asset reads and writes it.

Heavy modules (pandas, the model) are imported inside methods: the code location is re-imported by
every run, so its import must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from analytics.org import OrgGraph
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

    def org_graph(self) -> "OrgGraph":
        from analytics.org import OrgGraph

        return OrgGraph.from_entities(self.store().iter_entities(kinds=["User", "Group"]))

    def entities_frame(self, kinds: list[str] | None = None, with_body: bool = True) -> "pd.DataFrame":
        from catalog_pipelines.storage.frames import entities_frame

        return entities_frame(self.get_engine(), kinds, with_body=with_body)

    def relations_frame(self, both_directions: bool = True) -> "pd.DataFrame":
        from catalog_pipelines.storage.frames import relations_frame

        return relations_frame(self.get_engine(), both_directions=both_directions)

    def removals_frame(self) -> "pd.DataFrame":
        from catalog_pipelines.storage.frames import removals_frame

        return removals_frame(self.get_engine())
