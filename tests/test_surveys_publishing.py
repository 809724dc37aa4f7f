"""Every door that publishes survey figures verifies k in the same run or process.

Doors: the automation sensor's runs (survey_trends and dashboards_site), the demo
(`insights.materialize_insights`), the CLI (`surveys trends`, `dashboards build`, `dashboards build
--audience`) and `materialize_waves`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from analytics.org import OrgGraph
from analytics.surveys_config import load_surveys
from analytics.surveys_synthetic import write_exports
from catalog_pipelines.assets.surveys import PUBLISHED_RESPECT_K, SURVEY_TRENDS, survey_responses, surveys_config_dir, surveys_root
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings
from tests.helpers import seed_catalog

DATA = Path(__file__).parent / "data" / "surveys"
Q1, Q2 = "pulse-2024-q1", "pulse-2024-q2"


@pytest.fixture
def world(data_env):
    entities = list(yaml.safe_load_all((DATA / "org.yaml").read_text()))
    url = Settings.from_env().catalog_database_url
    seed_catalog(url, entities)
    org = OrgGraph.from_entities(entities)
    (survey,) = load_surveys(surveys_config_dir())
    write_exports(surveys_root(), survey, org, seed=3, email_domain="example.com", waves=[Q1, Q2])
    return url, org


def automation_tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor=None):
    """One tick of an automation sensor over every asset and check: the run requests it makes
    (built by the same Dagster function the sensor uses) and the cursor for the next tick."""
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    requests = build_run_requests(result._requested_subsets, defs.resolve_asset_graph(), {}, emit_backfills=False)
    return requests, result.cursor


def launch_like_the_daemon(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a request the way the daemon creates the run: the implicit asset job subset to the
    request's assets and checks (None: Dagster's default for the selected assets)."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(request.asset_selection or []),
        asset_check_selection=set(request.asset_check_keys) if request.asset_check_keys else None,
    )
    return job.execute_in_process(instance=instance, partition_key=request.partition_key, raise_on_error=False)


def test_an_automation_run_of_survey_trends_and_the_site_evaluates_the_k_check(world, dagster_instance):
    from catalog_pipelines.definitions import build_definitions

    url, _ = world
    defs = build_definitions([], catalog_url=url)
    instance = dagster_instance
    requests, cursor = automation_tick(defs, instance)
    dg.materialize([survey_responses], instance=instance, resources={"catalog": CatalogDatabase(url=url)}, partition_key=Q1)
    instance.report_runless_asset_event(dg.AssetMaterialization("catalog_snapshot"))
    requests, cursor = automation_tick(defs, instance, cursor)
    trends = [r for r in requests if SURVEY_TRENDS in (r.asset_selection or [])]
    assert trends, requests
    print([( [k.to_user_string() for k in r.asset_selection], r.asset_check_keys) for r in requests])
    result = launch_like_the_daemon(defs, instance, trends[0])
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    print(checks, result.success)
    assert checks[("survey_trends", PUBLISHED_RESPECT_K)] is True
