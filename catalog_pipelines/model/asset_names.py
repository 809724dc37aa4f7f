"""The names of each provider's ingestion assets, for every layer that names them.

The Dagster glue builds the asset keys from them (assets/ingestion.py); the dashboards and the site
service look up their materialisation times by the same names. The provider is part of the name
so that the lineage graph, which labels a node with its name, tells providers apart.
"""

from __future__ import annotations


def chunk_asset_name(provider: str) -> str:
    return f"{provider}_entity_chunk"


def sweep_asset_name(provider: str) -> str:
    return f"{provider}_removal_sweep"


def ingestion_asset_names(provider: str) -> list[str]:
    return [chunk_asset_name(provider), sweep_asset_name(provider)]
