"""The code location: one Definitions object built from the provider configuration.

`workspace.yaml` points here. Keep this module's imports light: every run re-imports it.
Where things live: assets/ (assets and their checks), partitions.py, jobs.py, schedules.py,
sensors/, automation.py (automation conditions), resources.py; runs.py materialises in-process for
the CLI, the demo and the benchmarks and is not part of the code location.
"""

from __future__ import annotations

import dagster as dg

from catalog_pipelines.assets.ingestion import build_catalog_snapshot, build_health_check, build_provider_assets
from catalog_pipelines.ingestion.config import ProviderConfig, configured_providers
from catalog_pipelines.jobs import (
    build_ingestion_admin_job, build_ingestion_jobs, build_insights_job, build_provider_health_job, chunk_job_name,
    survey_responses_job, sweep_job_name, usage_days_job, usage_retention_job,
)
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.schedules import build_schedules
from catalog_pipelines.sensors.automation import build_automation_sensor
from catalog_pipelines.sensors.ingestion import build_failure_sensor, build_ingestion_sensor
from catalog_pipelines.sensors.surveys import survey_exports_sensor
from catalog_pipelines.sensors.usage import usage_arrivals_sensor


def build_definitions(configs: list[ProviderConfig], catalog_url: str = "") -> dg.Definitions:
    from catalog_pipelines.assets import catalog_health, dashboards, history, notifications, scorecards, surveys, usage
    from catalog_pipelines.assets.catalog_quality import catalog_quality_checks
    from catalog_pipelines.assets.delivery import build_delivery_event_assets, build_delivery_metric_assets
    from catalog_pipelines.assets.facts import build_fact_assets
    from catalog_pipelines.jobs import build_delivery_days_job

    # A synthetic org gets synthetic report files (SARIF, Cobertura, JUnit…) for the collectors to
    # read, so the demo's scorecards have real-format facts (no dependency edge: runs.py orders it).
    demo_facts = any(c.type == "synthetic" for c in configs)
    assets: list[dg.AssetsDefinition] = [
        *surveys.survey_assets,
        *build_fact_assets(demo=demo_facts),
        *build_delivery_event_assets(),
        *build_delivery_metric_assets(),
        *scorecards.scorecard_assets,
        *usage.usage_assets,
        *catalog_health.catalog_health_assets,
        *history.history_assets,
        *dashboards.dashboards_assets,
        *notifications.notification_assets,
    ]
    for config in configs:
        assets.extend(build_provider_assets(config))
    assets.append(build_catalog_snapshot(configs))
    jobs = build_ingestion_jobs(configs)
    health_job = build_provider_health_job(configs) if configs else None
    if configs:
        jobs += [build_ingestion_admin_job(configs), health_job]
    by_name = {j.name: j for j in jobs}
    ingestion_jobs = [by_name[n(c.name)] for c in configs for n in (chunk_job_name, sweep_job_name)]
    sensors = [build_ingestion_sensor(c, [by_name[chunk_job_name(c.name)], by_name[sweep_job_name(c.name)]]) for c in configs]
    if configs:
        sensors.append(build_failure_sensor(configs, ingestion_jobs))
    checks = [build_health_check(c) for c in configs] + list(surveys.survey_asset_checks) + [catalog_quality_checks]
    jobs += [survey_responses_job, usage_days_job, usage_retention_job]
    sensors += [survey_exports_sensor, usage_arrivals_sensor]
    sensors.append(build_automation_sensor())
    jobs.append(build_insights_job())
    delivery_days_job = build_delivery_days_job()
    jobs.append(delivery_days_job)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        schedules=build_schedules(configs, health_job, delivery_days_job),
        resources={"catalog": CatalogDatabase(url=catalog_url)},
    )


defs = build_definitions(configured_providers())
