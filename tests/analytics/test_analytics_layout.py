"""`analytics/` by domain, frames in and frames out (docs/architecture.md, issue 17 item 4)."""

import ast
from pathlib import Path

import pandas as pd
import setuptools
from helpers import REPO_ROOT

ROOT = REPO_ROOT
ANALYTICS = ROOT / "analytics"
DOMAINS = ("facts", "scorecards", "surveys", "usage", "health")
# Scorecards have no generator of their own: they are evaluated over the synthetic facts.
# (facts: the synthetic report files and API pages of issue 19 live in analytics/facts/synthetic_reports.py
# and synthetic_apis.py, not synthetic.py)
SYNTHETIC = ("surveys", "usage", "health")
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


# File I/O: analytics takes frames and records and returns them; reading and writing files is
# storage's (catalog_pipelines/storage/: surveys_store.read_export_frame, skills_store.read_profiles_csv,
# fact_exports.read_export_dir, ...). Calls that touch the file system, by the called name:
IO_BUILTINS = {"open"}  # open(...)
# <anything>.<attr>(...): pathlib's reading, writing and listing, pandas/numpy file writers.
IO_METHODS = {
    "open", "read_text", "read_bytes", "write_text", "write_bytes", "glob", "rglob", "iterdir", "walk",
    "exists", "is_file", "is_dir", "stat", "mkdir", "unlink", "rmdir", "touch",
    "to_csv", "to_parquet", "to_excel", "to_pickle", "to_feather", "to_hdf", "to_sql", "tofile",
}
# <module>.<function>(...), also when imported by name (from pandas import read_csv).
IO_FUNCTIONS = {
    "pd": {n for n in dir(pd) if n.startswith("read_")},
    "pandas": {n for n in dir(pd) if n.startswith("read_")},
    "np": {"load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt", "fromfile", "memmap"},
    "numpy": {"load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt", "fromfile", "memmap"},
    "os": {"open", "listdir", "scandir", "walk", "remove", "unlink", "replace", "rename", "makedirs", "mkdir", "stat"},
    "io": {"open"},
    "glob": {"glob", "iglob"},
    "shutil": {"copy", "copy2", "copyfile", "copytree", "move", "rmtree"},
    "json": {"load", "dump"},
    "pickle": {"load", "dump"},
    "sqlite3": {"connect"},
}
# The configuration loaders: each reads its YAML config file(s) and hands the text to a pure
# parser. Another helper of issue 17 is reworking these loaders in place; until they move (or take
# text), they are the only analytics functions allowed to touch files. Key: (file, function).
CONFIG_LOADERS = {
    # config/skills/skills.yaml and gigs.yaml: `Taxonomy.load` and `load_gigs` read them through
    # `_load_validated` (the text, checked against SkillsFile / GigsFile).
    ("analytics/health/skills.py", "_load_validated"),
    ("analytics/rbac.py", "Policy.from_file"),  # config/rbac.yaml (a missing file denies everything)
    ("analytics/surveys/config.py", "load_survey"),  # one survey definition file
    ("analytics/surveys/config.py", "load_surveys"),  # config/surveys/*.yaml
    ("analytics/scorecards/config.py", "load_config"),  # config/scorecards/*.yaml
    ("analytics/delivery/config.py", "load_config"),  # config/delivery.yaml
}


def _io_calls(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function as Class.function, line, call) for every file-system call in a module."""
    tree = ast.parse(path.read_text(), str(path))
    by_name: dict[str, set[str]] = {}  # from pandas import read_csv -> read_csv counts as pd.read_csv
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            root = node.module.split(".")[0]
            for alias in node.names:
                if alias.name in IO_FUNCTIONS.get(root, ()):
                    by_name.setdefault(alias.asname or alias.name, set()).add(f"{root}.{alias.name}")
    out: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call):
                func, call = child.func, None
                if isinstance(func, ast.Name) and (func.id in IO_BUILTINS or func.id in by_name):
                    call = func.id
                elif isinstance(func, ast.Attribute):
                    base = func.value.id if isinstance(func.value, ast.Name) else None
                    if base in IO_FUNCTIONS and func.attr in IO_FUNCTIONS[base]:
                        call = f"{base}.{func.attr}"
                    elif func.attr in IO_METHODS and base not in IO_FUNCTIONS:
                        call = f".{func.attr}"
                if call:
                    out.append((".".join(scope) or "<module>", child.lineno, call))
            visit(child, scope)

    visit(tree, [])
    return out


def test_analytics_does_no_file_io_outside_the_config_loaders():
    problems, loaders_seen = [], set()
    for path in sorted(ANALYTICS.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for function, line, call in _io_calls(path):
            if (rel, function) in CONFIG_LOADERS:
                loaders_seen.add((rel, function))
                continue
            problems.append(f"{rel}:{line}: {function} calls {call}(): file I/O belongs in catalog_pipelines/storage")
    assert problems == []
    # An allow-list entry whose loader no longer reads a file is stale: drop it.
    assert loaders_seen == CONFIG_LOADERS, sorted(CONFIG_LOADERS - loaders_seen)


def test_the_io_check_sees_reads_writes_and_listings(tmp_path):
    source = (
        "import pandas as pd\nfrom pandas import read_json\nfrom pathlib import Path\n"
        "def f(p):\n    return pd.read_csv(p), read_json(p), open(p), Path(p).read_text()\n"
        "class C:\n    def g(self, d):\n        d.to_parquet('x'); return list(Path(d).glob('*.csv'))\n"
        "def pure(frame):\n    return frame.assign(x=1).to_dict('records')\n"
    )
    target = tmp_path / "io_probe.py"
    target.write_text(source)
    found = [(function, call) for function, _, call in _io_calls(target)]
    assert found == [("f", "pd.read_csv"), ("f", "read_json"), ("f", "open"), ("f", ".read_text"), ("C.g", ".to_parquet"), ("C.g", ".glob")]


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
