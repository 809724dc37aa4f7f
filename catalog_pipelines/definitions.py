"""The code location: one Definitions object built from the provider configuration.

`workspace.yaml` points here. Keep this module's imports light: every run re-imports it.
"""

from __future__ import annotations

import dagster as dg

from catalog_pipelines.assets.ingestion import build_catalog_snapshot, build_ingestion_jobs, build_provider_assets
from catalog_pipelines.ingestion.config import ProviderConfig, load_providers
from catalog_pipelines.insights import INSIGHTS_JOB, insight_selection
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings


def build_definitions(configs: list[ProviderConfig], catalog_url: str = "") -> dg.Definitions:
    assets: list[dg.AssetsDefinition] = []
    for config in configs:
        assets.extend(build_provider_assets(config))
    assets.append(build_catalog_snapshot(configs))
    jobs = build_ingestion_jobs(configs)
    insight_assets = [a for a in assets if a.group_names_by_key and set(a.group_names_by_key.values()) - {"ingestion", "catalog"}]
    if insight_assets:
        jobs.append(dg.define_asset_job(INSIGHTS_JOB, selection=insight_selection()))
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        resources={"catalog": CatalogDatabase(url=catalog_url)},
    )


defs = build_definitions(load_providers(Settings.from_env().providers_config))
