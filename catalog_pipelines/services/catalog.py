"""Catalog reads shared by the other services: the database from the settings, the org graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy as sa

    from analytics.org import OrgGraph


def engine_from_env() -> "sa.Engine":
    """The catalog database the settings name (CATALOG_DATABASE_URL, else the data directory's)."""
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import get_engine

    return get_engine(Settings.from_env().catalog_database_url)


def org_graph(engine: "sa.Engine") -> "OrgGraph":
    """Users and groups of the stored catalog as the org hierarchy."""
    from analytics.org import OrgGraph
    from catalog_pipelines.storage.catalog import CatalogStore

    return OrgGraph.from_entities(CatalogStore(engine).iter_entities(kinds=["User", "Group"]))
