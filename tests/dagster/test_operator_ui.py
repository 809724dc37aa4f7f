"""The Dagster UI as an operator meets it (issue 18): `dagster-webserver` on the embedded instance of a
data directory where two providers ran, queried through the GraphQL API the UI itself uses, and
looked at in headless Chromium.

Protects:
- every job, schedule and sensor has a name and a description an operator understands; no
  `__anonymous_asset_job_…` is listed; the health schedule targets a named job, hourly (not every
  five minutes);
- the lineage graph tells providers apart: `<provider>_entity_chunk` / `<provider>_removal_sweep`
  in one `<provider>_ingestion` group each;
- the Runs page can be filtered to one cycle of one provider (`catalog/cycle`, `catalog/chunk` tags),
  although chunk partition keys restart at 00000 every cycle (bounded partition set);
- the Great Expectations checks can each be executed on their own and say they are GX checks;
- a screenshot of the asset graph and of one chunk partition page (saved under
  test-artifacts/dagster-ui/, git-ignored), with the provider's names on them.

One webserver for the module (about 15 s to boot); the browser part needs Debian's chromium and
playwright like tests/dashboards/test_dashboards_browser.py (a missing browser skips locally and
fails under CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port, patched_environ, require_chromium, stop_process_groups
from test_production_instance import EXAMPLES_ROOTS, REPO, write_providers
from test_production_webserver import STARTUP_SECONDS, GraphQL, wait_for

LOCATION = "catalog_pipelines.definitions"
PROVIDERS = ("alpha", "beta")
ARTIFACTS = REPO / "test-artifacts" / "dagster-ui"

REPOSITORY = """
query ($location: String!) {
  repositoryOrError(repositorySelector: {repositoryLocationName: $location, repositoryName: "__repository__"}) {
    __typename
    ... on Repository {
      jobs { name description isAssetJob }
      schedules { name description pipelineName cronSchedule }
      sensors { name description }
    }
  }
}"""

ASSET_NODES = "query { assetNodes { assetKey { path } groupName dependencyKeys { path } } }"

CHECKS = """
query ($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name description canExecuteIndividually } } } }
  }
}"""

RUNS = """
query ($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) { ... on Runs { results { runId jobName tags { key value } } } }
}"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """Two providers ingested (alpha twice: two cycles) into a fresh data directory, and a
    webserver on it; yields (GraphQL client, base URL, {provider: [chunks per cycle]})."""
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import load_providers
    from catalog_pipelines.runs import instance_from_env, run_cycle

    root = tmp_path_factory.mktemp("operator-ui")
    providers = write_providers(root / "providers.yaml", [
        {"name": name, "type": "files", "roots": EXAMPLES_ROOTS, "options": {"chunk_size": 30}} for name in PROVIDERS
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "DAGSTER_"))}
    env.update({"CATALOG_PIPELINES_DATA_DIR": str(root / "data"), "CATALOG_PIPELINES_PROVIDERS": str(providers),
                "DAGSTER_HOME": str(root / "data" / "dagster_home")})
    cycles: dict[str, list[int]] = {}
    with patched_environ({k: env[k] for k in ("CATALOG_PIPELINES_DATA_DIR", "CATALOG_PIPELINES_PROVIDERS", "DAGSTER_HOME")}):
        configs = load_providers(providers)
        defs = build_definitions(configs)
        instance = instance_from_env()
        for config in configs:
            for _ in range(2 if config.name == "alpha" else 1):
                cycles.setdefault(config.name, []).append(run_cycle(defs, config, instance).chunks)
        instance.dispose()
    port = free_port()
    log = root / "webserver.log"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        gql = GraphQL(port)
        wait_for("the webserver", lambda: gql.client.get("/server_info").status_code == 200, STARTUP_SECONDS, [log])
        wait_for("the code location", lambda: gql(REPOSITORY, location=LOCATION)["repositoryOrError"]["__typename"] == "Repository",
                 STARTUP_SECONDS, [log])
        yield gql, f"http://127.0.0.1:{port}", cycles
    finally:
        stop_process_groups([server], grace=10)


def test_every_job_schedule_and_sensor_is_named_and_described_and_health_runs_hourly(ui):
    from catalog_pipelines.schedules import HEALTH_CRON

    gql, _, _ = ui
    repo = gql(REPOSITORY, location=LOCATION)["repositoryOrError"]
    jobs = {j["name"]: j for j in repo["jobs"]}
    assert not [name for name in jobs if name.startswith("__anonymous")], sorted(jobs)
    # __ASSET_JOB is Dagster's hidden implicit job (the UI never lists it).
    undescribed = [name for name, j in jobs.items() if name != "__ASSET_JOB" and not (j["description"] or "").strip()]
    assert undescribed == []
    schedules = {s["name"]: s for s in repo["schedules"]}
    assert all((s["description"] or "").strip() for s in schedules.values()), schedules
    assert all(not s["pipelineName"].startswith("__") for s in schedules.values()), schedules
    health = schedules["provider_health_schedule"]
    assert health["pipelineName"] == "provider_health_job" and health["cronSchedule"] == HEALTH_CRON
    minute, hour, *_ = HEALTH_CRON.split()
    assert minute.isdigit() and hour == "*"  # once an hour: 24 runs a day, not 288
    sensors = {s["name"]: s["description"] for s in repo["sensors"]}
    for name in ("survey_exports_sensor", "usage_arrivals_sensor", "insights_automation_sensor", "alpha_ingestion_sensor"):
        assert (sensors[name] or "").strip(), name


def test_lineage_names_and_groups_show_the_provider(ui):
    gql, _, _ = ui
    nodes = {"/".join(n["assetKey"]["path"]): n for n in gql(ASSET_NODES)["assetNodes"]}
    for provider in PROVIDERS:
        chunk, sweep = nodes[f"{provider}_entity_chunk"], nodes[f"{provider}_removal_sweep"]
        assert chunk["groupName"] == sweep["groupName"] == f"{provider}_ingestion"
        assert [d["path"] for d in sweep["dependencyKeys"]] == [[f"{provider}_entity_chunk"]]
    # No two nodes share a label (the graph shows the last part of a key).
    labels = [key.split("/")[-1] for key in nodes]
    assert len(labels) == len(set(labels))


def test_the_runs_of_one_cycle_are_found_by_their_tags(ui):
    gql, _, cycles = ui
    first, second = cycles["alpha"]
    runs = gql(RUNS, tags=[{"key": "catalog/provider", "value": "alpha"}, {"key": "catalog/cycle", "value": "2"}])["runsOrError"]["results"]
    chunk_runs = [r for r in runs if r["jobName"] == "alpha_chunk_job"]
    assert len(chunk_runs) == second and len(runs) == second + 1  # its chunks and its sweep
    chunk_tags = sorted({t["key"]: t["value"] for t in r["tags"]}["catalog/chunk"] for r in chunk_runs)
    assert chunk_tags == [f"c2-{i:05d}" for i in range(second)]
    # The same partition key in cycle 1 is another run, found by its own tag.
    (one,) = gql(RUNS, tags=[{"key": "catalog/chunk", "value": "c1-00000"}, {"key": "catalog/provider", "value": "alpha"}])["runsOrError"]["results"]
    assert {t["key"]: t["value"] for t in one["tags"]}["dagster/partition"] == "00000"
    assert first >= 2


def test_great_expectations_checks_run_on_their_own_and_say_what_they_are(ui):
    from catalog_pipelines.assets.catalog_quality import SEVERITY

    gql, _, _ = ui
    node = gql(CHECKS, path=["catalog_snapshot"])["assetNodeOrError"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert set(SEVERITY) <= set(checks)
    for name in SEVERITY:
        assert checks[name]["canExecuteIndividually"] == "CAN_EXECUTE", checks[name]
        assert checks[name]["description"].startswith("[Great Expectations]")


def _settle(page) -> None:
    """Dismiss the first-visit community dialog and wait until nothing says Loading…"""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=3_000)
        skip.click()
    except Exception:  # noqa: BLE001 - the dialog is shown once per browser profile, or not at all
        pass
    page.wait_for_function("() => !document.body.innerText.includes('Loading')", timeout=30_000)


def test_screenshots_of_the_asset_graph_and_a_chunk_partition_show_the_provider(ui):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    _, base, _ = ui
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # The lineage of the alpha provider's group: both of its nodes, labelled with its name.
            page.goto(f"{base}/locations/{LOCATION}/asset-groups/alpha_ingestion/lineage", timeout=60_000)
            page.get_by_text("alpha_removal_sweep").first.wait_for(timeout=60_000)
            page.get_by_text("alpha_entity_chunk").first.wait_for(timeout=30_000)
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "asset-graph.png"))

            # One chunk partition of beta: the partition key and the materialisation's cycle metadata.
            page.goto(f"{base}/assets/beta_entity_chunk?view=partitions&partition=00001", timeout=60_000)
            page.get_by_text("beta_entity_chunk").first.wait_for(timeout=60_000)
            page.get_by_text("00001").first.wait_for(timeout=30_000)
            # The partition's latest materialisation: its metadata names the cycle and the sequence.
            page.get_by_text("sequence", exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("cycle", exact=True).first.wait_for(timeout=30_000)
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "chunk-partition.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    for name in ("asset-graph.png", "chunk-partition.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000, name
