"""Scale-out on Celery: real `dagster-celery` workers on the local RabbitMQ, a PostgreSQL Dagster
instance (deploy/dagster.yaml) and the catalog on PostgreSQL.

Protects: with CATALOG_PIPELINES_EXECUTOR=celery the code location's ingestion jobs send their steps
to Celery; two providers' cycles launched side by side run their chunks at the same time on two
workers; every entity of both sources is stored exactly once; and the worker configuration
(deploy/celery/celery.yaml) agrees with what the executor sends.

Parallelism is proven, not sampled: the two providers read from two local Backstage-API servers
that hold their first page until the other server has been asked for its first page too. Both
first chunks are then running at the same moment, which only two workers can do (each takes one
step at a time); on a single worker the rendezvous times out and the test fails.

The broker is `CATALOG_TEST_CELERY_BROKER` (default: the local RabbitMQ, guest/guest). Under CI a
missing broker fails the test; elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pytest
import yaml
from backstage_fake import FakeBackstage
from helpers import production_instance, stop_process_groups

from test_production_instance import (
    DEPLOY,
    EXAMPLES_ROOTS,
    REPO,
    require,
    write_providers,
)

BROKER = os.environ.get("CATALOG_TEST_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("CATALOG_TEST_CELERY_BACKEND", "rpc://")
WORKER_CONFIG = DEPLOY / "celery" / "celery.yaml"

# Runs one provider's cycle, each chunk a real out-of-process run (`execute_job` with the job's own
# executor, as the daemon's run worker does), and prints the run ids. One process per provider, like
# run workers (Dagster's log handler setup is not thread-safe: two runs in threads of one process
# deadlock in logging.config).
DRIVER = r"""
import json, sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from catalog_pipelines.assets.ingestion import chunk_job_name, chunk_key, chunk_partitions, sweep_job_name
from catalog_pipelines.definitions import defs
from catalog_pipelines.ingestion.cycle import begin_cycle
from catalog_pipelines.orchestration import QUIET_RUN_CONFIG

working_directory, name = sys.argv[1:]
executor = defs.resolve_job_def(chunk_job_name(name)).executor_def.name
assert executor == "celery", f"{chunk_job_name(name)} runs on {executor!r}, not celery"
repo = ReconstructableRepository.for_module("catalog_pipelines.definitions", "defs", working_directory=working_directory)
instance = dg.DagsterInstance.get()
ledger = defs.resources["catalog"].ledger()
position = begin_cycle(ledger, name)
partitions = chunk_partitions(name).name
tags = {"catalog/provider": name}
chunk_job = repo.get_reconstructable_job(chunk_job_name(name))
runs, sequence = [], position.next_sequence
while True:
    key = chunk_key(sequence)
    if not instance.has_dynamic_partition(partitions, key):
        instance.add_dynamic_partitions(partitions, [key])
    with dg.execute_job(chunk_job, instance, run_config=QUIET_RUN_CONFIG, raise_on_error=True,
                        tags={**tags, "dagster/partition": key}) as result:
        runs.append(result.run_id)
    if ledger.last_mark(position.ingestion.id).done:
        break
    sequence += 1
with dg.execute_job(repo.get_reconstructable_job(sweep_job_name(name)), instance, run_config=QUIET_RUN_CONFIG,
                    raise_on_error=True, tags=tags) as result:
    runs.append(result.run_id)
print(json.dumps(runs))
"""


class RendezvousBackstage(FakeBackstage):
    """A fake Backstage whose first answer waits until the other source got its first request."""

    def __init__(self, items: list, barrier: threading.Barrier, **kwargs) -> None:
        super().__init__(items, **kwargs)
        self.barrier = barrier
        self.met: bool | None = None

    async def _by_query(self, request):
        if self.met is None:
            self.met = False
            try:
                await asyncio.to_thread(self.barrier.wait, RENDEZVOUS_SECONDS)
                self.met = True
            except threading.BrokenBarrierError:
                pass  # answer anyway; the test reports that the chunks never ran together
        return await super()._by_query(request)


RENDEZVOUS_SECONDS = 60


def source_items(config) -> list[dict]:
    """The entity documents of a configured source, to serve from a fake Backstage."""
    provider, items, cursor = config.build(), [], None
    with provider.around():
        while True:
            page = provider.next(cursor)
            items += [raw.entity for raw in page.entities]
            if page.done:
                return items
            cursor = page.cursor


def valid_refs(items: list[dict]) -> set[str]:
    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import ProcessedEntity, RawEntity

    outcomes = (process_entity(RawEntity(entity=item, location="test", doc_index=i)) for i, item in enumerate(items))
    return {o.ref for o in outcomes if isinstance(o, ProcessedEntity)}


def broker_reachable(url: str) -> bool:
    parsed = urlparse(url)
    default_port = 6379 if parsed.scheme.startswith("redis") else 5672
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def celery_broker():
    if not broker_reachable(BROKER):
        message = f"no Celery broker at {BROKER} (start RabbitMQ: rabbitmq-server -detached)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return BROKER


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One `dagster-celery` worker with one slot, as deployed (docs/production.md)."""
    cli = Path(sys.executable).parent / "dagster-celery"
    return subprocess.Popen(
        [str(cli), "worker", "start", "-A", "dagster_celery.app", "-y", str(WORKER_CONFIG), "-n", name,
         "-l", "INFO", "--", "--concurrency=1", "--without-gossip", "--without-mingle"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop_workers(procs: list[subprocess.Popen]) -> None:
    # The CLI runs `celery worker` as its child, in the session started above: stop the whole group.
    stop_process_groups(procs, grace=15)


def communicate(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """(exit code, stdout, stderr); a process still running after `timeout` is killed (code -9)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    return proc.returncode, out, err


def step_windows(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[float, float, str]]:
    """(start, end, celery worker) of every step of these runs, from the instance's event log."""
    windows = []
    for run_id in run_ids:
        starts, ends, workers = {}, {}, {}
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                ends[event.step_key] = record.timestamp
            elif event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.engine_event_data:
                # The worker reports "Executing steps … in celery worker" with its node name.
                worker = event.engine_event_data.metadata.get("Celery worker")
                if worker is not None:
                    workers[event.step_key] = str(getattr(worker, "value", worker))
        for key, start in starts.items():
            windows.append((start, ends[key], workers.get(key, "")))
    return windows


# ##### TESTS


@pytest.fixture(autouse=True)
def _production_extra():
    require("dagster_celery")


def test_worker_configuration_matches_what_the_executor_sends(monkeypatch):
    from dagster_celery.cli import get_validated_config

    from catalog_pipelines import executors

    monkeypatch.setenv(executors.BROKER_ENV, "pyamqp://u:p@broker:5672//")
    monkeypatch.setenv(executors.BACKEND_ENV, "rpc://")
    worker = get_validated_config(str(WORKER_CONFIG))
    assert worker["broker"] == "pyamqp://u:p@broker:5672//" and worker["backend"] == "rpc://"
    assert worker["config_source"] == executors.CELERY_CONFIG_SOURCE
    assert yaml.safe_load(WORKER_CONFIG.read_text())["execution"]["config"]["broker"] == {"env": executors.BROKER_ENV}


def test_executor_selection_follows_the_environment(monkeypatch):
    from catalog_pipelines import executors

    monkeypatch.delenv(executors.EXECUTOR_ENV, raising=False)
    assert executors.job_executor(dg.in_process_executor) is dg.in_process_executor
    monkeypatch.setenv(executors.EXECUTOR_ENV, "in-process")
    assert executors.job_executor(dg.multiprocess_executor) is dg.multiprocess_executor
    monkeypatch.setenv(executors.EXECUTOR_ENV, "kubernetes")
    with pytest.raises(executors.ExecutorConfigError, match="default, celery"):
        executors.job_executor(dg.in_process_executor)
    monkeypatch.setenv(executors.EXECUTOR_ENV, "celery")
    monkeypatch.delenv(executors.BROKER_ENV, raising=False)
    monkeypatch.setenv(executors.BACKEND_ENV, "rpc://")
    with pytest.raises(executors.ExecutorConfigError, match=executors.BROKER_ENV):
        executors.job_executor(dg.in_process_executor)
    monkeypatch.setenv(executors.BROKER_ENV, "pyamqp://guest@localhost//")
    assert executors.job_executor(dg.in_process_executor).name == "celery"


@pytest.mark.postgres
def test_two_providers_ingest_in_parallel_on_celery_workers_every_entity_once(
    celery_broker, production_dagster_home, postgres_url, tmp_path  # noqa: F811
):
    from catalog_pipelines.ingestion.config import parse_providers

    _, dagster_env = production_dagster_home
    # Two disjoint sources: the Backstage example files and a synthetic org.
    examples, synthetic = parse_providers({"providers": [
        {"name": "src_examples", "type": "files", "roots": EXAMPLES_ROOTS},
        {"name": "src_synthetic", "type": "synthetic", "size": 180, "seed": 7},
    ]}, REPO)
    items = {"celery_examples": source_items(examples), "celery_synthetic": source_items(synthetic)}
    expected = {name: valid_refs(docs) for name, docs in items.items()}
    assert not (expected["celery_examples"] & expected["celery_synthetic"])

    barrier = threading.Barrier(2)
    fakes = {name: RendezvousBackstage(docs, barrier).start() for name, docs in items.items()}
    providers = write_providers(tmp_path / "providers.yaml", [
        {"name": name, "type": "backstage_api", "base_url": fake.base_url, "token": fake.token,
         "timeout": RENDEZVOUS_SECONDS + 30, "options": {"chunk_size": 30 if name == "celery_examples" else 60}}
        for name, fake in fakes.items()
    ])

    env = {
        **os.environ,
        **dagster_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CATALOG_DATABASE_URL": postgres_url,
        "CATALOG_PIPELINES_PROVIDERS": str(providers),
        "CATALOG_PIPELINES_DATA_DIR": str(tmp_path / "data"),
        "CATALOG_PIPELINES_EXECUTOR": "celery",
        "CATALOG_PIPELINES_CELERY_BROKER": celery_broker,
        "CATALOG_PIPELINES_CELERY_BACKEND": BACKEND,
    }
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    workers = [start_worker(f"catalog{i + 1}", env, log) for i, log in enumerate(logs)]
    try:
        drivers = {
            name: subprocess.Popen([sys.executable, "-c", DRIVER, str(REPO), name], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in expected
        }
        outputs = {name: communicate(proc, timeout=120) for name, proc in drivers.items()}
    finally:
        stop_workers(workers)
        for fake in fakes.values():
            fake.stop()
    worker_logs = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    for name, (code, out, err) in outputs.items():
        assert code == 0, f"{name}: {out[-2000:]}\n{err[-4000:]}\n{worker_logs}"
    runs = {name: json.loads(out.strip().splitlines()[-1]) for name, (_, out, _) in outputs.items()}

    # Every entity of both sources exactly once, owned by its provider, seen once in its ledger.
    import sqlalchemy as sa

    from catalog_pipelines.storage import schema

    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.entities.c.ref, schema.entities.c.provider)).all()
        marks = conn.execute(
            sa.select(schema.ingestion_mark_entities.c.provider, sa.func.count())
            .group_by(schema.ingestion_mark_entities.c.provider)
        ).all()
    engine.dispose()
    assert len(rows) == len({ref for ref, _ in rows}) == sum(len(refs) for refs in expected.values())
    for name, refs in expected.items():
        assert {ref for ref, provider in rows if provider == name} == refs, name
    assert dict(marks) == {name: len(refs) for name, refs in expected.items()}

    # Both first chunks were running at once (the rendezvous), on Celery workers, on both of them.
    assert all(fake.met for fake in fakes.values()), "the two providers' first chunks never ran at the same time"
    with production_instance(dagster_env) as instance:
        windows = {name: step_windows(instance, run_ids) for name, run_ids in runs.items()}
        statuses = {instance.get_run_by_id(r).status for ids in runs.values() for r in ids}
    assert statuses == {dg.DagsterRunStatus.SUCCESS}
    assert all(worker for ws in windows.values() for *_, worker in ws), windows
    assert len({worker for ws in windows.values() for *_, worker in ws}) == 2, windows
    a, b = windows.values()
    overlaps = [(x, y) for x in a for y in b if x[0] < y[1] and y[0] < x[1] and x[2] != y[2]]
    assert overlaps, "no chunk of one provider ran while the other's did on another worker: " + json.dumps(
        {n: [(dt.datetime.fromtimestamp(s).isoformat(), e - s, w) for s, e, w in ws] for n, ws in windows.items()}
    )
