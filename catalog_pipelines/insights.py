"""Materialise every insight asset downstream of the catalog snapshot, in-process.

Used by the demo so that one command leaves dashboards-ready data behind. Partitioned insight
assets are materialised for each of their partitions that has input data.
"""

from __future__ import annotations

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
