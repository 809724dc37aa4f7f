"""The CLI as a new operator meets it (issue 18, items 8, 9, 10 and 11): every mistake ends in one
line naming the file (and line) and the fix, with exit status != 0, JSON with `--json`, the
traceback only with `--debug` (one shared handler, cli/errors.py, for every command).

Protects:
- a missing or mistyped data directory is reported as "no catalog at …" by reading commands
  (nothing is created there); `ingest` creates the catalog;
- a missing providers file, a malformed one, a YAML syntax error, an unusable data directory and a
  missing root file: one line each, no traceback, the right exit status; `config validate` names
  the missing root too;
- progress bars are drawn only on a terminal; a malformed ref is called malformed; an unknown ref
  gets near matches; `dashboards build --audience` for someone not in the catalog refuses;
- the demo's closing lines name the site's index.html and every failed check with where to look.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_pipelines.cli import main
from helpers import TEST_DATA

EXAMPLES = TEST_DATA / "backstage-examples"


def run(args: list[str], env: dict[str, str]):
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A data directory holding the example catalog, ingested by `catalog-pipelines ingest PATH`."""
    root = tmp_path_factory.mktemp("cli-errors")
    env = {"CATALOG_PIPELINES_DATA_DIR": str(root / "data"), "DAGSTER_HOME": str(root / "data" / "dagster_home"),
           "CATALOG_DATABASE_URL": "", "CATALOG_PIPELINES_PROVIDERS": str(root / "providers.yaml")}
    (root / "providers.yaml").write_text("providers: []\n")
    result = run(["ingest", str(EXAMPLES / "all.yaml"), "--name", "examples"], env)
    assert result.exit_code == 0, result.output
    return env, result


def test_progress_bars_stay_out_of_non_terminal_output(ingested):
    _, result = ingested
    assert "chunk/s" not in result.output and "\r" not in result.output
    assert "examples" in result.output  # the report table is still printed


# ---------------------------------------------------------------------------------------- item 8


@pytest.mark.parametrize("args", [["catalog", "stats"], ["admin", "status"], ["catalog", "describe", "petstore"]])
def test_reading_commands_refuse_a_data_directory_without_a_catalog(args, tmp_path):
    mistyped = tmp_path / "dta"
    env = {"CATALOG_PIPELINES_DATA_DIR": str(mistyped), "CATALOG_DATABASE_URL": "", "CATALOG_PIPELINES_PROVIDERS": ""}
    result = run(args, env)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert f"no catalog at sqlite:///{mistyped}/catalog.db" in line and "CATALOG_PIPELINES_DATA_DIR" in line
    assert "catalog-pipelines ingest" in line
    assert not mistyped.exists(), "a reading command created the data directory"

    as_json = run([*args, "--json"], env)
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["kind"] == "no-catalog"


# ---------------------------------------------------------------------------------------- item 9


def test_a_missing_providers_file_is_an_error_naming_it(ingested, tmp_path):
    env, _ = ingested
    missing = tmp_path / "providers.yml"
    result = run(["admin", "status"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(missing)})
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert str(missing) in line and "CATALOG_PIPELINES_PROVIDERS" in line and "Traceback" not in result.output


@pytest.mark.parametrize("text, line_no, says", [
    ("providers:\n  - name: x\n    type: filez\n    roots: [a.yaml]\n", 3, "did you mean 'files'"),
    ("providers:\n  - name: x\n    type: files\n   roots: [a.yaml\n", 4, "invalid YAML"),
])
def test_a_bad_providers_file_is_one_line_with_its_file_and_line(ingested, tmp_path, text, line_no, says):
    env, _ = ingested
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    for args in (["ingest"], ["admin", "status"]):
        result = run(args, {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
        assert result.exit_code == 2, result.output
        (line,) = error_lines(result)
        assert line.startswith(f"error: {path}:{line_no}: ") and says in line, line
        assert "Traceback" not in result.output

    as_json = run(["ingest", "--json"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
    error = json.loads(as_json.stdout)["error"]
    assert (error["file"], error["line"], error["kind"], error["exit_code"]) == (str(path), line_no, "config", 2)

    debug = run(["--debug", "ingest"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
    assert "Traceback (most recent call last)" in debug.output and debug.exit_code == 2
    anywhere = run(["ingest", "--debug"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
    assert "Traceback (most recent call last)" in anywhere.output and anywhere.exit_code == 2


def test_a_missing_root_file_is_refused_before_any_walk(ingested, tmp_path):
    env, _ = ingested
    path = tmp_path / "providers.yaml"
    path.write_text(f"providers:\n  - name: x\n    type: files\n    roots:\n      - {EXAMPLES / 'all.yaml'}\n      - missing.yaml\n")
    started = time.monotonic()
    result = run(["ingest"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert line.startswith(f"error: {path}:6: providers[0].roots[1]: missing.yaml does not exist"), line
    assert len(result.output.splitlines()) == 1
    assert time.monotonic() - started < 20  # no retries: it never started (not a timing benchmark)

    checked = run(["config", "validate", "--json"], {**env, "CATALOG_PIPELINES_PROVIDERS": str(path)})
    assert checked.exit_code == 1
    issues = json.loads(checked.stdout)["issues"]
    assert [(i["line"], "missing.yaml does not exist" in i["message"]) for i in issues if i["file"].endswith("providers.yaml")] == [(6, True)]


def test_an_unusable_data_directory_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = {"CATALOG_PIPELINES_DATA_DIR": str(blocker / "data"), "CATALOG_DATABASE_URL": "", "DAGSTER_HOME": ""}
    result = run(["ingest", str(EXAMPLES / "all.yaml")], env)
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert str(blocker / "data") in line and "CATALOG_PIPELINES_DATA_DIR" in line and "Traceback" not in result.output


# --------------------------------------------------------------------------------------- item 11


def test_a_malformed_ref_is_called_malformed(ingested):
    env, _ = ingested
    result = run(["catalog", "describe", "api::/x"], env)
    assert result.exit_code == 2
    assert "malformed ref 'api::/x'" in result.output and "no entity" not in result.output
    as_json = json.loads(run(["catalog", "describe", "api::/x", "--json"], env).stdout)
    assert "malformed ref" in as_json["error"]["message"]


def test_an_unknown_ref_gets_near_matches(ingested):
    env, _ = ingested
    result = run(["catalog", "describe", "petstor"], env)
    assert result.exit_code == 1
    assert "no entity component:default/petstor in the catalog; did you mean component:default/petstore or api:default/petstore?" in result.output


def test_dashboards_for_someone_not_in_the_catalog_are_refused(ingested, tmp_path):
    env, _ = ingested
    out = tmp_path / "site"
    result = run(["dashboards", "build", "--audience", "user:default/guest-typo", "--out", str(out)], env)
    assert result.exit_code == 1, result.output
    assert "no user or group user:default/guest-typo in the catalog" in result.output
    assert not (out / "index.html").exists()


# --------------------------------------------------------------------------------------- item 10


def test_the_demo_summary_names_the_site_and_each_failed_check_with_where_to_look(tmp_path, monkeypatch):
    from catalog_pipelines.cli.ingest import demo_summary

    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(tmp_path))
    failed = [{"asset": "catalog_snapshot", "check": "owners_resolvable", "severity": "WARN",
               "description": "", "run_id": "r1"},
              {"asset": "survey_trends", "check": "response_rate_collapse", "severity": "WARN",
               "description": "2 teams collapsed", "run_id": "r2"}]
    lines = demo_summary(failed)
    index = Path(tmp_path) / "outputs" / "dashboards" / "index.html"
    assert f"dashboards: {index}" in lines[1] and index.as_uri() in lines[2]
    assert "checks: 2 failed (2 warn-level):" in lines
    assert "  survey_trends:response_rate_collapse [WARN] 2 teams collapsed" in lines
    assert "    look: make ui, then http://127.0.0.1:3000/assets/catalog_snapshot?view=checks" in lines
    assert demo_summary([])[-1] == "checks: every asset check passed"


def test_config_validate_reports_a_providers_file_named_but_missing(tmp_path):
    missing = tmp_path / "providers.yaml"
    result = run(["config", "validate", "--json"], {"CATALOG_PIPELINES_PROVIDERS": str(missing)})
    assert result.exit_code == 1
    assert [i["file"] for i in json.loads(result.stdout)["issues"]] == [str(missing)]
