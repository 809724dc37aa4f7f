"""`catalog-pipelines usage …` reads the stored insight tables; `import` validates and lands files."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from click.testing import CliRunner

from catalog_pipelines.cli.usage import usage
from catalog_pipelines.settings import Settings
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.model.insight_tables import USAGE
from catalog_pipelines.storage.insights import write_frame
from tests.analytics.test_usage_metrics import CONFIG, KEY, build_stores, fixture_org


@pytest.fixture
def stored(data_env, tmp_path):
    """The fixture's insight tables written to the catalog database the CLI reads."""
    from catalog_pipelines.services.usage_pipeline import insights

    url = Settings.from_env().catalog_database_url
    _, summaries = build_stores(tmp_path / "usage")
    # k = 3 (the floor): the fixture's small counts show which figures hide
    for name, frame in insights(summaries, org=fixture_org(), key=KEY, config=dataclasses.replace(CONFIG, min_team_size=3)).items():
        write_frame(get_engine(url), USAGE.get(name), frame)
    return url


def test_summary_json_reports_the_window_from_the_stored_tables(stored):
    result = CliRunner().invoke(usage, ["summary", "--days", "7", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["as_of"], report["window_start"]) == ("2025-03-11", "2025-03-05")
    # DAU 2 is about fewer than k = 3 people: hidden (None), never 2
    assert (report["active_users"], report["dau"], report["wau"], report["mau"]) == (4, None, 4, 6)
    assert report["templates"]["creates"] == 1


def test_summary_text_shows_the_headline_figures(stored):
    result = CliRunner().invoke(usage, ["summary"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "DAU suppressed · WAU 4 · MAU 6" in result.output
    assert "\n/catalog " in result.output  # 3 people
    assert "/catalog/:namespace/:kind/:name" not in result.output  # 2 people: fewer than k
    assert "zero results 50.0%" in result.output


def test_a_window_longer_than_the_data_covers_all_of_it_and_says_so(stored):
    report = json.loads(CliRunner().invoke(usage, ["summary", "--days", "60", "--json"]).output)
    assert (report["days"], report["requested_days"], report["window_start"]) == (9, 60, "2025-03-03")
    # 6 active in the 9 days, 4 in the last 7: showing 6 would give away the 2 people last active
    # 8-9 days ago (fewer than k = 3), so the whole-data figure is hidden; events are not people
    assert report["active_users"] is None and report["events"] == 20
    text = CliRunner().invoke(usage, ["summary", "--days", "60"]).output
    assert "only 9 days of data are stored, not the 60 asked for" in text


def test_summary_without_insights_says_what_to_run(data_env):
    from catalog_pipelines.services.catalog import engine_from_env

    engine_from_env(create=True)  # a catalog, but no usage insights yet
    result = CliRunner().invoke(usage, ["summary", "--json"])
    assert result.exit_code != 0 and "usage refresh" in result.output


def test_import_lands_good_lines_and_lists_bad_ones(data_env, tmp_path):
    yesterday = datetime.now(UTC) - timedelta(days=1)
    good = {"eventId": "a", "timestamp": yesterday.isoformat(), "action": "navigate", "subject": "/", "context": {"pluginId": "home"}}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps({**good, "eventId": "b", "context": {}}) + b"\n")
    result = CliRunner().invoke(usage, ["import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)[str(path)]
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert report["rejections"][0]["index"] == 2
    assert (data_env / "usage" / "raw" / f"date={yesterday.date().isoformat()}").is_dir()


def test_the_collector_refuses_to_start_without_a_way_to_authenticate_callers(data_env, monkeypatch):
    for name in ("CATALOG_PIPELINES_USAGE_SERVICE_TOKENS", "CATALOG_PIPELINES_BACKSTAGE_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(usage, ["collector", "--port", "1"])
    assert result.exit_code == 2 and "CATALOG_PIPELINES_USAGE_SERVICE_TOKENS" in result.output
    monkeypatch.setenv("CATALOG_PIPELINES_USAGE_SERVICE_TOKENS", "short=relay")
    result = CliRunner().invoke(usage, ["collector", "--port", "1"])
    assert result.exit_code == 2 and "entry 1 (relay): a token needs at least 16 characters" in result.output
    assert "short" not in result.output.replace("(relay)", "")  # a token is never echoed


def test_import_pseudonymises_the_catalog_users_names_in_search_terms(data_env, tmp_path):
    from helpers import seed_catalog

    from catalog_pipelines.settings import Settings as S
    from tests.storage.test_usage_store import stored_text

    seed_catalog(S.from_env().catalog_database_url, [
        {"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": "jane.doe"}, "spec": {"profile": {"displayName": "Jane Doe", "email": "jane@example.com"}, "memberOf": []}},
    ])
    yesterday = datetime.now(UTC) - timedelta(days=1)
    search = {"eventId": "a", "timestamp": yesterday.isoformat(), "userEntityRef": "user:default/bob", "action": "search", "subject": "who is jane doe", "context": {"pluginId": "search"}}
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(search) + b"\n")
    assert CliRunner().invoke(usage, ["import", str(path)]).exit_code == 0
    assert "jane" not in stored_text(data_env / "usage" / "raw")
