"""The whole platform refreshed at 200,000 entities on PostgreSQL, stage by stage (issue 25, item 2).

    python benchmarks/platform_200k.py [--size N] [--chunk-size N] [--mode in-process|out-of-process|celery]
                                       [--workers N] [--smoke]

Catalog and Dagster storage are both PostgreSQL (fresh databases on CATALOG_TEST_POSTGRES_URL's
server; Dagster's instance is deploy/dagster.yaml unchanged). One refresh, as the schedules run it:

1. **ingestion**: one cycle of a `synthetic` provider (every chunk a run of its partition, then the
   sweep run);
2. **snapshot**: `catalog_snapshot_job`;
3. **insights**: one run of `insights_job` with every asset it holds (discovered from the job, not
   listed here), except the demo group (`synthetic_fact_sources` writes demo report files;
   production never runs it).

Each stage's wall time and share of the refresh are printed, and inside the insights run every
step's time (STEP_START -> STEP_SUCCESS from the Dagster event log) with its share.

Inputs that arrive from outside, prepared before the clock starts (not timed): the fact
collectors' data (collectors.yaml here points every collector named in `--collectors` at a
`platform_replay` collector registered through an entry point, which yields per repository the
facts the shipped collector declares, so the map + store path and the scorecards' reads are real
while no report is parsed: parsing is benchmarks/report_files.py), survey exports landed as waves
and portal usage days summarised (through `runs.materialize_waves` / `materialize_usage`, the
runs the sensors launch when files arrive).

Modes:
- `in-process` (default): the CLI's and the demo's path (`execute_in_process`);
- `out-of-process`: `execute_job` with each job's own executor, as the daemon's run worker does
  (the insights job's multiprocess executor: one process per step, 2 at a time on 2 cores);
- `celery`: `CATALOG_PIPELINES_EXECUTOR=celery` with `--workers` `dagster-celery` workers (one slot
  each) on the local RabbitMQ (CATALOG_TEST_CELERY_BROKER, default guest@127.0.0.1:5672):
  every step of every run is a Celery task (issue 25, item 4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
# Last: benchmarks/dashboards.py must not shadow the `dashboards` package.
sys.path.append(str(HERE))

ADMIN_URL = os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("CATALOG_TEST_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("CATALOG_TEST_CELERY_BACKEND", "rpc://")
BATCH = 500


class PlatformReplay:
    """Per repository (`github.com/project-slug`), the facts a collectors.yaml entry declares,
    with deterministic values of their types; batches of 500 with a cursor, like an API collector
    that re-reads everything every run."""

    def __init__(self, name: str, slugs_file: Path, facts: dict[str, str], seed: int):
        self.name, self.slugs_file, self.declared, self.seed = name, slugs_file, facts, seed

    @classmethod
    def from_config(cls, name, params, base_dir):
        return cls(name, Path(base_dir) / params["slugs"], dict(params["facts"]), int(params.get("seed", 1)))

    def facts(self):
        from catalog_pipelines.collectors.base import FactDecl

        return {n: FactDecl(n, t, n) for n, t in self.declared.items()}

    def value(self, fact: str, kind: str, h: int):
        if kind == "number":
            return round((h % 100) / 100, 2) if "rate" in fact else (h % 100 if "pct" in fact else h % 10)
        if kind == "boolean":
            return h % 3 != 0
        if kind == "object":
            return {k: (h >> i) % 3 for i, k in enumerate(("critical", "high", "medium", "low", "error", "warning", "note", "unknown"))}
        if kind == "list":
            return ["Trivy", "CodeQL"][: 1 + h % 2]
        return ("success", "failure")[h % 2]

    def collect(self, cursor, now):
        import zlib

        from catalog_pipelines.collectors.base import Batch, Observation, Target

        slugs = json.loads(self.slugs_file.read_text())
        salt = zlib.crc32(self.name.encode()) + self.seed
        for start in range(0, len(slugs), BATCH):
            batch = Batch(cursor={"replayed": min(start + BATCH, len(slugs))})
            for i, slug in enumerate(slugs[start:start + BATCH], start):
                h = ((i + salt) * 2654435761) & 0xFFFFFF
                facts = {f: self.value(f, kind, h >> (j % 8)) for j, (f, kind) in enumerate(self.declared.items())}
                batch.observations.append(Observation((Target("github.com/project-slug", slug),), facts, now, origin=f"replay/{slug}"))
            yield batch


def register_replay(site: Path) -> None:
    """A dist-info declaring `platform_replay` in catalog_pipelines.collectors (found by importlib.metadata)."""
    info = site / "platform_bench-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: platform-bench\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[catalog_pipelines.collectors]\nplatform_replay = platform_200k:PlatformReplay.from_config\n")


def write_collectors(workdir: Path, names: list[str], slugs: list[str]) -> Path:
    """collectors.yaml: the shipped entries named, each re-pointed at the replay collector."""
    import yaml

    (workdir / "slugs.json").write_text(json.dumps(slugs))
    shipped = {c["name"]: c for c in yaml.safe_load((REPO / "config" / "collectors.yaml").read_text())["collectors"]}
    entries = []
    for name in names:
        entry = dict(shipped[name])
        facts = {f: spec["type"] for f, spec in (entry.get("facts") or {}).items()}
        entry.update(type="platform_replay", params={"slugs": "slugs.json", "facts": facts})
        entry.pop("lookback_days", None)
        entries.append(entry)
    path = workdir / "collectors.yaml"
    path.write_text(yaml.safe_dump({"collectors": entries}, sort_keys=False))
    return path


def shipped_collectors() -> list[str]:
    import yaml

    return [c["name"] for c in yaml.safe_load((REPO / "config" / "collectors.yaml").read_text())["collectors"]]


def component_slugs(size: int, seed: int) -> list[str]:
    from catalog_pipelines.providers.synthetic import SyntheticOrg

    out = []
    for body in SyntheticOrg(size, seed=seed).iter_entities():
        if body.get("kind") == "Component":
            slug = ((body.get("metadata") or {}).get("annotations") or {}).get("github.com/project-slug")
            if slug:
                out.append(slug)
    return out


def seed_inputs(engine, *, usage_events: int, usage_days: int) -> None:
    """Survey exports of every configured survey and raw usage days for the stored org (the files
    that arrive from outside), as the survey and usage sensors would find them."""
    from datetime import date

    from analytics.surveys.config import load_surveys
    from analytics.usage.synthetic import SyntheticUsage
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.services.surveys import surveys_config_dir, surveys_root, write_synthetic_exports
    from catalog_pipelines.services.usage import raw_store
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.frames import entities_frame

    org = org_graph(engine)
    for survey in load_surveys(surveys_config_dir()):
        write_synthetic_exports(surveys_root(), survey, org, seed=7, email_domain="acme.example")
    components = list(entities_frame(engine, ["Component", "API", "System", "Resource"], with_body=False)["ref"])
    usage = SyntheticUsage(org, seed=0, start=date(2025, 3, 1), days=usage_days, events=usage_events, entity_refs=components)
    raw, key = raw_store(), Settings.from_env().pseudonym_key
    for index in range(usage_days):
        raw.append(usage.day_table(index, key=key))


class Runner:
    """Launches the refresh's runs in the chosen mode and keeps their ids."""

    def __init__(self, mode: str, instance):
        import dagster as dg

        from catalog_pipelines.definitions import defs

        self.mode, self.instance, self.defs, self.dg = mode, instance, defs, dg
        self.repo = None
        if mode != "in-process":
            from dagster._core.definitions.reconstruct import ReconstructableRepository

            self.repo = ReconstructableRepository.for_module("catalog_pipelines.definitions", "defs", working_directory=str(REPO))

    def run(self, job_name: str, *, tags=None, run_config=None, asset_selection=None) -> str:
        from catalog_pipelines.runs import QUIET_RUN_CONFIG

        config = {**QUIET_RUN_CONFIG, **(run_config or {})}
        if self.mode == "in-process":
            result = self.defs.resolve_job_def(job_name).execute_in_process(
                instance=self.instance, run_config=config, tags=tags, asset_selection=asset_selection, raise_on_error=True)
            return result.run_id
        with self.dg.execute_job(self.repo.get_reconstructable_job(job_name), self.instance, run_config=config,
                                 tags=tags, asset_selection=asset_selection, raise_on_error=True) as result:
            return result.run_id


def ingest(runner: Runner, provider: str) -> list[str]:
    """One cycle: every chunk a run of its partition (the sensor's tags), then the sweep run."""
    from catalog_pipelines.ingestion.cycle import begin_cycle
    from catalog_pipelines.jobs import chunk_job_name, sweep_job_name
    from catalog_pipelines.partitions import chunk_key, chunk_partitions, cycle_run_tags

    ledger = runner.defs.resources["catalog"].ledger()
    position = begin_cycle(ledger, provider)
    partitions = chunk_partitions(provider).name
    runs, sequence = [], position.next_sequence
    while True:
        key = chunk_key(sequence)
        if not runner.instance.has_dynamic_partition(partitions, key):
            runner.instance.add_dynamic_partitions(partitions, [key])
        tags = {**cycle_run_tags(provider, position.ingestion.cycle, sequence), "dagster/partition": key}
        runs.append(runner.run(chunk_job_name(provider), tags=tags))
        if ledger.last_mark(position.ingestion.id).done:
            break
        sequence += 1
    runs.append(runner.run(sweep_job_name(provider), tags=cycle_run_tags(provider, position.ingestion.cycle, None)))
    return runs


def start_workers(count: int, env: dict, logdir: Path) -> list[subprocess.Popen]:
    """`dagster-celery` workers with one slot each, as deployed (docs/production.md)."""
    cli = Path(sys.executable).parent / "dagster-celery"
    procs = []
    for i in range(count):
        log = (logdir / f"worker{i + 1}.log").open("w")
        procs.append(subprocess.Popen(
            [str(cli), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "deploy" / "celery" / "celery.yaml"),
             "-n", f"platform{i + 1}", "-l", "WARNING", "--", "--concurrency=1", "--without-gossip", "--without-mingle"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    import signal

    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def broker_reachable(url: str) -> bool:
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


WORKER_GROUPS: list[int] = []  # process groups of the Celery workers this run started


def group_cpu_s(groups: list[int]) -> float:
    """CPU seconds of every live process in these process groups (the workers and their pool
    children, whose reaped children count through cutime/cstime)."""
    from ingest_200k import proc_stats

    return sum(seconds for _, group, seconds in proc_stats() if group in groups)


def cpu_of_children() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def refresh(runner: Runner, instance, selected, label: str, land_inputs=None) -> dict:
    """One refresh (ingestion cycle, snapshot, insights job), timed stage by stage; `land_inputs`
    runs untimed between the snapshot and the insights (the first cycle's surveys and usage)."""
    from ingest_200k import local_postgres_cpu_s

    from catalog_pipelines import runs
    from catalog_pipelines.jobs import INSIGHTS_JOB
    from catalog_pipelines.runs import DEMO_RUN_CONFIG

    stages, load = {}, {}
    s0, c0, k0, w0 = local_postgres_cpu_s(), time.process_time(), cpu_of_children(), group_cpu_s(WORKER_GROUPS)
    start = time.perf_counter()
    t = time.perf_counter()
    chunk_runs = ingest(runner, "platform")
    stages["ingestion"] = time.perf_counter() - t
    load["ingestion"] = os.getloadavg()[0]
    ingest_steps = [w for run in chunk_runs for w in runs.step_windows(instance, run)]
    t = time.perf_counter()
    snapshot_run = runner.run("catalog_snapshot_job")
    stages["snapshot"] = time.perf_counter() - t
    paused = time.perf_counter()
    s_pause, c_pause, k_pause = local_postgres_cpu_s(), time.process_time(), cpu_of_children()
    if land_inputs is not None:
        land_inputs()
    s_resume, c_resume, k_resume = local_postgres_cpu_s(), time.process_time(), cpu_of_children()
    excluded = time.perf_counter() - paused
    t = time.perf_counter()
    insights_run = runner.run(INSIGHTS_JOB, run_config=DEMO_RUN_CONFIG, asset_selection=selected)
    stages["insights"] = time.perf_counter() - t
    load["insights"] = os.getloadavg()[0]
    total = time.perf_counter() - start - excluded
    s1, c1, k1, w1 = local_postgres_cpu_s(), time.process_time(), cpu_of_children(), group_cpu_s(WORKER_GROUPS)
    windows = runs.step_windows(instance, insights_run)
    out = {
        f"{label}_refresh_s": round(total, 1),
        **{f"{label}_{name}_s": f"{secs:.1f} ({100 * secs / total:.0f} %)" for name, secs in stages.items()},
        f"{label}_ingestion_runs": len(chunk_runs),
        f"{label}_ingestion_inside_steps_s": round(sum(e - s for _, s, e, _ in ingest_steps), 1),
        f"{label}_insights_steps_sum_s": round(sum(e - s for _, s, e, _ in windows), 1),
        f"{label}_process_cpu_s": round(c1 - c_resume + c_pause - c0, 1),
        f"{label}_children_cpu_s (run/step processes; Celery workers are not children)": round(k1 - k_resume + k_pause - k0, 1),
        f"{label}_load_1min": {k: round(v, 1) for k, v in load.items()},
    }
    if WORKER_GROUPS:
        out[f"{label}_celery_workers_cpu_s"] = round(w1 - w0, 1)
    if s0 is not None and s1 is not None:
        out[f"{label}_postgres_server_cpu_s (every database on the server)"] = round(s1 - s_resume + s_pause - s0, 1)
    for key, s, e, worker in runs.step_windows(instance, snapshot_run):
        # The snapshot refreshes the read API's search rows; its data-quality checks (great_expectations) are steps of the same run.
        out[f"  {label} snapshot step {key}"] = f"{e - s:6.1f} s ({100 * (e - s) / total:4.1f} %)" + (f" on {worker.split('@')[0]}" if worker else "")
    first = min((s for _, s, _, _ in windows), default=0.0)
    for key, s, e, worker in windows:
        out[f"  {label} step {key}"] = f"{e - s:6.1f} s ({100 * (e - s) / total:4.1f} %) at +{s - first:5.1f} s" + (f" on {worker.split('@')[0]}" if worker else "")
    print_progress(out)
    return out


def print_progress(out: dict) -> None:
    for key, value in out.items():
        if not key.startswith("  "):
            print(f"{key}: {value}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--mode", choices=("in-process", "out-of-process", "celery"), default="in-process")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (--mode celery)")
    parser.add_argument("--collectors", default="", help="shipped collectors to replay (default: every one; the shipped checks need them all)")
    parser.add_argument("--usage-events", type=int, default=200_000)
    parser.add_argument("--usage-days", type=int, default=14)
    parser.add_argument("--smoke", action="store_true", help="small size, for the test suite")
    parser.add_argument("--postgres", action="store_true", help="accepted for uniformity: PostgreSQL is this benchmark's only backend")
    parser.add_argument("--cycles", type=int, default=1, help="refreshes in a row (2: the second is the steady state: nothing new)")
    parser.add_argument("--keep", action="store_true", help="keep the databases and data directory (to profile a stage)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.chunk_size, args.usage_events, args.usage_days = 1500, 500, 3000, 3
    if args.mode == "celery" and not broker_reachable(BROKER):
        raise SystemExit(f"no Celery broker at {BROKER} (start RabbitMQ: rabbitmq-server -detached)")

    from ingest_200k import fresh_postgres_url, print_figures

    workdir = Path(tempfile.mkdtemp(prefix="cp-platform-"))
    home = workdir / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    catalog_url, drop_catalog = fresh_postgres_url(ADMIN_URL, "cp_platform")
    dagster_url, drop_dagster = fresh_postgres_url(ADMIN_URL, "cp_platform_dagster")
    import sqlalchemy as sa

    d = sa.engine.make_url(dagster_url)
    site = workdir / "site"
    register_replay(site)
    providers = workdir / "providers.yaml"
    providers.write_text(json.dumps({"providers": [{"name": "platform", "type": "synthetic", "size": args.size, "seed": args.seed,
                                                    "options": {"chunk_size": args.chunk_size}}]}))
    t0 = time.perf_counter()
    slugs = component_slugs(args.size, args.seed)
    collectors = write_collectors(workdir, [c for c in args.collectors.split(",") if c] or shipped_collectors(), slugs)
    env = {
        "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": d.host or "127.0.0.1", "DAGSTER_PG_PORT": str(d.port or 5432),
        "DAGSTER_PG_USER": d.username or "postgres", "DAGSTER_PG_PASSWORD": d.password or "", "DAGSTER_PG_DB": d.database,
        "DAGSTER_MAX_CONCURRENT_RUNS": "4", "DAGSTER_COMPUTE_LOG_DIR": str(home / "compute_logs"),
        "CATALOG_DATABASE_URL": catalog_url, "CATALOG_PIPELINES_DATA_DIR": str(workdir / "data"),
        "CATALOG_PIPELINES_OUTPUT_DIR": str(workdir / "out"), "CATALOG_PIPELINES_PROVIDERS": str(providers),
        "CATALOG_PIPELINES_COLLECTORS": str(collectors),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(site), os.environ.get("PYTHONPATH", ""), str(HERE)]),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if args.mode == "celery":
        env.update(CATALOG_PIPELINES_EXECUTOR="celery", CATALOG_PIPELINES_CELERY_BROKER=BROKER, CATALOG_PIPELINES_CELERY_BACKEND=BACKEND)
    else:
        os.environ.pop("CATALOG_PIPELINES_EXECUTOR", None)
    os.environ.update(env)
    sys.path.append(str(site))
    print(f"{len(slugs):,} repositories for the collectors ({time.perf_counter() - t0:.1f} s, not timed)", flush=True)

    import dagster as dg

    from catalog_pipelines.jobs import INSIGHTS_JOB
    from catalog_pipelines.runs import materialize_usage, materialize_waves

    workers: list[subprocess.Popen] = []
    instance = dg.DagsterInstance.get()
    figures: dict = {"backend": "postgresql (catalog and Dagster storage)", "mode": args.mode, "size": args.size, "chunk_size": args.chunk_size, "target_s": 120}
    try:
        if args.mode == "celery":
            workers = start_workers(args.workers, {**os.environ}, workdir)
            WORKER_GROUPS[:] = [w.pid for w in workers]
            figures["celery_workers"] = args.workers
        runner = Runner(args.mode, instance)
        job = runner.defs.resolve_job_def(INSIGHTS_JOB)
        graph = runner.defs.resolve_asset_graph()
        selected = sorted(k for k in job.asset_layer.selected_asset_keys if graph.get(k).group_name != "demo")
        figures["insight_assets"] = len(selected)

        def land_inputs() -> None:
            # Not timed: the inputs that arrive from outside land (their sensors' runs).
            from catalog_pipelines.storage.db import get_engine

            prep = time.perf_counter()
            seed_inputs(get_engine(catalog_url), usage_events=args.usage_events, usage_days=args.usage_days)
            waves = materialize_waves(instance, catalog_url=catalog_url)
            days = materialize_usage(instance, catalog_url=catalog_url)
            figures["inputs_landed_not_timed"] = f"{len(waves['waves'])} survey waves, {len(days['days'])} usage days in {time.perf_counter() - prep:.1f} s"

        for cycle in range(1, args.cycles + 1):
            figures.update(refresh(runner, instance, selected, f"cycle{cycle}", land_inputs if cycle == 1 else None))
    finally:
        stop_workers(workers)
        if args.keep:
            print(f"kept: catalog {catalog_url}, Dagster {dagster_url}, data {workdir}")
        else:
            drop_catalog()
            drop_dagster()
            shutil.rmtree(workdir, ignore_errors=True)
    return print_figures(figures)


if __name__ == "__main__":
    main()
