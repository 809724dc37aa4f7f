"""Every door that publishes survey figures verifies k in the same run or process.

Doors: the automation sensor's runs (survey_trends and dashboards_site), the demo
(`runs.materialize_insights`), the CLI (`surveys trends`, `dashboards build`, `dashboards build
--audience`) and `materialize_waves`.
"""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from analytics.org import OrgGraph
from analytics.surveys.config import load_surveys
from catalog_pipelines.services.surveys import write_synthetic_exports
from catalog_pipelines.assets.surveys import PUBLISHED_RESPECT_K, SURVEY_TRENDS, survey_responses
from catalog_pipelines.services.surveys import surveys_config_dir, surveys_root
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings
from tests.helpers import TEST_DATA, seed_catalog
from catalog_pipelines.model.insight_tables import SURVEYS
from dashboards.site import read_site_file

DATA = TEST_DATA / "surveys"
Q1, Q2 = "pulse-2024-q1", "pulse-2024-q2"


@pytest.fixture
def world(data_env):
    entities = list(yaml.safe_load_all((DATA / "org.yaml").read_text()))
    url = Settings.from_env().catalog_database_url
    seed_catalog(url, entities)
    org = OrgGraph.from_entities(entities)
    (survey,) = load_surveys(surveys_config_dir())
    write_synthetic_exports(surveys_root(), survey, org, seed=3, email_domain="example.com", waves=[Q1, Q2])
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


def checks_of(result) -> dict[tuple[str, str], bool]:
    return {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def test_an_automation_sensor_run_of_survey_trends_and_the_site_evaluates_both_k_checks(world, dagster_instance):
    from catalog_pipelines.assets.dashboards import PEOPLE_CHECK
    from catalog_pipelines.definitions import build_definitions

    url, _ = world
    defs = build_definitions([], catalog_url=url)
    instance = dagster_instance
    _, cursor = automation_tick(defs, instance)
    dg.materialize([survey_responses], instance=instance, resources={"catalog": CatalogDatabase(url=url)}, partition_key=Q1)
    instance.report_runless_asset_event(dg.AssetMaterialization("catalog_snapshot"))
    requests, _ = automation_tick(defs, instance, cursor)
    (request,) = [r for r in requests if SURVEY_TRENDS in (r.asset_selection or [])]
    assert dg.AssetKey("dashboards_site") in request.asset_selection  # one run: the site waits for the check
    result = launch_like_the_daemon(defs, instance, request)
    assert result.success
    checks = checks_of(result)
    assert checks[("survey_trends", PUBLISHED_RESPECT_K)] is True
    assert checks[("dashboards_site", PEOPLE_CHECK)] is True


def test_every_job_that_publishes_people_figures_evaluates_the_k_checks_in_the_same_run():
    """The demo's insights_job (`runs.materialize_insights`), the implicit asset job the
    sensors and schedules launch, and any other job: the k checks are in the assets' own ops."""
    from catalog_pipelines.assets.dashboards import DASHBOARDS_SITE, PEOPLE_CHECK
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.jobs import INSIGHTS_JOB

    defs = build_definitions([], catalog_url="sqlite:///:memory:")
    guarded = {SURVEY_TRENDS: dg.AssetCheckKey(SURVEY_TRENDS, PUBLISHED_RESPECT_K), DASHBOARDS_SITE: dg.AssetCheckKey(DASHBOARDS_SITE, PEOPLE_CHECK)}
    jobs = [defs.resolve_job_def(INSIGHTS_JOB), defs.resolve_implicit_global_asset_job_def(), *defs.resolve_all_job_defs()]
    seen = 0
    for job in jobs:
        graph = job.asset_layer.asset_graph
        for asset, check in guarded.items():
            if asset in graph.executable_asset_keys:
                assert check in graph.asset_check_keys, (job.name, check)
                # Even a run that selects the asset alone carries the check (same op).
                subset = job.get_subset(asset_selection={asset})
                assert check in subset.asset_layer.asset_graph.asset_check_keys, (job.name, check)
                seen += 1
    assert seen >= 4  # insights_job and the implicit job, both assets each


def _tamper_with_a_shown_empty_cell(engine) -> None:
    """What main used to publish: a group invited but with no respondent, shown as 0."""
    from catalog_pipelines.storage.insights import read_frame, write_frame

    trends = read_frame(engine, SURVEYS.trends)
    row = trends.index[(trends.metric == "response_rate") & (trends.group_ref == "group:default/alpha")][0]
    trends.loc[row, ["suppressed", "respondents", "value"]] = [False, 0, 0.0]
    write_frame(engine, SURVEYS.trends, trends)


@pytest.fixture
def published(world, dagster_instance):
    """Both waves loaded through `materialize_waves` (the CLI's `surveys load` and the demo's path)."""
    from catalog_pipelines.runs import materialize_waves

    report = materialize_waves(dagster_instance, [Q1, Q2])
    assert report["checks"] == {"response_rate_collapse": True, PUBLISHED_RESPECT_K: True}
    return CatalogDatabase().get_engine()


def test_survey_trends_refuses_to_write_a_figure_below_k_even_when_suppression_reports_no_leak(published):
    import dataclasses

    from pandas.testing import assert_frame_equal

    from catalog_pipelines.services.surveys import compute_survey_trends, publish_survey_trends
    from catalog_pipelines.storage.insights import read_frame

    good = compute_survey_trends(OrgGraph.from_entities(list(yaml.safe_load_all((DATA / "org.yaml").read_text()))), surveys_root(), surveys_config_dir())
    before = read_frame(published, SURVEYS.trends)
    trends = good.trends.copy()
    row = trends.index[trends.metric == "mean"][0]
    trends.loc[row, ["suppressed", "respondents", "value"]] = [False, 0, 3.0]
    with pytest.raises(RuntimeError, match="nothing was published"):
        publish_survey_trends(published, dataclasses.replace(good, trends=trends, disclosures=[]))
    assert_frame_equal(read_frame(published, SURVEYS.trends), before)


def test_the_cli_prints_no_survey_figure_from_tables_that_break_k(published, tmp_path):
    import json

    from click.testing import CliRunner

    from catalog_pipelines.cli.dashboards import dashboards
    from catalog_pipelines.cli.surveys import surveys

    runner = CliRunner()
    assert runner.invoke(surveys, ["trends", "--team", "alpha", "--json"]).exit_code == 0
    _tamper_with_a_shown_empty_cell(published)
    for args in (["trends"], ["trends", "--team", "alpha", "--json"], ["waves"], ["comments"]):
        out = runner.invoke(surveys, args)
        assert out.exit_code == 1 and "refusing to show survey figures" in out.output, (args, out.output)
    for args, folder in ((["build"], "full"), (["build", "--audience", "user:default/a1"], "a1")):
        out = runner.invoke(dashboards, [*args, "--out", str(tmp_path / folder), "--json"])
        assert out.exit_code == 1, out.output
        report = json.loads(out.output[out.output.index("{"):out.output.rindex("}") + 1])
        assert report["people_figures_verified"] is False and report["people_violations"]
        manifest = json.loads((tmp_path / folder / "manifest.json").read_text())
        assert {p["key"]: p["status"] for p in manifest["pages"]}["surveys"] != "ok"
        assert not any("Survey trend" in read_site_file(f) for f in (tmp_path / folder / "teams").glob("*.html"))


def test_the_site_asset_publishes_no_survey_figure_from_tables_that_break_k(published, dagster_instance):
    from catalog_pipelines.assets.dashboards import PEOPLE_CHECK, dashboards_site

    _tamper_with_a_shown_empty_cell(published)
    result = dg.materialize([dashboards_site], instance=dagster_instance, resources={"catalog": CatalogDatabase()}, raise_on_error=False,
                            run_config={"ops": {"dashboards_site": {"config": {"audiences": ["user:default/a1"]}}}})
    assert checks_of(result)[("dashboards_site", PEOPLE_CHECK)] is False
    site = Settings.from_env().output_dir
    for folder in (site / "dashboards", site / "dashboards-for" / "a1"):
        assert not (folder / "surveys.html").exists()
        assert not any("Survey trend" in read_site_file(f) for f in (folder / "teams").glob("*.html"))
