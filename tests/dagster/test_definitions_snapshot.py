"""What operators see in the Dagster UI stays put, and the glue keeps its shape.

1. A snapshot of the code location built from the default providers config (config/providers.yaml):
   every asset key, asset check key, sensor, schedule and job, with the sensors', schedules' and
   jobs' descriptions and default status. A rename or a lost sensor breaks operators' bookmarks,
   run history and alerting, so it must be deliberate. To accept a deliberate change, regenerate
   the snapshot and commit it with the change:

       CATALOG_UPDATE_DEFINITIONS_SNAPSHOT=1 pytest tests/dagster/test_definitions_snapshot.py

2. The import graph of the Dagster glue (docs/architecture.md, "Dagster glue"): no cycle among
   catalog_pipelines modules (imports inside functions count too: a lazy import still makes a
   circle), and nothing below the glue (ingestion, storage, model, providers, analytics, dashboards)
   imports dagster at module level or imports a glue module at all.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from helpers import REPO_ROOT, TEST_DATA

REPO = REPO_ROOT
SNAPSHOT = TEST_DATA / "definitions_snapshot.json"
UPDATE_ENV = "CATALOG_UPDATE_DEFINITIONS_SNAPSHOT"

# The Dagster glue: only these modules (and packages) may import dagster.
GLUE = (
    "catalog_pipelines.definitions", "catalog_pipelines.partitions", "catalog_pipelines.schedules",
    "catalog_pipelines.jobs", "catalog_pipelines.automation", "catalog_pipelines.runs",
    "catalog_pipelines.resources", "catalog_pipelines.executors", "catalog_pipelines.sensors",
    "catalog_pipelines.assets",
)
# Packages below the glue, as (import prefix, directory).
BELOW_GLUE = {
    "catalog_pipelines.ingestion": REPO / "catalog_pipelines" / "ingestion",
    "catalog_pipelines.storage": REPO / "catalog_pipelines" / "storage",
    "catalog_pipelines.model": REPO / "catalog_pipelines" / "model",
    "catalog_pipelines.providers": REPO / "catalog_pipelines" / "providers",
    "analytics": REPO / "analytics",
    "dashboards": REPO / "dashboards",
}


def _status(value) -> str:
    return getattr(value, "value", str(value))


def definitions_summary() -> dict:
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.ingestion.config import load_providers
    from catalog_pipelines.settings import PROJECT_ROOT

    defs = build_definitions(load_providers(PROJECT_ROOT / "config" / "providers.yaml"))
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    schedules = {s.name: s for s in repo.schedule_defs}
    jobs = {j.name: j for j in repo.get_all_jobs() if not j.name.startswith("__ASSET_JOB")}
    return {
        "asset_keys": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "asset_check_keys": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "sensors": {
            name: {"description": s.description or "", "default_status": _status(s.default_status)}
            for name, s in sorted(sensors.items())
        },
        "schedules": {
            name: {"cron_schedule": s.cron_schedule, "description": s.description or "",
                   "default_status": _status(s.default_status)}
            for name, s in sorted(schedules.items())
        },
        "jobs": {name: {"description": j.description or ""} for name, j in sorted(jobs.items())},
    }


def test_definitions_match_the_committed_snapshot():
    current = definitions_summary()
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
        pytest.skip(f"wrote {SNAPSHOT.relative_to(REPO)}: review the diff and commit it")
    assert SNAPSHOT.exists(), f"{SNAPSHOT.relative_to(REPO)} is missing: run `{UPDATE_ENV}=1 pytest {Path(__file__).resolve().relative_to(REPO)}`"
    committed = json.loads(SNAPSHOT.read_text())
    how = (f"The code location no longer matches {SNAPSHOT.relative_to(REPO)} (what operators see: asset keys, "
           f"checks, sensors, schedules, jobs). If the change is deliberate, regenerate it with "
           f"`{UPDATE_ENV}=1 pytest {Path(__file__).resolve().relative_to(REPO)}` and commit the diff; otherwise restore the name.")
    for section in ("asset_keys", "asset_check_keys"):
        assert current[section] == committed[section], f"{section}: {how}"
    for section in ("sensors", "schedules", "jobs"):
        assert sorted(current[section]) == sorted(committed[section]), f"{section} names: {how}"
        assert current[section] == committed[section], f"{section} details: {how}"


# ---------------------------------------------------------------------------------------------
# import graph


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path, package: str | None = None) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if package is None:
        package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    # `if TYPE_CHECKING:` blocks never run: not an import at run time.
    type_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` depends on that module; `from module import name` on the module
            submodules = [f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")]
            found += [(m, id(node) in top_level) for m in submodules or [base]]
    return found


def _project_modules() -> dict[str, Path]:
    files = [*REPO.joinpath("catalog_pipelines").rglob("*.py"), *REPO.joinpath("analytics").rglob("*.py"),
             *REPO.joinpath("dashboards").rglob("*.py")]
    return {_module_name(f): f for f in files}


def test_catalog_pipelines_modules_import_no_circle():
    modules = {name: path for name, path in _project_modules().items() if name.startswith("catalog_pipelines")}
    graph = {name: sorted({m for m, _ in _imports(path) if m in modules and m != name}) for name, path in modules.items()}
    # A package's __init__ runs before its modules, but importing a module does not import its
    # siblings: edges go to the module named, which is what `modules` keys are.
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import circles among catalog_pipelines modules (lazy imports included):\n" + "\n".join(cycles)


def _is_glue(module: str) -> bool:
    return any(module == g or module.startswith(g + ".") for g in GLUE)


def test_nothing_below_the_glue_imports_dagster_or_the_glue():
    problems = []
    for prefix, directory in BELOW_GLUE.items():
        for path in sorted(directory.rglob("*.py")):
            for module, top in _imports(path):
                where = path.relative_to(REPO)
                if top and (module == "dagster" or module.startswith("dagster.") or module.startswith("dagster_")):
                    problems.append(f"{where}: imports {module} at module level")
                if _is_glue(module):
                    problems.append(f"{where}: imports the Dagster glue module {module}")
    assert not problems, "layering broken (see docs/architecture.md):\n" + "\n".join(problems)


def test_assets_do_not_import_runs():
    """Assets are materialised by runs, never the other way round (runs.py imports the assets)."""
    problems = []
    for path in sorted((REPO / "catalog_pipelines" / "assets").rglob("*.py")):
        for module, _ in _imports(path):
            if module in ("catalog_pipelines.runs", "catalog_pipelines.definitions") or module.startswith("catalog_pipelines.cli"):
                problems.append(f"{path.relative_to(REPO)}: imports {module}")
    assert not problems, "\n".join(problems)


def test_the_import_check_sees_a_circle_and_a_lazy_glue_import(tmp_path):
    """The checker itself: a lazy import of the glue and a module-level dagster import are found."""
    sample = tmp_path / "x.py"
    sample.write_text("import dagster\n\ndef f():\n    from catalog_pipelines.runs import run_cycle\n")
    found = _imports(sample, package="")
    assert ("dagster", True) in found and ("catalog_pipelines.runs", False) in found
    assert _is_glue("catalog_pipelines.runs") and _is_glue("catalog_pipelines.assets.usage")
    assert not _is_glue("catalog_pipelines.ingestion.cycle")
