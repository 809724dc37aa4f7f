"""Materialise every insight asset downstream of the catalog snapshot, in-process.

Used by the demo so that one command leaves dashboards-ready data behind. Partitioned insight
assets are materialised for each of their partitions that has input data.
"""

from __future__ import annotations

from datetime import date
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
    from catalog_pipelines.storage.surveys_store import export_files
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


def materialize_usage(instance: dg.DagsterInstance, days: list[date] | None = None, catalog_url: str = "") -> dict[str, Any]:
    """Run `usage_days_job` for the given days (default: every stored day that needs it) as one
    backfill-style run, then `usage_insights`, in-process: real runs recorded in the instance.

    For the CLI and the demo, like the sensor and the automation would launch them.
    """
    from catalog_pipelines.assets.usage import USAGE_DAYS_JOB, usage_assets, usage_days, usage_insights, usage_jobs
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.services.usage import raw_store, summary_store

    raw = raw_store()
    summarised = set(summary_store().days())
    if days is None:
        days = sorted(set(raw.pending()) | {d for d in raw.days() if d not in summarised})
    valid = set(usage_days.get_partition_keys())
    keys = sorted(d.isoformat() for d in days if d.isoformat() in valid)
    defs = dg.Definitions(assets=usage_assets, jobs=usage_jobs, resources={"catalog": CatalogDatabase(url=catalog_url)})
    from catalog_pipelines.orchestration import QUIET_RUN_CONFIG as quiet

    out: dict[str, Any] = {"days": keys, "skipped": sorted(d.isoformat() for d in days if d.isoformat() not in valid)}
    checks: dict[str, bool] = {}
    if keys:
        # One run over the range, as a backfill with the single-run policy would launch it; days
        # in the gaps are summarised as the empty days they are.
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        days_run = defs.resolve_job_def(USAGE_DAYS_JOB).execute_in_process(instance=instance, tags=tags, run_config=quiet)
        checks.update({e.check_name: e.passed for e in days_run.get_asset_check_evaluations()})
    result = dg.materialize([usage_insights], instance=instance, resources={"catalog": CatalogDatabase(url=catalog_url)}, run_config=quiet)
    checks.update({e.check_name: e.passed for e in result.get_asset_check_evaluations()})
    out["checks"] = checks
    return out
