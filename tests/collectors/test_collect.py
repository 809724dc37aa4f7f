"""Collectors end to end: registry (entry points), collectors.yaml, annotation mapping, storage with
cursors and retention, the fact catalog scorecards validate against, and `facts collect|show`."""

from __future__ import annotations

import json
import sys
import textwrap
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from analytics.scorecards.config import ScorecardConfigError, load_config_texts
from catalog_pipelines.collectors.base import ENTITY_REF, Observation, Target
from catalog_pipelines.collectors.registry import BUILTIN_COLLECTORS, COLLECTOR_GROUP, COLLECTORS
from catalog_pipelines.services.collectors_config import MissingVariableError
from catalog_pipelines.services import facts as service
from catalog_pipelines.storage import facts as store
from catalog_pipelines.storage.db import get_engine
from helpers import REPO_ROOT, install_example_collector, seed_catalog

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def component(name: str, **annotations: str) -> dict:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}}


@pytest.fixture
def example_package(tmp_path, monkeypatch):
    install_example_collector(tmp_path / "site", monkeypatch)


@pytest.fixture
def setup(catalog_url, tmp_path, example_package):
    seed_catalog(catalog_url, [
        component("petstore", **{"github.com/project-slug": "acme/petstore"}),
        component("orders", **{"backstage.io/source-location": "url:https://GitHub.com/acme/orders/tree/main/"}),
        component("shared-a", **{"github.com/project-slug": "acme/shared"}),
        component("shared-b", **{"github.com/project-slug": "ACME/shared"}),
        component("quiet"),
    ])
    records = [
        {"repository": "github.com/acme/petstore", "deployments": 12, "last_status": "success", "at": "2026-12-06T10:00:00Z"},
        {"repository": "github.com/acme/orders.git", "deployments": 3, "last_status": "failed", "at": "2026-12-06T11:00:00Z"},
        {"repository": "github.com/acme/shared", "deployments": 1},
        {"repository": "github.com/acme/unknown", "deployments": 5},
        {"deployments": 9},
    ]
    (tmp_path / "deploys.json").write_text(json.dumps(records))
    config = tmp_path / "collectors.yaml"
    config.write_text(textwrap.dedent("""
        collectors:
          - name: deploys
            type: acme_deploys
            params: {file: deploys.json, page_size: "${PAGE_SIZE}"}
            cadence: "0 6 * * *"
            retention: {max_items: 1}
            facts:
              deployments: {type: number, description: deployments in the window}
              last_status: {type: string, description: latest deployment status}
    """))
    return get_engine(catalog_url), config, tmp_path


def test_builtin_collectors_in_code_equal_the_pyproject_entry_points():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"][COLLECTOR_GROUP] == BUILTIN_COLLECTORS
    assert set(BUILTIN_COLLECTORS) == {"report_files", "github", "gitlab", "jira", "pagerduty", "sonarqube"}


def test_a_collector_from_another_package_maps_by_annotations_and_counts_what_it_cannot_map(setup):
    engine, config, _ = setup
    assert "acme_deploys" in COLLECTORS.names()
    run = service.collect(engine, "deploys", config_path=config, environ={"PAGE_SIZE": "2"}, now=NOW)
    assert (run["observations"], run["mapped"], run["unmapped"], run["ambiguous"], run["rejected"]) == (4, 2, 1, 1, 1)
    assert run["batches"] == 3 and run["cursor"] == {"offset": 5}
    details = store.last_runs(engine, "deploys")[0]["details"]
    assert details["unmapped"] == ["deploys.json[3] (github.com/project-slug=acme/unknown, backstage.io/source-location=url:https://github.com/acme/unknown)"]
    assert details["ambiguous"][0]["entities"] == ["component:default/shared-a", "component:default/shared-b"]
    assert details["rejections"] == ["deploys.json[4]: no repository 'host/owner/name'"]
    # Mapped through the slug, and through a source location written with `url:`, host case and `/tree/main/`.
    orders = service.entity_facts(engine, "orders")["sources"]["deploys"]
    assert orders["facts"] == {"deployments": 3, "last_status": "failed"} and orders["origin"] == "deploys.json[1]"
    assert service.entity_facts(engine, "component:default/petstore")["sources"]["deploys"]["facts"]["deployments"] == 12
    latest = service.load_latest_facts(engine)["deploys"].set_index("entity_ref")
    assert latest.loc["component:default/petstore", "last_status"] == "success"


def test_the_cursor_is_stored_with_its_batch_so_a_failed_run_resumes_after_the_last_stored_batch(setup, monkeypatch):
    engine, config, _ = setup
    real, calls = store.store_batch, []

    def failing_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "store_batch", failing_second)
    with pytest.raises(RuntimeError, match="went away"):
        service.collect(engine, "deploys", config_path=config, environ={"PAGE_SIZE": "2"}, now=NOW)
    assert store.read_cursor(engine, "deploys") == {"offset": 2}
    assert store.last_runs(engine, "deploys")[0]["details"]["error"] == "RuntimeError: database went away"
    monkeypatch.setattr(store, "store_batch", real)
    run = service.collect(engine, "deploys", config_path=config, environ={"PAGE_SIZE": "2"}, now=NOW)
    assert run["observations"] == 2 and run["cursor"] == {"offset": 5}  # records 2.. only
    again = service.collect(engine, "deploys", config_path=config, environ={"PAGE_SIZE": "2"}, now=NOW)
    assert again["observations"] == 0 and again["stored"] == 0


def test_new_facts_merge_into_the_latest_and_retention_keeps_max_items_per_entity(setup):
    engine, _, _ = setup
    first = store.MappedObservation("component:default/petstore", NOW - timedelta(days=1), "a", {"deployments": 1, "last_status": "success"})
    second = store.MappedObservation("component:default/petstore", NOW, "b", {"deployments": 2})
    assert store.store_batch(engine, "deploys", [first], None, NOW)["stored"] == 1
    assert store.store_batch(engine, "deploys", [first], None, NOW) == {"stored": 0, "unchanged": 1}
    store.store_batch(engine, "deploys", [second], None, NOW)
    assert store.history_count(engine, "deploys") == 2
    [row] = store.latest_facts(engine, collectors=["deploys"])
    assert row["facts"] == {"deployments": 2, "last_status": "success"} and row["origin"] == "b"
    assert store.apply_retention(engine, "deploys", max_items=1, ttl=None, now=NOW) == 1
    assert store.apply_retention(engine, "deploys", max_items=None, ttl=timedelta(hours=1), now=NOW + timedelta(days=1)) == 1
    assert list(store.latest_facts(engine, collectors=["deploys"])) == []  # expired: 'not reported'


def test_scorecard_checks_may_reference_declared_collector_facts_only(setup):
    _, config, _ = setup
    catalog = service.fact_catalog(config)
    assert catalog["deploys.deployments"].type == "number" and "catalog.has_owner" in catalog
    rule = "checks:\n  - id: c\n    name: C\n    rule: {fact: %s, operator: greaterThan, value: 0}\n"
    assert "c" in load_config_texts([("a.yaml", rule % "deploys.deployments")], facts=catalog).checks
    with pytest.raises(ScorecardConfigError, match=r"a.yaml:4: check 'c': unknown fact 'deploys.deploymnets' \(did you mean 'deploys.deployments'\?\)"):
        load_config_texts([("a.yaml", rule % "deploys.deploymnets")], facts=catalog)


def test_collectors_yaml_facts_are_checked_against_what_the_type_declares(setup, monkeypatch):
    _, config, tmp_path = setup
    monkeypatch.setenv("PAGE_SIZE", "2")
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("{type: string, description: latest deployment status}", "{type: number}")
                   .replace("deployments: {type: number", "deploymnts: {type: number"))
    issues = [str(i) for i in service.validate_collectors_file(bad, "bad.yaml")]
    assert issues == [
        "bad.yaml:9: collectors[0].facts.deploymnts: collector 'deploys': fact 'deploymnts' is not one type 'acme_deploys' declares (did you mean 'deployments'?)",
        "bad.yaml:10: collectors[0].facts.last_status: collector 'deploys': fact 'last_status' is a string in type 'acme_deploys', not a number",
    ]
    assert service.validate_collectors_file(config, "collectors.yaml") == []
    with pytest.raises(MissingVariableError, match=r"collector 'deploys': params.page_size: environment variable PAGE_SIZE is not set"):
        monkeypatch.delenv("PAGE_SIZE")
        service.collect(get_engine("sqlite://"), "deploys", config_path=config, environ={})


@pytest.mark.parametrize(("value", "expected"), [
    ("url:https://GitHub.com/Acme/Petstore/tree/main/", "https://github.com/acme/petstore"),
    ("https://github.com/acme/petstore.git", "https://github.com/acme/petstore"),
    ("url:https://gitlab.example.com/group/sub/repo/-/tree/main/src", "https://gitlab.example.com/group/sub/repo"),
    ("https://github.com/acme/petstore/blob/main/catalog-info.yaml", "https://github.com/acme/petstore"),
])
def test_source_locations_compare_normalised(value, expected):
    assert service.normalise_location(value) == expected


def test_mapping_never_guesses_jira_slices_and_entity_ref_fallback():
    index = service.AnnotationIndex.from_annotations([
        ("component:default/a", {"jira/project-key": "PAY"}),
        ("component:default/b", {"jira/project-key": "PAY", "jira/component": "ledger"}),
        ("component:default/c", {"pagerduty.com/service-id": "PX1", "pagerduty.com/integration-key": "k1"}),
    ], ["component:default/a", "component:default/b", "component:default/c", "component:default/d"])
    obs = lambda *targets: Observation(tuple(Target(a, v) for a, v in targets), {}, NOW)  # noqa: E731
    assert index.resolve(obs(("jira/project-key", "pay"))) == ("component:default/a", [])
    assert index.resolve(obs(("jira/project-key", "PAY;jira/component=Ledger"))) == ("component:default/b", [])
    assert index.resolve(obs(("pagerduty.com/service-id", "nope"), ("pagerduty.com/integration-key", "k1"))) == ("component:default/c", [])
    assert index.resolve(obs((ENTITY_REF, "d"))) == ("component:default/d", [])
    assert index.resolve(obs((ENTITY_REF, "zzz"), ("sonarqube.org/project-key", "x"))) == (None, [])


def test_a_jira_project_shared_by_a_teams_entities_maps_to_each_but_a_shared_repository_stays_ambiguous():
    index = service.AnnotationIndex.from_annotations([
        ("component:default/a", {"jira/project-key": "PAY", "github.com/project-slug": "acme/mono"}),
        ("component:default/b", {"jira/project-key": "PAY", "github.com/project-slug": "acme/mono"}),
        ("component:default/c", {"jira/project-key": "PAY", "jira/component": "ledger"}),
    ], ["component:default/a", "component:default/b", "component:default/c"])
    obs = lambda *targets: Observation(tuple(Target(a, v) for a, v in targets), {}, NOW)  # noqa: E731
    # the whole project: every entity declaring exactly PAY, never the one narrowed to a component
    assert index.resolve_all(obs(("jira/project-key", "PAY"))) == (["component:default/a", "component:default/b"], [])
    assert index.resolve_all(obs(("jira/project-key", "PAY;jira/component=ledger"))) == (["component:default/c"], [])
    # a repository two entities claim is ambiguous: stored for none, listed with both
    assert index.resolve_all(obs(("github.com/project-slug", "acme/mono"))) == ([], ["component:default/a", "component:default/b"])


def test_facts_collect_and_show_commands(setup, monkeypatch, catalog_url):
    from catalog_pipelines.cli import main

    _, config, _ = setup
    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    monkeypatch.setenv("CATALOG_PIPELINES_COLLECTORS", str(config))
    monkeypatch.setenv("PAGE_SIZE", "10")
    result = CliRunner().invoke(main, ["facts", "collect", "--json"])
    assert result.exit_code == 1, result.output  # one record was rejected; the rest landed
    [run] = json.loads(result.stdout)
    assert (run["collector"], run["mapped"], run["rejected"]) == ("deploys", 2, 1)
    shown = CliRunner().invoke(main, ["facts", "show", "petstore", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["sources"]["deploys"]["facts"]["deployments"] == 12
    unknown = CliRunner().invoke(main, ["facts", "collect", "--collector", "nope"])
    assert unknown.exit_code == 2 and "no collector named 'nope'" in unknown.output
