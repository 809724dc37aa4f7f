"""Web UI smoke test: `dagster-webserver` and `dagster-daemon` against the PostgreSQL instance.

Protects: the real code location (workspace.yaml) loads in the webserver and the daemon with the
production dagster.yaml; the GraphQL API the UI uses serves the asset graph, the chunk partitions and
their statuses, the sensors (running, and ticking in the daemon against PostgreSQL) and the provider
health check results of a cycle that ran on the same instance and catalog.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from helpers import free_port, production_instance, stop_process_groups
from test_production_instance import EXAMPLES_ROOTS, REPO, write_providers

PROVIDER = "ui_examples"
LOCATION = "catalog_pipelines.definitions"  # workspace.yaml names the location after the module
STARTUP_SECONDS = 90


def stop(procs: list[subprocess.Popen]) -> None:
    """Stop servers and the code servers they spawned (each in the session it was started in)."""
    stop_process_groups(procs, grace=10)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001  (the server is still starting)
            last = exc
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}: {last!r}\n{tails}")


class GraphQL:
    def __init__(self, port: int) -> None:
        import httpx

        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


ASSET_GRAPH = """
query {
  assetNodes { assetKey { path } dependencyKeys { path } groupName isPartitioned isMaterializable }
}"""

CHUNK_PARTITIONS = """
query ($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      partitionKeys
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions }
      }
    }
  }
}"""

SENSORS = """
query ($location: String!) {
  sensorsOrError(repositorySelector: {repositoryLocationName: $location, repositoryName: "__repository__"}) {
    __typename
    ... on Sensors { results { name sensorState { status ticks(limit: 5) { status skipReason error { message } } } } }
  }
}"""

CHECK_EXECUTIONS = """
query ($path: [String!]!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: "provider_health", limit: 5) {
    status runId evaluation { success severity description }
  }
}"""

DAEMONS = """
query { instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }
"""


@pytest.mark.postgres
def test_webserver_and_daemon_serve_the_catalog_on_postgres(production_dagster_home, postgres_url, tmp_path):  # noqa: F811
    from catalog_pipelines.assets.ingestion import chunk_asset_key, sweep_asset_key
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import load_providers
    from catalog_pipelines.runs import run_cycle

    _, dagster_env = production_dagster_home
    providers = write_providers(tmp_path / "providers.yaml", [
        {"name": PROVIDER, "type": "files", "roots": EXAMPLES_ROOTS,
         "options": {"chunk_size": 30, "sensor_interval_seconds": 5}},
    ])
    (config,) = load_providers(providers)

    env = {
        **os.environ,
        **dagster_env,
        "CATALOG_DATABASE_URL": postgres_url,
        "CATALOG_PIPELINES_PROVIDERS": str(providers),
        "CATALOG_PIPELINES_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("CATALOG_PIPELINES_EXECUTOR", None)
    bin_dir = Path(sys.executable).parent
    port = free_port()
    logs = [tmp_path / "webserver.log", tmp_path / "daemon.log"]

    def start(command: list[str], log: Path) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True)

    # The webserver boots (it only reads) while one full cycle runs on this instance and catalog:
    # chunk partitions, the sweep and its health check. The daemon starts after the cycle, or its
    # sensor would start a cycle of its own.
    servers = [start([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], logs[0])]
    try:
        with production_instance(dagster_env) as instance:
            report = run_cycle(build_definitions([config], catalog_url=postgres_url), config, instance)
        assert report.chunks >= 2
        servers.append(start([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], logs[1]))
    except BaseException:
        stop(servers)
        raise
    try:
        gql = GraphQL(port)
        wait_for("the webserver", lambda: gql.client.get("/server_info").status_code == 200, STARTUP_SECONDS, logs)

        # The asset graph: the provider's chunk asset feeds its sweep, the sweeps feed the snapshot.
        nodes = {tuple(n["assetKey"]["path"]): n for n in gql(ASSET_GRAPH)["assetNodes"]}
        chunk, sweep = tuple(chunk_asset_key(PROVIDER).path), tuple(sweep_asset_key(PROVIDER).path)
        assert nodes[chunk]["isPartitioned"] and nodes[chunk]["groupName"] == f"{PROVIDER}_ingestion"
        assert [chunk] == [tuple(d["path"]) for d in nodes[sweep]["dependencyKeys"]]
        assert sweep in {tuple(d["path"]) for d in nodes[("catalog_snapshot",)]["dependencyKeys"]}
        assert all(n["isMaterializable"] for n in nodes.values()), "an unknown dep became an external asset"

        # The chunk partitions of the cycle, all materialized.
        node = gql(CHUNK_PARTITIONS, path=list(chunk))["assetNodeOrError"]
        keys = [f"{i:05d}" for i in range(report.chunks)]
        assert node["partitionKeys"] == keys
        assert node["partitionStats"] == {"numMaterialized": report.chunks, "numPartitions": report.chunks,
                                          "numFailed": 0, "numMaterializing": 0}
        statuses = node["assetPartitionStatuses"]
        assert statuses["materializedPartitions"] == keys and not statuses["failedPartitions"]

        # The provider health check ran with the sweep and passed.
        executions = gql(CHECK_EXECUTIONS, path=list(sweep))["assetCheckExecutions"]
        assert executions and executions[0]["status"] == "SUCCEEDED"
        assert executions[0]["evaluation"]["success"] is True and executions[0]["evaluation"]["severity"] == "ERROR"

        # The daemon is up against PostgreSQL and evaluates the provider's sensor: the provider is
        # resting after its cycle, so the tick is a skip that says so.
        def sensor_ticked():
            data = gql(SENSORS, location=LOCATION)["sensorsOrError"]
            assert data["__typename"] == "Sensors", data
            states = {s["name"]: s["sensorState"] for s in data["results"]}
            finished = [t for t in states[f"{PROVIDER}_ingestion_sensor"]["ticks"] if t["status"] != "STARTED"]
            return states if finished else None

        sensors = wait_for("a finished tick of the ingestion sensor", sensor_ticked, STARTUP_SECONDS, logs)
        assert sensors[f"{PROVIDER}_ingestion_sensor"]["status"] == "RUNNING"
        assert sensors["ingestion_failure_sensor"]["status"] == "RUNNING"
        tick = next(t for t in sensors[f"{PROVIDER}_ingestion_sensor"]["ticks"] if t["status"] != "STARTED")
        assert tick["status"] == "SKIPPED" and "rest" in (tick["skipReason"] or ""), tick
        daemons = {d["daemonType"]: d for d in gql(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]}
        assert daemons["SENSOR"]["healthy"] and daemons["QUEUED_RUN_COORDINATOR"]["healthy"], daemons
    finally:
        stop(servers)

    # Nothing was launched behind our back: the only runs are the cycle's.
    with production_instance(dagster_env) as instance:
        runs = instance.get_run_records(dg.RunsFilter(tags={"catalog/provider": PROVIDER}))
    assert len(runs) == report.chunks + 1
