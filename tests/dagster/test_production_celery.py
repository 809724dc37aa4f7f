"""Scale-out on Celery: real `dagster-celery` workers on the local RabbitMQ, a PostgreSQL Dagster
instance (deploy/dagster.yaml) and the catalog on PostgreSQL.

Protects: with CATALOG_PIPELINES_EXECUTOR=celery the code location's ingestion jobs send their steps
to Celery; two providers' cycles launched side by side run their chunks at the same time on two
workers; every entity of both sources is stored exactly once; one run of the insights job runs
independent insight assets at the same time on two workers and stores exactly the insight tables an
in-process run stores; and the worker configuration (deploy/celery/celery.yaml) agrees with what the
executor sends.

Parallelism is proven, not sampled: the two providers read from two local Backstage-API servers
that hold their first page until the other server has been asked for its first page too. Both
first chunks are then running at the same moment, which only two workers can do (each takes one
step at a time); on a single worker the rendezvous times out and the test fails. The insights test
does the same with a lock on the catalog's entities table (see its docstring).

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
import time
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
from catalog_pipelines.jobs import chunk_job_name, sweep_job_name
from catalog_pipelines.partitions import chunk_key, chunk_partitions
from catalog_pipelines.definitions import defs
from catalog_pipelines.ingestion.cycle import begin_cycle
from catalog_pipelines.runs import QUIET_RUN_CONFIG

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
    from catalog_pipelines.runs import step_windows as run_steps

    return [(start, end, worker) for run_id in run_ids for _, start, end, worker in run_steps(instance, run_id)]


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


# ##### THE INSIGHTS JOB ON CELERY

# Runs the insights job out of process with the job's own executor (as the daemon's run worker does)
# and prints its run id. The code location is imported from the environment, as on a run worker.
INSIGHTS_DRIVER = r"""
import json, sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from catalog_pipelines.definitions import defs
from catalog_pipelines.jobs import INSIGHTS_JOB
from catalog_pipelines.runs import DEMO_RUN_CONFIG, QUIET_RUN_CONFIG

executor = defs.resolve_job_def(INSIGHTS_JOB).executor_def.name
assert executor == "celery", f"{INSIGHTS_JOB} runs on {executor!r}, not celery"
repo = ReconstructableRepository.for_module("catalog_pipelines.definitions", "defs", working_directory=sys.argv[1])
with dg.execute_job(repo.get_reconstructable_job(INSIGHTS_JOB), dg.DagsterInstance.get(),
                    run_config={**QUIET_RUN_CONFIG, **DEMO_RUN_CONFIG}, raise_on_error=True) as result:
    print(json.dumps(result.run_id))
"""

# Columns that hold the time of the run that wrote them, not a result: they differ between any two
# runs. The test checks that each really is a time within its own run, and compares everything else.
RUN_TIMESTAMPS = {
    "insight_facts_catalog": "collected_at",  # facts are stamped with their collection
    "insight_facts_catalog_latest": "collected_at",
    "insight_orphans_trend": "as_of",  # one row per category per run, stamped
    "insight_scorecards_evaluations": "evaluated_at",
    "insight_scorecards_result_changes": "evaluated_at",
    "insight_scorecards_level_changes": "evaluated_at",
    "insight_scorecards_rollup_history": "evaluated_at",
    "insight_scorecards_campaign_progress": "evaluated_at",
    "insight_usage_meta": "computed_at",
    "insight_delivery_facts_state": "computed_at",  # when the kept delivery facts were computed
}
# Counted from the evaluation's UTC date (deadline - today, open or overdue): compared only when both
# runs evaluated on the same day.
EVALUATION_DAY_TABLE, EVALUATION_DAY_COLUMNS = "insight_scorecards_campaign_progress", ["days_left", "status"]
ENTITIES_WAIT_SECONDS = 90


def insight_tables(url: str) -> dict:
    """Every `insight_*` table of the catalog database, as stored."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(n for n in sa.inspect(conn).get_table_names() if n.startswith("insight_"))
            return {name: pd.read_sql_table(name, conn) for name in names}
    finally:
        engine.dispose()


def drop_insight_tables(url: str) -> None:
    """Back to the catalog alone: the next run starts from no previous insight (no history to append to)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("insight_"):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
    engine.dispose()


def comparable(tables: dict, started: float, finished: float) -> tuple[dict, set]:
    """The tables without their run timestamps (each checked to lie in [started, finished]), rows in
    a canonical order (a table's rows have none), and the UTC dates the run evaluated on."""
    import pandas as pd

    out, days = {}, set()
    window = (pd.Timestamp(started, unit="s", tz="UTC").floor("s"), pd.Timestamp(finished, unit="s", tz="UTC"))
    for name, frame in tables.items():
        if name in RUN_TIMESTAMPS:
            column = RUN_TIMESTAMPS[name]
            stamps = pd.to_datetime(frame[column], utc=True)  # naive columns hold UTC
            assert stamps.between(*window).all(), f"{name}.{column} is not the run's time: {stamps.unique()} vs {window}"
            if column == "evaluated_at":
                days |= {s.date() for s in stamps}
            frame = frame.drop(columns=[column])
        order = frame.astype(str).sort_values(list(frame.columns), kind="mergesort").index
        out[name] = frame.loc[order].reset_index(drop=True)
    return out, days


def waiting_on_entities(conn) -> int:
    """Client sessions waiting for a lock on the catalog's entities table (a step blocked on it)."""
    import sqlalchemy as sa

    return conn.execute(sa.text(
        "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.relation = 'entities'::regclass AND NOT l.granted AND a.backend_type = 'client backend'"
    )).scalar_one()


@pytest.mark.postgres
def test_insight_assets_run_in_parallel_on_celery_workers_with_the_same_results_as_in_process(
    celery_broker, production_dagster_home, postgres_url, tmp_path, monkeypatch, request
):
    """The whole insights job, one out-of-process run with every step on two real Celery workers, stores
    exactly the insight tables an in-process run stores from the same catalog and data.

    Inputs: the Backstage examples and a synthetic org of 300 entities ingested by two `files`
    providers (the synthetic org written to a file: a provider of type `synthetic` would switch on the
    demo's synthetic fact exports, whose facts are ages measured against the wall clock, so two runs
    seconds apart legitimately differ), eight waves of synthetic survey responses and 14 days of
    synthetic portal usage. Every insight asset therefore has real input.

    Parallelism is proven, not sampled: the test holds an exclusive lock on the catalog's entities
    table, which every first step of the job reads, until two sessions wait for it. Each worker runs
    one step at a time, so two waiting steps means two steps running at once on the two workers; on
    one worker the wait times out and the test fails.
    """
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import parse_providers
    from catalog_pipelines.jobs import INSIGHTS_JOB
    from catalog_pipelines.runs import DEMO_RUN_CONFIG, QUIET_RUN_CONFIG, run_cycle

    _, dagster_env = production_dagster_home
    data = tmp_path / "data"
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(data))
    monkeypatch.setenv("CATALOG_DATABASE_URL", postgres_url)
    monkeypatch.setenv("CATALOG_PIPELINES_OUTPUT_DIR", str(tmp_path / "out-in-process"))
    monkeypatch.delenv("CATALOG_PIPELINES_EXECUTOR", raising=False)

    # The catalog, ingested through Dagster as `catalog-pipelines ingest` does.
    (synthetic,) = parse_providers({"providers": [{"name": "s", "type": "synthetic", "size": 300, "seed": 7}]}, REPO)
    org_file = tmp_path / "synthetic-org.yaml"
    org_file.write_text(yaml.safe_dump_all(source_items(synthetic), sort_keys=False))
    providers = write_providers(tmp_path / "providers.yaml", [
        {"name": "insights_examples", "type": "files", "roots": EXAMPLES_ROOTS, "options": {"chunk_size": 500}},
        {"name": "insights_org", "type": "files", "roots": [str(org_file)], "options": {"chunk_size": 500}},
    ])
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(providers))
    configs = parse_providers(yaml.safe_load(providers.read_text()), providers.parent)
    defs = build_definitions(configs, catalog_url=postgres_url)
    for config in configs:
        assert run_cycle(defs, config, dg.DagsterInstance.ephemeral()).added > 0, config.name
    seed_surveys_and_usage(postgres_url)
    # The API collectors read vendor-shaped pages on loopback, as in the demo (both runs, the same
    # pages: they are a function of the seed and the day).
    from catalog_pipelines.services.facts import DEMO_VENDORS, demo_vendor_pages, write_demo_collectors_config
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.web.replay import serve_replay

    pages, entities = demo_vendor_pages(get_engine(postgres_url))
    replay = serve_replay(pages)
    request.addfinalizer(replay.close)
    monkeypatch.setenv("CATALOG_PIPELINES_COLLECTORS", str(write_demo_collectors_config(entities, {v: replay.base_url(v) for v in DEMO_VENDORS})))

    env = {
        **os.environ,
        **dagster_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CATALOG_PIPELINES_OUTPUT_DIR": str(tmp_path / "out-celery"),
        "CATALOG_PIPELINES_EXECUTOR": "celery",
        "CATALOG_PIPELINES_CELERY_BROKER": celery_broker,
        "CATALOG_PIPELINES_CELERY_BACKEND": BACKEND,
    }
    logs = [tmp_path / "insights1.log", tmp_path / "insights2.log"]
    workers, driver = [start_worker(f"insights{i + 1}", env, log) for i, log in enumerate(logs)], None
    try:
        # The reference, in-process (the demo's path), while the workers start.
        started = time.time()
        reference = defs.resolve_job_def(INSIGHTS_JOB).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config={**QUIET_RUN_CONFIG, **DEMO_RUN_CONFIG}
        )
        expected_steps = {e.step_key for e in reference.all_events if e.is_step_success}
        expected, in_process_days = comparable(insight_tables(postgres_url), started, time.time())
        drop_insight_tables(postgres_url)

        lock_engine = sa.create_engine(postgres_url)
        holder, watcher = lock_engine.connect(), lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            holder.begin()
            # A session left in a transaction on the table would make LOCK wait forever: fail instead.
            holder.execute(sa.text("SET LOCAL lock_timeout = '30s'"))
            holder.execute(sa.text("LOCK TABLE entities IN ACCESS EXCLUSIVE MODE"))
            started = time.time()
            driver = subprocess.Popen([sys.executable, "-c", INSIGHTS_DRIVER, str(REPO)], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline, most_waiting = time.monotonic() + ENTITIES_WAIT_SECONDS, 0
            while time.monotonic() < deadline and driver.poll() is None and most_waiting < 2:
                most_waiting = max(most_waiting, waiting_on_entities(watcher))
                time.sleep(0.2)
        finally:
            holder.rollback()  # releases the lock, met or not: the assertions below tell
            holder.close()
            watcher.close()
            lock_engine.dispose()
        code, out, err = communicate(driver, timeout=180)
        finished = time.time()
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.communicate()
        stop_workers(workers)
    worker_logs = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    assert code == 0, f"{out[-2000:]}\n{err[-4000:]}\n{worker_logs}"
    run_id = json.loads(out.strip().splitlines()[-1])

    # Every step of the job ran on a Celery worker, on both of them, and two at the same time.
    assert most_waiting >= 2, f"two steps never waited for the entities table at once (at most {most_waiting})"
    with production_instance(dagster_env) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        windows = step_windows(instance, [run_id])
        steps = {record.dagster_event.step_key for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)}
    assert steps == expected_steps and len(windows) == len(steps), (steps, expected_steps)
    assert all(worker for *_, worker in windows), windows
    assert {worker.split("@")[0] for *_, worker in windows} == {"insights1", "insights2"}, windows
    overlaps = [(x, y) for x in windows for y in windows if x[0] < y[1] and y[0] < x[1] and x[2] < y[2]]
    assert overlaps, "no two steps ran at the same time on the two workers: " + json.dumps(
        [(dt.datetime.fromtimestamp(s).isoformat(), e - s, w) for s, e, w in windows]
    )
    assert (tmp_path / "out-celery" / "dashboards" / "index.html").exists()

    # The same tables, row for row, as the in-process run stored.
    actual, celery_days = comparable(insight_tables(postgres_url), started, finished)
    if in_process_days != celery_days:  # the runs straddled midnight UTC
        for tables in (expected, actual):
            tables[EVALUATION_DAY_TABLE] = tables[EVALUATION_DAY_TABLE].drop(columns=EVALUATION_DAY_COLUMNS)
    assert sorted(actual) == sorted(expected)
    areas = {name.split("_")[1] for name, frame in expected.items() if len(frame)}
    assert areas == {"delivery", "facts", "graph", "history", "orphans", "scorecards", "skills", "surveys", "usage"}, areas
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, check_exact=True, obj=name)


def seed_surveys_and_usage(url: str) -> None:
    """Eight waves of synthetic survey responses and 14 days of synthetic portal usage for the org in
    the catalog, stored where the insight assets read them (the data directory), through the same
    functions the survey and usage assets use."""
    from datetime import date, timedelta

    from analytics.surveys.config import load_surveys
    from catalog_pipelines.services.surveys import write_synthetic_exports
    from analytics.usage.synthetic import SyntheticUsage
    from catalog_pipelines.services.usage_pipeline import compact_days, summarise_days
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.services.surveys import ingest_survey_wave, surveys_config_dir, surveys_root
    from catalog_pipelines.services.usage import raw_store, summary_store, usage_config
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.frames import entities_frame

    engine, key = get_engine(url), Settings.from_env().pseudonym_key
    org, users = org_graph(engine), list(entities_frame(engine, ["User"])["entity"])
    for survey in load_surveys(surveys_config_dir()):
        write_synthetic_exports(surveys_root(), survey, org, seed=7, email_domain="acme.example")
        for wave in survey.waves:
            ingest_survey_wave(wave.id, org, users, surveys_root(), surveys_config_dir(), key)
    start, days = date(2025, 3, 1), 14  # fixed days: the usage insights are as of the last one
    components = list(entities_frame(engine, ["Component", "API", "System", "Resource"])["ref"])
    usage = SyntheticUsage(org, seed=0, start=start, days=days, events=20_000, entity_refs=components)
    raw = raw_store()
    for index in range(days):
        raw.append(usage.day_table(index, key=key))
    every_day = [start + timedelta(days=i) for i in range(days)]
    compact_days(raw, every_day)
    summarise_days(raw, summary_store(), every_day, usage_config())
