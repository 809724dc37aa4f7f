"""`catalog describe --as-of`, `catalog diff` and `catalog history` over a stored history: text and
JSON answers, one-line errors for what history cannot answer."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from catalog_pipelines.cli.catalog import catalog
from tests.storage.test_history import Catalog, component, group


@pytest.fixture
def stored(catalog_url, monkeypatch):
    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    cat = Catalog(catalog_url)
    cat.cycle([group("team-a"), group("team-b"), component(1, lifecycle="experimental"), component(2)])
    cat.cycle([group("team-a"), group("team-b"), component(1, owner="team-b"), component(3)])
    return cat


def run(*args: str):
    return CliRunner().invoke(catalog, list(args), terminal_width=200)


def test_describe_as_of_a_cycle_shows_that_version(stored):
    old = run("describe", "svc-1", "--as-of", "1")
    assert old.exit_code == 0, old.output
    assert "group:default/team-a" in old.output and "experimental" in old.output and "as of cycle 1" in old.output
    new = json.loads(run("describe", "svc-1", "--as-of", "2", "--json").output)
    assert new["owner"] == "group:default/team-b" and new["version"]["change"] == "changed"


def test_diff_between_cycles_in_text_and_json(stored):
    text = run("diff", "--from", "1", "--to", "2")
    assert text.exit_code == 0, text.output
    assert "1 added, 1 removed, 1 changed" in text.output
    assert "owner: group:default/team-a -> group:default/team-b" in text.output
    data = json.loads(run("diff", "--from", "1", "--to", "2", "--kind", "component", "--provider", "p", "--json").output)
    assert [e["ref"] for e in data["removed"]] == ["component:default/svc-2"]


def test_history_lists_each_version(stored):
    out = run("history", "svc-1")
    assert out.exit_code == 0, out.output
    assert "added" in out.output and "changed" in out.output and "spec.owner" in out.output
    assert [v["change"] for v in json.loads(run("history", "svc-2", "--json").output)] == ["added", "removed"]


@pytest.mark.parametrize("args, message", [
    (("history", "nope"), "Error: no history for component:default/nope"),
    (("describe", "svc-1", "--as-of", "7"), "Error: no cycle 7 of provider 'p' (cycles so far: 1..2)"),
    (("describe", "svc-3", "--as-of", "1"), "Error: component:default/svc-3 did not exist as of cycle 1"),
    (("diff", "--from", "1", "--to", "yesterday"), "Error: 'yesterday' is neither a cycle number nor an ISO time"),
])
def test_what_history_cannot_answer_is_one_line_and_exit_1(stored, args, message):
    out = run(*args)
    assert out.exit_code == 1
    assert out.output.startswith(message) and len(out.output.strip().splitlines()) == 1
