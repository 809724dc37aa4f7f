"""Survey assets through Dagster, the exports sensor, and the CLI reading what they published."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from analytics.org import OrgGraph
from analytics.surveys.config import load_surveys
from catalog_pipelines.services.surveys import write_synthetic_exports
from catalog_pipelines.assets.surveys import (
    ANSWERS_IN_RANGE,
    ONE_RESPONSE_PER_RESPONDENT,
    PUBLISHED_RESPECT_K,
    RESPONSE_RATE_COLLAPSE,
    survey_responses,
    survey_trends,
)
from catalog_pipelines.cli.surveys import surveys as surveys_cli
from catalog_pipelines.services.surveys import compute_survey_trends, publish_survey_trends, published_violations, surveys_config_dir, surveys_root
from catalog_pipelines.sensors.surveys import survey_exports_sensor
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings
from tests.helpers import TEST_DATA, seed_catalog
from catalog_pipelines.model.insight_tables import SURVEYS

DATA = TEST_DATA / "surveys"
Q1, Q2, Q3 = "pulse-2024-q1", "pulse-2024-q2", "pulse-2024-q3"
ALPHA = "group:default/alpha"


@pytest.fixture
def world(data_env):
    """The small org in the catalog and synthetic exports for the first two shipped waves."""
    entities = list(yaml.safe_load_all((DATA / "org.yaml").read_text()))
    url = Settings.from_env().catalog_database_url
    seed_catalog(url, entities)
    org = OrgGraph.from_entities(entities)
    (survey,) = load_surveys(surveys_config_dir())
    write_synthetic_exports(surveys_root(), survey, org, seed=3, email_domain="example.com", waves=[Q1, Q2])
    return url, org


def materialize(assets, instance, **kwargs):
    return dg.materialize(assets, instance=instance, resources={"catalog": CatalogDatabase()}, raise_on_error=False, **kwargs)


def checks_of(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_waves_land_as_partitions_and_trends_publish_with_passing_checks(world, dagster_instance):
    url, _ = world
    # Spoil wave 2's export: an out-of-range answer and a second response from a1.
    export = surveys_root() / "exports" / Q2 / "responses.csv"
    lines = export.read_text().splitlines()
    header = lines[0].split(",")
    bad = lines[1].split(",")
    bad[header.index("sat_overall")] = "9"
    export.write_text("\n".join([*lines, ",".join(bad)]) + "\n")

    instance = dagster_instance
    first = materialize([survey_responses], instance, partition_key=Q1)
    assert first.success
    assert checks_of(first) == {ANSWERS_IN_RANGE: True, ONE_RESPONSE_PER_RESPONDENT: True}
    second = materialize([survey_responses], instance, partition_key=Q2)
    assert second.success  # bad rows are reported and dropped, the rest lands
    assert checks_of(second) == {ANSWERS_IN_RANGE: False, ONE_RESPONSE_PER_RESPONDENT: False}
    meta = second.asset_materializations_for_node("survey_responses")[0].metadata
    # The appended copy of a1's row is the later one (same timestamp, later in the file): it is kept,
    # minus its out-of-range answer, and a1's first row is dropped as the duplicate.
    assert meta["errors_by_kind"].value == {"out_of_range": 1, "duplicate_respondent": 1}
    assert meta["rows_landed"].value == meta["rows_read"].value - 1
    assert "responses.csv" in meta["errors"].value

    trends = materialize([survey_trends], instance)
    assert trends.success
    assert checks_of(trends) == {RESPONSE_RATE_COLLAPSE: True, PUBLISHED_RESPECT_K: True}
    meta = trends.asset_materializations_for_node("survey_trends")[0].metadata
    assert meta["waves"].value == 2 and meta["trend_rows"].value > 0


def test_a_wave_without_exports_fails_with_the_directory_to_fill(world, dagster_instance):
    result = materialize([survey_responses], dagster_instance, partition_key=Q3)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert f"no exports for wave '{Q3}'" in failure.description
    assert str(surveys_root() / "exports" / Q3) in failure.description


def test_the_sensor_requests_each_wave_whose_exports_changed(world):
    first = survey_exports_sensor(dg.build_sensor_context())
    assert sorted(r.partition_key for r in first.run_requests) == [Q1, Q2]
    quiet = survey_exports_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert not quiet.run_requests and quiet.skip_reason is not None  # a skip that keeps the cursor
    export = surveys_root() / "exports" / Q2 / "responses.csv"
    os.utime(export, ns=(export.stat().st_atime_ns, export.stat().st_mtime_ns + 10**9))
    again = survey_exports_sensor(dg.build_sensor_context(cursor=first.cursor))
    assert [r.partition_key for r in again.run_requests] == [Q2]
    assert json.loads(again.cursor)[Q1] == json.loads(first.cursor)[Q1]


def test_nothing_is_published_when_the_anonymity_verification_finds_a_leak(world, dagster_instance):
    import dataclasses

    from catalog_pipelines.storage.insights import read_frame

    _, org = world
    assert materialize([survey_responses], dagster_instance, partition_key=Q1).success
    engine = CatalogDatabase().get_engine()
    good = compute_survey_trends(org, surveys_root(), surveys_config_dir())
    publish_survey_trends(engine, good)
    # A result whose own verification found a leak (as if suppression had a bug) must not replace it.
    leaky = dataclasses.replace(good, trends=good.trends.iloc[:1], disclosures=[f"{Q1}/flow: {ALPHA} can be computed from group:default/eng"])
    with pytest.raises(RuntimeError, match="nothing was published"):
        publish_survey_trends(engine, leaky)
    assert len(read_frame(engine, SURVEYS.trends)) == len(good.trends)


def test_the_published_check_catches_a_figure_below_k_in_the_stored_tables(world, dagster_instance):
    from catalog_pipelines.storage.insights import read_frame, write_frame

    instance = dagster_instance
    assert materialize([survey_responses], instance, partition_key=Q1).success
    assert materialize([survey_trends], instance).success
    engine = CatalogDatabase().get_engine()
    assert published_violations(engine) == []
    trends = read_frame(engine, SURVEYS.trends)
    row = trends.index[(trends.metric == "mean")][0]
    trends.loc[row, ["suppressed", "respondents"]] = [False, 2]
    write_frame(engine, SURVEYS.trends, trends)
    problems = published_violations(engine)
    assert len(problems) == 1 and "shown with 2 respondents" in problems[0]


def test_cli_trends_reads_the_published_tables(world, dagster_instance):
    instance = dagster_instance
    for wave in (Q1, Q2):
        assert materialize([survey_responses], instance, partition_key=wave).success
    assert materialize([survey_trends], instance).success
    runner = CliRunner()
    out = runner.invoke(surveys_cli, ["trends", "--team", "alpha", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    (group,) = report["groups"]
    assert group["group_ref"] == ALPHA and report["min_group_size"] == {"rnd-pulse": 5}
    series = {(s["dimension"], s["metric"]): s["points"] for s in group["series"]}
    assert [p["wave"] for p in series[("participation", "response_rate")]] == [Q1, Q2]
    for points in series.values():
        for p in points:
            # Either a figure about at least k people, or nothing at all.
            assert (p["suppressed"] and p["value"] is None) or (not p["suppressed"] and (p["respondents"] or 0) >= 5 or p["respondents"] == 0)
    text = runner.invoke(surveys_cli, ["trends"])
    assert text.exit_code == 0 and "Engineering (group:default/eng)" in text.output
    waves = runner.invoke(surveys_cli, ["waves", "--json"])
    assert [w["wave"] for w in json.loads(waves.output)] == [Q1, Q2]
    missing = runner.invoke(surveys_cli, ["trends", "--team", "nobody"])
    assert missing.exit_code != 0 and "no survey figures for group 'nobody'" in missing.output


def test_cli_validate_lists_row_errors_and_exits_nonzero(world, tmp_path):
    bad = tmp_path / "export.csv"
    bad.write_text("email,sat_overall,sat_recommend\na1@example.com,6,9\n")
    out = CliRunner().invoke(surveys_cli, ["validate", str(bad), "--json"])
    assert out.exit_code == 1
    errors = json.loads(out.output)["errors"]
    assert {"file": "export.csv", "row": 2, "column": "sat_overall", "kind": "out_of_range", "message": "'6' is outside 1..5"} in errors


def test_survey_definitions_load_and_depend_only_on_known_assets():
    from catalog_pipelines.assets.surveys import survey_asset_checks, survey_assets
    from catalog_pipelines.jobs import survey_responses_job
    from catalog_pipelines.partitions import survey_waves

    defs = dg.Definitions(
        assets=survey_assets, asset_checks=survey_asset_checks, jobs=[survey_responses_job], sensors=[survey_exports_sensor], resources={"catalog": CatalogDatabase()}
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    external = {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable}
    assert external == {"catalog_snapshot"}  # provided by the ingestion assets
    (survey,) = load_surveys(surveys_config_dir())
    assert survey_waves.get_partition_keys() == [w.id for w in survey.waves]
