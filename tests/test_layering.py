"""The layering rules of docs/architecture.md, checked by reading the source (ast, no imports run).

- services/ import no Dagster (at module level or inside functions);
- cli/ imports no assets or definitions; the commands that launch Dagster runs reach them only
  through the run helpers modules (RUN_HELPERS);
- web/ imports no Dagster and no assets;
- no SQL is executed outside storage/ (a heuristic: no `sa.select(`, `sa.text(` or `.execute(`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "catalog_pipelines"

# The modules that launch (or read) Dagster runs in-process for the CLI: `ingest`, `demo`,
# `surveys load`, `usage refresh`, `dashboards build` and `notify` (materialisation times) import these.
RUN_HELPERS = {"catalog_pipelines.runs"}

# Files outside storage/ allowed to execute SQL, with the reason. Keep it empty if you can.
SQL_ALLOWED: dict[str, str] = {}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an `import` or `from … import` names, anywhere in the file (functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from catalog_pipelines import assets` names the package through its attribute.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else path.name


def _hits(path: Path, forbidden: tuple[str, ...]) -> list[str]:
    rel = _rel(path)
    return [f"{rel}:{line}: imports {name}" for line, name in _imports(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_services_import_no_dagster():
    files = _modules("services")
    assert files, "catalog_pipelines/services/ is missing"
    problems = [hit for path in files for hit in _hits(path, ("dagster", "dagster_postgres", "dagster_celery"))]
    problems += [hit for path in files for hit in _hits(path, ("catalog_pipelines.assets", "catalog_pipelines.definitions",
                                                               "catalog_pipelines.resources", *RUN_HELPERS))]
    assert problems == []


def test_cli_imports_services_not_assets_or_definitions():
    forbidden = ("catalog_pipelines.assets", "catalog_pipelines.definitions", "catalog_pipelines.sensors",
                 "catalog_pipelines.resources", "dagster")
    problems = [hit for path in _modules("cli") for hit in _hits(path, forbidden)]
    assert problems == []


def test_cli_reaches_dagster_runs_only_through_the_run_helpers():
    """Only these commands launch or read Dagster runs; every other CLI module imports no run helper."""
    launching = {"ingest.py", "surveys.py", "usage.py", "dashboards.py", "notify.py"}
    problems = [hit for path in _modules("cli") if path.name not in launching for hit in _hits(path, tuple(RUN_HELPERS))]
    assert problems == []


def test_web_imports_no_dagster_and_no_assets():
    files = _modules("web")
    assert {p.name for p in files} >= {"admin.py", "usage_collector.py"}
    forbidden = ("dagster", "catalog_pipelines.assets", "catalog_pipelines.definitions", "catalog_pipelines.resources", *RUN_HELPERS)
    assert [hit for path in files for hit in _hits(path, forbidden)] == []


SQL_CALLS = ("select", "text", "insert", "update", "delete")


def _sql_calls(path: Path) -> list[str]:
    """`sa.select(…)`/`sa.text(…)`/… and any `.execute(…)` call in the file."""
    rel = _rel(path)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, owner = node.func.attr, node.func.value
        if attr == "execute" or (attr in SQL_CALLS and isinstance(owner, ast.Name) and owner.id in ("sa", "sqlalchemy")):
            out.append(f"{rel}:{node.lineno}: {attr}(")
    return out


def test_no_sql_outside_storage():
    storage = PACKAGE / "storage"
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if storage not in p.parents]
    files += sorted((ROOT / "analytics").rglob("*.py")) + sorted((ROOT / "dashboards").rglob("*.py"))
    problems = [hit for path in files if str(path.relative_to(ROOT)) not in SQL_ALLOWED for hit in _sql_calls(path)]
    assert problems == []


@pytest.mark.parametrize("source, expected", [
    ("import sqlalchemy as sa\ndef f(e):\n    with e.connect() as c:\n        c.execute(sa.text('SELECT 1'))\n", 2),
    ("def f(conn, q):\n    return conn.execute(q)\n", 1),
    ("def f(df):\n    return df.select_dtypes('number')\n", 0),
])
def test_the_sql_heuristic_flags_execution_and_statement_building(tmp_path, source, expected):
    """The scan itself: it must see a `.execute(` and `sa.text(`/`sa.select(`, even inside functions."""
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert len(_sql_calls(path)) == expected


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    import dagster as dg\n    from catalog_pipelines import assets\n")
    assert _hits(path, ("dagster",)) == ["probe.py:2: imports dagster"]
    assert _hits(path, ("catalog_pipelines.assets",)) == ["probe.py:3: imports catalog_pipelines.assets"]


def test_import_linter_contracts_are_kept():
    """The contracts in .importlinter (model, analytics and dashboards, services and web, the doors),
    checked by import-linter over the whole import graph, indirect chains and lazy imports included."""
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / ".importlinter"), no_cache=True, no_logo=True) == 0
