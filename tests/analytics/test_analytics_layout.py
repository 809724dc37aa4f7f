"""`analytics/` by domain, frames in and frames out (docs/architecture.md, issue 17 item 4)."""

import ast
from pathlib import Path

import setuptools
from helpers import REPO_ROOT

ROOT = REPO_ROOT
ANALYTICS = ROOT / "analytics"
DOMAINS = ("facts", "scorecards", "surveys", "usage", "health")
# Scorecards have no generator of their own: they are evaluated over the synthetic facts.
SYNTHETIC = ("facts", "surveys", "usage", "health")
# Only the model (entity refs) may be imported from the project; no Dagster, no database, no
# Parquet files: file and database I/O lives in catalog_pipelines/storage (or services).
FORBIDDEN = ("dagster", "sqlalchemy", "psycopg", "psycopg2", "pyarrow.parquet", "pyarrow.dataset")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_analytics_imports_only_the_model_and_no_dagster_database_or_parquet_io():
    problems = []
    for path in sorted(ANALYTICS.rglob("*.py")):
        for line, module in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}: imports {module}"
            if module.startswith("catalog_pipelines") and not (
                module == "catalog_pipelines.model" or module.startswith("catalog_pipelines.model.")
            ):
                problems.append(where)
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN):
                problems.append(where)
    assert problems == []


def test_every_domain_is_a_package_with_its_synthetic_generator_and_is_installed():
    for domain in DOMAINS:
        assert (ANALYTICS / domain / "__init__.py").is_file(), domain
    for domain in SYNTHETIC:
        assert (ANALYTICS / domain / "synthetic.py").is_file(), domain
    # pyproject's [tool.setuptools.packages.find] include = ["analytics*"] must pick up every domain.
    found = set(setuptools.find_packages(str(ROOT), include=["analytics*"]))
    assert {f"analytics.{d}" for d in DOMAINS} <= found
    # No flat prefixed modules left beside the domains.
    assert sorted(p.name for p in ANALYTICS.glob("*.py")) == ["__init__.py", "org.py", "pseudonymise.py", "rbac.py"]
