"""The Dagster side of the operator experience (issue 18) that needs no webserver: the embedded
instance's configuration, sensors that start from what is materialised, the lineage rule that no
demo-only asset feeds a production asset, and the Great Expectations checks run one at a time.

Protects:
- a copied or moved data directory writes its event log into itself, never into the original
  (dagster.yaml names no absolute path), and a dagster.yaml an older version wrote is rewritten;
- `survey_exports_sensor` with no cursor (the first UI start after `make demo`) requests no wave that
  was materialised from the same export files, and keeps a cursor; a changed export is requested;
- no demo-only asset is upstream of a production asset;
- one GX check can be executed alone (only it reports), and the checks say they are GX checks.
"""

from __future__ import annotations

import json
import os
import shutil

import dagster as dg
import pytest

from catalog_pipelines.instance import DEFAULT_INSTANCE_YAML, MARKER, ensure_instance_config


def _event(instance: dg.DagsterInstance, name: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=name))


def test_a_copied_data_directory_keeps_its_event_log_to_itself(tmp_path, monkeypatch):
    original, copy = tmp_path / "original" / "dagster_home", tmp_path / "copy" / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(original))
    ensure_instance_config(original)
    assert str(tmp_path) not in (original / "dagster.yaml").read_text()
    with dg.DagsterInstance.get() as instance:
        _event(instance, "before_the_copy")
    shutil.copytree(original.parent, copy.parent)
    shutil.rmtree(original.parent)  # moved, not copied: the original is gone

    monkeypatch.setenv("DAGSTER_HOME", str(copy))
    ensure_instance_config(copy)
    with dg.DagsterInstance.get() as instance:
        _event(instance, "after_the_copy")
        assert instance.get_latest_materialization_event(dg.AssetKey("before_the_copy")) is not None
        assert instance.get_latest_materialization_event(dg.AssetKey("after_the_copy")) is not None
    assert not original.parent.exists(), "the copy wrote into the original's directory"
    assert (copy / "history" / "event_log.db").is_file()


def test_a_dagster_yaml_written_with_an_absolute_path_is_rewritten_and_a_foreign_one_kept(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    old = DEFAULT_INSTANCE_YAML.replace("module: catalog_pipelines.instance", "module: dagster._core.storage.event_log") \
        .replace("RelocatableSqliteEventLogStorage", "ConsolidatedSqliteEventLogStorage") \
        .replace("base_dir: history", "base_dir: /somewhere/else/history")
    assert old.startswith(MARKER)
    (home / "dagster.yaml").write_text(old)
    ensure_instance_config(home)
    assert (home / "dagster.yaml").read_text() == DEFAULT_INSTANCE_YAML

    foreign = "# an operator's own configuration\ntelemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(foreign)
    ensure_instance_config(home)
    assert (home / "dagster.yaml").read_text() == foreign


# ---------------------------------------------------------------------------------------------
# sensors


def test_the_survey_sensor_starts_from_what_is_materialised_and_keeps_a_cursor(data_env, dagster_instance):
    import yaml

    from analytics.org import OrgGraph
    from analytics.surveys.config import load_surveys
    from catalog_pipelines.runs import materialize_waves
    from catalog_pipelines.sensors.surveys import survey_exports_sensor
    from catalog_pipelines.services.surveys import surveys_config_dir, surveys_root, write_synthetic_exports
    from catalog_pipelines.settings import Settings
    from helpers import TEST_DATA, seed_catalog

    entities = list(yaml.safe_load_all((TEST_DATA / "surveys" / "org.yaml").read_text()))
    seed_catalog(Settings.from_env().catalog_database_url, entities)
    (survey,) = load_surveys(surveys_config_dir())
    waves = [w.id for w in survey.waves][:2]
    write_synthetic_exports(surveys_root(), survey, OrgGraph.from_entities(entities), seed=3,
                            email_domain="example.com", waves=waves)
    # What `make demo` does: the waves are landed in-process, then the daemon starts the sensor.
    materialize_waves(dagster_instance, waves)

    first = survey_exports_sensor(dg.build_sensor_context(instance=dagster_instance))
    assert first.run_requests == [], [r.partition_key for r in first.run_requests]
    assert sorted(json.loads(first.cursor)) == sorted(waves)

    export = surveys_root() / "exports" / waves[1] / "responses.csv"
    os.utime(export, ns=(export.stat().st_atime_ns, export.stat().st_mtime_ns + 10**9))
    changed = survey_exports_sensor(dg.build_sensor_context(instance=dagster_instance, cursor=first.cursor))
    assert [r.partition_key for r in changed.run_requests] == [waves[1]]


# ---------------------------------------------------------------------------------------------
# lineage

# Assets that exist only for the demo (synthetic inputs) sit in the `demo` group. The synthetic
# *provider* is configuration: its chunk and sweep assets are production assets of a demo setup.
DEMO_GROUP = "demo"

def shipped_graph():
    """The asset graph of the shipped configuration (config/providers.yaml: examples + synthetic),
    built here rather than imported: `definitions.defs` is built from whatever environment first
    imported it."""
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import load_providers
    from catalog_pipelines.settings import CONFIG_DIR

    return build_definitions(load_providers(CONFIG_DIR / "providers.yaml")).resolve_asset_graph()


def _demo_only_upstream(group: str) -> dict[str, list[str]]:
    graph = shipped_graph()
    demo = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == DEMO_GROUP}
    assert demo, "the demo configuration has demo-only assets"
    found = {}
    for key in graph.get_all_asset_keys():
        if key in demo or graph.get(key).group_name != group and group != "*":
            continue
        upstream = dg.AssetSelection.assets(key).upstream().resolve(graph) - {key}
        bad = sorted(k.to_user_string() for k in upstream & demo)
        if bad:
            found[key.to_user_string()] = bad
    return found


@pytest.mark.parametrize("group", [
    "examples_ingestion", "synthetic_ingestion", "catalog", "surveys", "usage", "catalog_health",
    "facts", "scorecards", "dashboards",
])
def test_no_demo_only_asset_is_upstream_of_a_production_asset(group):
    graph = shipped_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert group in groups, sorted(groups)
    assert _demo_only_upstream(group) == {}


def test_ingestion_assets_carry_the_provider_in_name_and_group():
    graph = shipped_graph()
    for provider in ("examples", "synthetic"):
        for name in (f"{provider}_entity_chunk", f"{provider}_removal_sweep"):
            assert graph.get(dg.AssetKey(name)).group_name == f"{provider}_ingestion"


# ---------------------------------------------------------------------------------------------
# Great Expectations checks


def test_one_great_expectations_check_runs_alone_and_is_marked_as_one(catalog_url, dagster_instance):
    from catalog_pipelines.assets.catalog_quality import GX_KIND, GX_TAGS, OWNERS_RESOLVABLE, SEVERITY, catalog_quality_checks
    from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
    from catalog_pipelines.resources import CatalogDatabase
    from helpers import seed_catalog

    seed_catalog(catalog_url, [
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "a"},
         "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/nobody"}},
    ])

    @dg.asset(key=CATALOG_SNAPSHOT)
    def catalog_snapshot() -> None:
        return None

    key = dg.AssetCheckKey(CATALOG_SNAPSHOT, OWNERS_RESOLVABLE)
    result = dg.materialize([catalog_snapshot, catalog_quality_checks], selection=dg.AssetSelection.checks(key),
                            resources={"catalog": CatalogDatabase(url=catalog_url)}, instance=dagster_instance)
    assert [(e.check_name, e.passed) for e in result.get_asset_check_evaluations()] == [(OWNERS_RESOLVABLE, False)]
    assert result.get_asset_materialization_events() == []  # the check alone, not the asset

    assert catalog_quality_checks.op.tags.get("catalog/check_suite") == GX_TAGS["catalog/check_suite"]
    specs = {spec.name: spec for spec in catalog_quality_checks.check_specs}
    assert set(specs) == set(SEVERITY)
    for spec in specs.values():
        assert spec.metadata["check_suite"] == GX_KIND and spec.description.startswith("[Great Expectations]")
