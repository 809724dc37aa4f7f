"""Materialise every insight asset downstream of the catalog snapshot, in-process.

Used by the demo so that one command leaves dashboards-ready data behind. Partitioned insight
assets are materialised for each of their partitions that has input data.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT, INGESTION_GROUP

INSIGHTS_JOB = "insights_job"


def insight_selection() -> dg.AssetSelection:
    return dg.AssetSelection.keys(CATALOG_SNAPSHOT).downstream() - dg.AssetSelection.keys(CATALOG_SNAPSHOT) - dg.AssetSelection.groups(INGESTION_GROUP)


# The demo's synthetic people have no skill profiles: let the skills exchange make up seeded ones.
DEMO_RUN_CONFIG = {"ops": {"skills_exchange": {"config": {"synthetic_profiles": True}}}}


def materialize_insights(quiet: bool = False, demo: bool = False) -> list[str]:
    from catalog_pipelines.definitions import defs
    from catalog_pipelines.orchestration import QUIET_RUN_CONFIG, instance_from_env

    keys = insight_selection().resolve(defs.resolve_asset_graph())
    if not keys:
        return []
    instance = instance_from_env()
    defs.resolve_job_def(INSIGHTS_JOB).execute_in_process(instance=instance, raise_on_error=True, run_config={**QUIET_RUN_CONFIG, **(DEMO_RUN_CONFIG if demo else {})})
    return sorted(k.to_user_string() for k in keys)


def materialize_waves(instance: dg.DagsterInstance, wave_ids: list[str] | None = None, catalog_url: str = "") -> dict[str, Any]:
    """Run `survey_responses` for each wave with exports, then `survey_trends`, in-process.

    For the CLI and the demo: real runs recorded in the instance, like the sensor would launch.
    """
    from analytics.surveys_store import export_files
    from catalog_pipelines.assets.surveys import SURVEY_RESPONSES_JOB, survey_asset_checks, survey_assets, survey_jobs, survey_trends, survey_waves
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.services.surveys import surveys_root

    defs = dg.Definitions(
        assets=survey_assets, asset_checks=survey_asset_checks, jobs=survey_jobs, resources={"catalog": CatalogDatabase(url=catalog_url)}
    )
    root = surveys_root()
    waves = [w for w in (wave_ids or survey_waves.get_partition_keys()) if export_files(root, w)[0]]
    from catalog_pipelines.orchestration import QUIET_RUN_CONFIG as quiet

    job = defs.resolve_job_def(SURVEY_RESPONSES_JOB)
    landed = {}
    for wave_id in waves:
        result = job.execute_in_process(instance=instance, partition_key=wave_id, run_config=quiet)
        meta = result.asset_materializations_for_node("survey_responses")[0].metadata
        landed[wave_id] = meta["rows_landed"].value
    trends = dg.materialize([survey_trends], instance=instance, resources={"catalog": CatalogDatabase(url=catalog_url)}, run_config=quiet)
    checks = {e.check_name: e.passed for e in trends.get_asset_check_evaluations()}
    return {"waves": landed, "checks": checks}
