"""Every schedule of the code location (all running by default)."""

from __future__ import annotations

import dagster as dg

from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.jobs import usage_days_job, usage_retention_job

# Hourly: the check also runs with every sweep, so between cycles an hour is soon enough to turn a
# provider stuck in backoff red, and the Runs page gets 24 runs a day, not 288.
HEALTH_CRON = "7 * * * *"


def build_health_schedule(health_job: dg.JobDefinition | dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="provider_health_schedule",
        cron_schedule=HEALTH_CRON,
        job=health_job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every hour, runs `provider_health_job`: every provider's health check (a provider backing "
                    "off past its schedule or a sweep blocked by a guard turns red). The check also runs with "
                    "every sweep.",
    )


# Yesterday's partition shortly after midnight UTC, so days without any event exist too.
usage_days_schedule = dg.build_schedule_from_partitioned_job(
    usage_days_job, hour_of_day=0, minute_of_hour=20, name="usage_days_schedule", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:20 UTC, runs `usage_days_job` for yesterday's partition (days without events exist too).",
)

usage_retention_schedule = dg.ScheduleDefinition(
    name="usage_retention_schedule",
    job=usage_retention_job,
    cron_schedule="40 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="At 00:40 UTC, runs `usage_retention_job`: raw usage events past the retention period are deleted.",
)

usage_schedules = [usage_days_schedule, usage_retention_schedule]


def build_delivery_days_schedule(job) -> dg.ScheduleDefinition:
    # After the hourly collectors' first runs of the new day, so yesterday's late events are in.
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=1, minute_of_hour=30, name="delivery_days_schedule", default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 01:30 UTC, runs `delivery_days_job` for yesterday's partition: closes the day's delivery events.",
    )


def build_schedules(configs: list[ProviderConfig], health_job=None, delivery_days_job=None) -> list:
    """The code location's schedules for these providers (`health_job`: their provider_health_job)."""
    delivery = [build_delivery_days_schedule(delivery_days_job)] if delivery_days_job is not None else []
    return ([build_health_schedule(health_job)] if configs and health_job is not None else []) + usage_schedules + delivery
