"""Every schedule of the code location (all running by default)."""

from __future__ import annotations

import dagster as dg

from catalog_pipelines.assets.ingestion import sweep_asset_key
from catalog_pipelines.assets.usage import USAGE_RETENTION
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.jobs import usage_days_job


def build_health_schedule(configs: list[ProviderConfig]) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="provider_health_schedule",
        cron_schedule="*/5 * * * *",
        target=dg.AssetSelection.checks_for_assets(*[sweep_asset_key(c.name) for c in configs]),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Re-evaluates every provider's health check every five minutes.",
    )


# Yesterday's partition shortly after midnight UTC, so days without any event exist too.
usage_days_schedule = dg.build_schedule_from_partitioned_job(
    usage_days_job, hour_of_day=0, minute_of_hour=20, name="usage_days_schedule", default_status=dg.DefaultScheduleStatus.RUNNING
)

usage_retention_schedule = dg.ScheduleDefinition(
    name="usage_retention_schedule",
    target=dg.AssetSelection.assets(USAGE_RETENTION),
    cron_schedule="40 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

usage_schedules = [usage_days_schedule, usage_retention_schedule]


def build_schedules(configs: list[ProviderConfig]) -> list:
    """The code location's schedules for these providers."""
    return ([build_health_schedule(configs)] if configs else []) + usage_schedules
