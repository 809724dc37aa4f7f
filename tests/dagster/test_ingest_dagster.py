"""Chunked ingestion through Dagster end to end (issue: foundation): the example catalog, idempotent
second cycles, bad input in a chunk, and the CLI reads on top."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from catalog_pipelines.cli import main
from catalog_pipelines.definitions import build_definitions
from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.runs import run_cycle
from conftest import EXAMPLES, REPO

EXAMPLE_ROOTS = [str(EXAMPLES / "all.yaml"), str(EXAMPLES / "acme-corp.yaml")]


def examples_config(chunk_size: int = 10) -> ProviderConfig:
    return ProviderConfig(name="examples", type="files", params={"roots": EXAMPLE_ROOTS},
                          options=IngestionOptions(chunk_size=chunk_size))


@pytest.fixture
def instance(dagster_instance):
    return dagster_instance


def test_every_entity_reachable_from_the_example_roots_ingests_and_a_second_cycle_changes_nothing(instance, catalog_url):
    config = examples_config()
    defs = build_definitions([config], catalog_url=catalog_url)
    first = run_cycle(defs, config, instance)
    assert (first.added, first.rejected) == (66, 0)
    assert first.chunks >= 6 and first.sweep["outcome"] == "nothing-to-remove"
    partitions = instance.get_dynamic_partitions("examples_chunks")
    second = run_cycle(defs, config, instance)
    assert (second.added, second.changed, second.unchanged, second.rejected) == (0, 0, 66, 0)
    assert second.partitions_added == 0
    assert instance.get_dynamic_partitions("examples_chunks") == partitions
    store = defs.resources["catalog"].store()
    assert store.count("examples") == 66
    # Chunk metadata shows up on the partition's materialization in the UI.
    event = instance.get_latest_materialization_event(dg.AssetKey("examples_entity_chunk"))
    meta = event.asset_materialization.metadata
    assert {"added", "changed", "unchanged", "rejected", "cursor", "duration_s"} <= set(meta)


# Hand-checked against the YAML in tests/data/backstage-examples (both directions of each pair).
HAND_WRITTEN_RELATIONS = {
    # a group with a parent and children
    "group:default/backstage": [
        ("childOf", "group:default/infrastructure"),
        ("parentOf", "group:default/team-a"),
        ("parentOf", "group:default/team-b"),
    ],
    # a user in namespace `development` that belongs to a group in `default`
    "user:development/guest": [("memberOf", "group:default/team-a")],
    # a system: owner and domain from its own spec, parts from two components' specs
    "system:default/audio-playback": [
        ("hasPart", "component:default/playback-sdk"),
        ("hasPart", "component:default/shuffle-api"),
        ("ownedBy", "group:default/team-c"),
        ("partOf", "domain:default/playback"),
    ],
    # a component owned by a user (`owner: user:guest`)
    "component:default/shuffle-api": [
        ("ownedBy", "user:default/guest"),
        ("partOf", "system:default/audio-playback"),
    ],
}


@pytest.mark.parametrize("ref", sorted(HAND_WRITTEN_RELATIONS))
def test_relations_in_the_catalog_match_hand_written_expectations(instance, catalog_url, ref):
    url = catalog_url
    config = examples_config(chunk_size=100)
    defs = build_definitions([config], catalog_url=url)
    run_cycle(defs, config, instance)
    assert defs.resources["catalog"].store().relations_of(ref) == HAND_WRITTEN_RELATIONS[ref]


def test_bad_documents_are_rejected_with_reasons_and_the_rest_of_the_chunk_lands(instance, catalog_url, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = "\n".join(
        f"---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {{name: good-{i}}}\n"
        f"spec: {{type: service, lifecycle: production, owner: team-a}}" for i in range(5)
    )
    (src / "mixed.yaml").write_text(
        good
        + "\n---\n- just\n- a list\n"
        + "---\napiVersion: backstage.io/v1alpha1\nkind: Gadget\nmetadata: {name: unknown-kind}\nspec: {}\n"
        + "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: good-0}\n"
        + "spec: {type: service, lifecycle: production, owner: team-a}\n"
        + "---\n!!python/object:os.system {}\n"
    )
    (src / "broken.yaml").write_text("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: [unclosed\n")
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                                                    for p, c in zip("abcdefgh", "bcdefghi"))
    (src / "bomb.yaml").write_text(bomb)
    (src / "huge.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: huge\n  annotations:\n"
        f"    example.com/blob: {'x' * 10_000_000}\nspec: {{type: service, lifecycle: production, owner: team-a}}\n"
    )
    url = catalog_url
    config = ProviderConfig(name="adhoc", type="files", params={"roots": [str(src)]}, options=IngestionOptions(chunk_size=100))
    defs = build_definitions([config], catalog_url=url)
    report = run_cycle(defs, config, instance)
    store = defs.resources["catalog"].store()
    assert store.refs("adhoc") == {f"component:default/good-{i}" for i in range(5)}
    reasons = "\n".join(r["message"] for r in store.rejected("adhoc"))
    for needle in ("duplicate", "Gadget", "python", "alias", "broken.yaml", "huge"):
        assert needle.lower() in reasons.lower(), f"no rejection mentions {needle!r}:\n{reasons}"
    assert report.rejected >= 6


def test_definitions_load_and_every_dependency_is_produced_by_an_asset():
    from catalog_pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    external = {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable}
    assert external == set()


# Every Dagster run re-imports the code location: the heavy libraries the insight assets need are
# imported inside the functions that use them, never at import time. (Its import time is a
# benchmark figure, not a test: timings do not belong in assertions.)
HEAVY_MODULES = ["great_expectations", "plotly", "scipy", "pandas", "pyarrow", "numpy", "celery",
                 "dagster_celery", "dagster_k8s", "kubernetes", "jsonschema", "playwright", "uvicorn"]


def test_code_location_import_loads_none_of_the_heavy_libraries():
    code = ("import sys, json; import catalog_pipelines.definitions; "
            f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


def test_dagster_definitions_validate_cli_passes():
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli_ingest_path_then_describe_search_stats_rejected(data_env):
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(EXAMPLES), "--name", "tree", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["added"] == 68 - 1 and report["rejected"] >= 1  # the whole tree: invalid-component rejected
    rejected = json.loads(runner.invoke(main, ["catalog", "rejected", "--json"]).output)
    invalid = [r for r in rejected if "invalid-component.yaml" in r["location"]]
    text = " ".join(r["message"] for r in invalid)
    assert "metadata.name" in text and "go 1.15.3" in text
    info = json.loads(runner.invoke(main, ["catalog", "describe", "artist-lookup", "--json"]).output)
    assert info["owner"] == "group:default/team-a" and info["system"] == "system:default/artist-engagement-portal"
    assert info["domain"] == "domain:default/artists" and info["lifecycle"] == "experimental"
    assert info["depends_on"] == ["resource:default/artists-db"]
    assert {"title": "Dashboard", "url": "https://example.com/dashboard", "icon": "dashboard"} in info["deployment_links"]
    other_ns = json.loads(runner.invoke(main, ["catalog", "describe", "component:alternative/different-namespace", "--json"]).output)
    assert other_ns["owner"] == "group:default/team-a"
    hits = json.loads(runner.invoke(main, ["catalog", "search", "playback", "--json"]).output)
    assert any(h["ref"] == "system:default/audio-playback" for h in hits)
    stats = json.loads(runner.invoke(main, ["catalog", "stats", "--json"]).output)
    assert stats["by_provider"] == {"tree": 67}
    missing = runner.invoke(main, ["catalog", "describe", "component:default/nope"])
    assert missing.exit_code != 0 and "no entity" in missing.output


# ------------------------------------------------------------------ failures on the one-shot door (issue 15, item 7)


def test_cli_ingest_names_a_dead_source_in_one_line_records_it_and_still_runs_the_other_providers(data_env, tmp_path, monkeypatch):
    import yaml

    from helpers import free_port

    port = free_port()  # nothing listens: every request is refused
    providers = tmp_path / "providers.yaml"
    providers.write_text(yaml.safe_dump({"providers": [
        {"name": "dead", "type": "backstage_api", "base_url": f"http://127.0.0.1:{port}", "token": "t",
         "max_retries": 0, "options": {"retry_max": 0}},
        {"name": "examples", "type": "files", "roots": EXAMPLE_ROOTS, "options": {"chunk_size": 100}},
    ]}))
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(providers))
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", "--json"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("ingest: dead failed: ") and f"127.0.0.1:{port}" in line, line
    assert "attempt 1, next retry after" in line, line
    assert "Traceback" not in result.stderr and "Dagster" not in line and "Exceeded max_retries" not in line
    reports = {r["provider"]: r for r in json.loads(result.stdout)}
    assert reports["examples"]["added"] == 66 and not reports["examples"].get("error")
    assert reports["dead"]["attempts"] == 1 and reports["dead"]["error"] in line
    # The ledger knows, whichever door ran the cycle.
    status = runner.invoke(main, ["admin", "status", "dead", "--json"])
    assert status.exit_code == 0, status.output
    (report,) = json.loads(status.stdout)
    assert (report["state"], report["attempts"]) == ("backing off", 1)
    assert f"127.0.0.1:{port}" in report["last_error"] and report["next_action_at"]


def test_a_provider_error_is_not_retried_again_by_the_chunk_retry_policy(instance, catalog_url):
    """The provider retries its own requests; the chunk's RetryPolicy does not multiply them."""
    from backstage_fake import FakeBackstage, entity

    from catalog_pipelines.runs import CycleFailed

    with FakeBackstage([entity("Component", "a", type="service", lifecycle="production", owner="team-a")],
                       token="t", fault_rate=1.0, fault_kinds=("503",), retry_after="0") as server:
        config = ProviderConfig(
            name="api", type="backstage_api",
            params={"base_url": server.base_url, "token": "t", "max_retries": 1, "backoff_base": 0.0, "backoff_max": 0.0},
            options=IngestionOptions(retry_max=3, retry_delay_seconds=0),
        )
        defs = build_definitions([config], catalog_url=catalog_url)
        with pytest.raises(CycleFailed) as failed:
            run_cycle(defs, config, instance)
        requests = len(server.requests)
    assert requests == 2  # max_retries + 1; not (max_retries + 1) * (retry_max + 1) = 8
    assert "503" in failed.value.cause and failed.value.attempts == 1
    ingestion = defs.resources["catalog"].ledger().open_ingestion("api")
    assert ingestion.attempts == 1 and "503" in ingestion.last_error and ingestion.next_action == "backoff"
