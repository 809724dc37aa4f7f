"""Configuration as schemas: pydantic models per YAML kind, their committed JSON Schemas, one check
of every configured file (`catalog-pipelines config validate`), and settings.py as the one reader of
the project's environment variables."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_pipelines.cli import main
from catalog_pipelines.config_schemas import KINDS, schemas, validate_all, validate_file
from catalog_pipelines.settings import PROJECT_ROOT, Settings

CONFIG = PROJECT_ROOT / "config"
CONFIG_VARS = ("CATALOG_PIPELINES_PROVIDERS", "CATALOG_PIPELINES_SCORECARDS", "CATALOG_PIPELINES_SURVEYS",
               "CATALOG_PIPELINES_PERMISSIONS", "CATALOG_PIPELINES_SKILLS")


@pytest.fixture
def project_config(monkeypatch):
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


def test_committed_json_schemas_match_the_models(tmp_path):
    result = CliRunner().invoke(main, ["config", "schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(schemas()) == sorted(f"{k}.schema.json" for k in KINDS)
    for name in generated:
        committed = CONFIG / "schemas" / name
        assert committed.exists(), f"{committed} missing: run `catalog-pipelines config schema`"
        assert committed.read_text() == (tmp_path / name).read_text(), f"{committed} is stale: run `catalog-pipelines config schema`"


def test_json_schemas_forbid_unknown_keys_and_list_the_choices():
    providers = json.loads((CONFIG / "schemas" / "providers.schema.json").read_text())
    options = providers["$defs"]["IngestionOptionsModel"]
    assert options["additionalProperties"] is False and "reject_removals_above_percentage" in options["properties"]
    scorecards = json.dumps(json.loads((CONFIG / "schemas" / "scorecards.schema.json").read_text()))
    assert '"greaterThanInclusive"' in scorecards


def test_every_example_config_validates_clean(project_config):
    files, issues = validate_all()
    assert issues == []
    names = {p.relative_to(CONFIG).as_posix() for p in files}
    assert {"providers.yaml", "permissions.yaml", "surveys/rnd-pulse.yaml", "skills/skills.yaml", "skills/gigs.yaml"} <= names
    assert sum(n.startswith("scorecards/") for n in names) >= 3


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("providers", "providers:\n  - name: x\n    type: files\n    roots: [a]\n    options:\n      chunk_sise: 3\n",
         "bad.yaml:6: providers[0].options.chunk_sise: unknown key 'chunk_sise' (did you mean 'chunk_size'?)"),
        ("providers", "providers:\n  - name: x\n    type: file\n",
         "bad.yaml:3: providers[0].type: 'file' is not one of backstage_api, files, synthetic (did you mean 'files'?)"),
        ("providers", "providers:\n  - name: x\n    type: files\n    roots: [a]\n    options: {rest_length: 5x}\n",
         "bad.yaml:5: providers[0].options.rest_length: '5x' is not a duration (seconds, or like '5m', '3h', '1d')"),
        ("scorecards", "checks:\n  - id: c\n    name: C\n    rule:\n      all:\n        - fact: catalog.has_owner\n          operatr: equal\n          value: true\n",
         "bad.yaml:7: checks[0].rule.all[0].operatr: unknown key 'operatr' (did you mean 'operator'?)"),
        ("surveys", "id: s\ndimensions: {a: A}\nquestions:\n  - id: q\n    type: likert\n    dimenson: a\nwaves: [{id: w1}]\n",
         "bad.yaml:6: questions[0].dimenson: unknown key 'dimenson' (did you mean 'dimension'?)"),
        ("rbac", "roles:\n  admins:\n    membres: [user:default/a]\n",
         "bad.yaml:3: roles.admins.membres: unknown key 'membres' (did you mean 'members'?)"),
        ("skills", "skills:\n  python: {category: LANGUAGES, alias: [py]}\n",
         "bad.yaml:2: skills.python.alias: unknown key 'alias' (did you mean 'aliases'?)"),
    ],
)
def test_a_bad_file_reports_file_line_path_and_did_you_mean(tmp_path, kind, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert expected in [str(i) for i in validate_file(KINDS[kind], path, "bad.yaml")]


def test_a_well_shaped_file_still_gets_the_loaders_own_checks(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("roles:\n  a:\n    members: ['*']\n    permissions: [scorecard.raed]\n")
    issues = [str(i) for i in validate_file(KINDS["rbac"], path, "policy.yaml")]
    assert len(issues) == 1 and "unknown permission 'scorecard.raed'; did you mean 'scorecard.read'?" in issues[0]


def test_config_validate_exits_1_with_one_line_per_problem(tmp_path, monkeypatch, project_config):
    bad = tmp_path / "providers.yaml"
    bad.write_text("providers:\n  - name: x\n    type: synthetic\n    options: {chunk_size: 0, retry_maxx: 1}\n")
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(bad))
    result = CliRunner().invoke(main, ["config", "validate"])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line]
    assert lines == [
        f"{bad}:4: providers[0].options.chunk_size: Input should be greater than or equal to 1, got 0",
        f"{bad}:4: providers[0].options.retry_maxx: unknown key 'retry_maxx' (did you mean 'retry_max'?)",
    ]
    as_json = CliRunner().invoke(main, ["config", "validate", "--json"])
    assert as_json.exit_code == 1
    assert [i["path"] for i in json.loads(as_json.stdout)["issues"]] == ["providers[0].options.chunk_size", "providers[0].options.retry_maxx"]


def test_settings_read_every_project_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CATALOG_PIPELINES_USAGE_RETENTION_DAYS", "7")
    monkeypatch.setenv("CATALOG_PIPELINES_SCORECARDS", str(tmp_path / "sc"))
    monkeypatch.setenv("CATALOG_PIPELINES_EXECUTOR", "celery")
    monkeypatch.setenv("CATALOG_PIPELINES_COLLECTORS", str(tmp_path / "c.yaml"))
    settings = Settings.from_env()
    assert settings.catalog_database_url == f"sqlite:///{tmp_path.resolve() / 'catalog.db'}"
    assert settings.dagster_home == tmp_path.resolve() / "dagster_home"
    assert settings.collectors_config == tmp_path / "c.yaml"
    assert (settings.usage_retention_days, settings.scorecards_config, settings.executor) == (7, tmp_path / "sc", "celery")

    from catalog_pipelines.services.scorecards import scorecards_config_dir
    from catalog_pipelines.services.usage import retention_days

    assert (retention_days(), scorecards_config_dir()) == (7, tmp_path / "sc")


# Modules that may touch os.environ / os.getenv, and why. Everything else asks settings.py.
ENV_ALLOWED = {
    "catalog_pipelines/settings.py": "the one reader of the project's variables",
    # Process plumbing: tells Dagster where its home is (a write for Dagster's own reader).
    "catalog_pipelines/runs.py": "os.environ.setdefault('DAGSTER_HOME', ...)",
}


def _env_reads(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and isinstance(node.value, ast.Name) and node.value.id == "os"
    ]


def test_only_settings_reads_environment_variables():
    offenders = []
    for package in ("catalog_pipelines", "analytics", "dashboards"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            rel = path.relative_to(PROJECT_ROOT).as_posix()
            if rel not in ENV_ALLOWED:
                offenders += [f"{rel}:{line}" for line in _env_reads(path)]
    assert offenders == [], "read environment variables through catalog_pipelines.settings: " + ", ".join(offenders)
    assert len(_env_reads(PROJECT_ROOT / "catalog_pipelines" / "runs.py")) == 1  # the setdefault only


def test_loading_providers_parses_through_the_model_with_lines(tmp_path):
    from catalog_pipelines.ingestion.config import ConfigError, load_providers

    path = tmp_path / "providers.yaml"
    path.write_text("providers:\n  - name: x\n    type: synthetic\n    options:\n      chunk_size: 10\n      rest_lenght: 1h\n")
    with pytest.raises(ConfigError) as err:
        load_providers(path)
    assert str(err.value) == f"{path}:6: providers[0].options.rest_lenght: unknown key 'rest_lenght' (did you mean 'rest_length'?)"
    path.write_text("providers:\n  - name: x\n    type: synthetic\n    options: {chunk_size: 10, rest_length: 2h}\n")
    [config] = load_providers(path)
    assert (config.options.chunk_size, config.options.rest_length.total_seconds()) == (10, 7200)
