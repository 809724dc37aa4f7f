"""A cycle may sweep only after a walk it can trust (issue 15, items 1, 2, 3 and 6).

Generic guards of the engine, for any provider: a cursor loop of any length within a chunk or
across chunks, endless empty pages, a walk serving far more than the source holds, a walk the
source says changed under it, and an exact total the walk fell short of. Each ends the walk (a new
cycle starts from the first page) or keeps the sweep from removing anything. Plus the safe sweep
defaults, the ad-hoc `ingest PATH` door, and two locations declaring one entity.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from catalog_pipelines.ingestion.chunks import MAX_EMPTY_PAGES, WalkRestarted, collect_chunk, run_chunk
from catalog_pipelines.ingestion.config import IngestionOptions, parse_providers
from catalog_pipelines.ingestion.cycle import WALK_RESTARTED, run_sweep
from catalog_pipelines.model.entity import RawEntity
from catalog_pipelines.providers.base import Page, WalkInDoubt
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger


def group(name: str, location: str | None = None) -> RawEntity:
    return RawEntity(entity={"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": name},
                             "spec": {"type": "team", "children": []}}, location=location or f"file:/src/{name}.yaml")


@dataclass
class ScriptedSource:
    """A provider whose pages are scripted: `pages[cursor]` -> (entities, next cursor or None)."""

    pages: dict[Any, tuple[list[RawEntity], Any]]
    name: str = "scripted"
    total: int | None = None
    counts_exactly: bool = False
    doubt: str | None = None
    present: set[str] = field(default_factory=set)
    asked: list[list[str]] = field(default_factory=list)

    def around(self):
        return contextlib.nullcontext()

    def next(self, cursor: Any) -> Page:
        entities, after = self.pages[json.dumps(cursor)]
        done = after is None
        return Page(list(entities), after, done, total=self.total, doubt=self.doubt if done else None)

    def still_present(self, refs: list[str]) -> set[str]:
        self.asked.append(list(refs))
        return {r for r in refs if r in self.present}


def chain(*steps: tuple[list[RawEntity], Any]) -> dict[Any, tuple[list[RawEntity], Any]]:
    """Pages keyed by the cursor that fetches them: the first by None, each next by its cursor."""
    out, cursor = {}, None
    for entities, after in steps:
        out[json.dumps(cursor)] = (entities, after)
        cursor = after
    return out


@pytest.fixture
def db(catalog_url):
    engine = get_engine(catalog_url)
    return CatalogStore(engine), Ledger(engine)


def test_a_cursor_loop_longer_than_one_page_within_a_chunk_puts_the_walk_in_doubt():
    pages = chain(([group("a")], "A"), ([group("b")], "B"), ([group("c")], "C"))
    pages[json.dumps("C")] = ([group("d")], "A")  # C leads back to A: A -> B -> C -> A -> ...
    with pytest.raises(WalkInDoubt, match="cursor loop"):
        collect_chunk(ScriptedSource(pages), None, chunk_size=1_000)


def test_endless_empty_pages_put_the_walk_in_doubt_instead_of_running_for_ever():
    pages = {json.dumps(None): ([], 1)}
    pages.update({json.dumps(i): ([], i + 1) for i in range(1, 100)})
    with pytest.raises(WalkInDoubt, match=f"{MAX_EMPTY_PAGES} empty pages"):
        collect_chunk(ScriptedSource(pages), None, chunk_size=1_000)


def test_a_loop_across_chunks_restarts_the_walk_in_a_new_cycle_and_removes_nothing(db):
    store, ledger = db
    # Chunk 0 ends on cursor "A", chunk 1 on "B", chunk 2 ends on "A" again.
    pages = chain(([group("a")], "A"), ([group("b")], "B"))
    pages[json.dumps("B")] = ([group("c")], "A")
    source = ScriptedSource(pages)
    ingestion = ledger.start_cycle(source.name)
    run_chunk(store, ledger, source, ingestion, 0, 1)
    run_chunk(store, ledger, source, ingestion, 1, 1)
    with pytest.raises(WalkRestarted, match="earlier chunk of this walk"):
        run_chunk(store, ledger, source, ingestion, 2, 1)
    closed = ledger.get(ingestion.id)
    assert not closed.is_open and closed.sweep_outcome == WALK_RESTARTED and closed.removed == 0
    fresh = ledger.open_ingestion(source.name)
    assert fresh.cycle == ingestion.cycle + 1 and ledger.last_mark(fresh.id) is None
    assert store.refs(source.name) == {"group:default/a", "group:default/b"}


def test_a_walk_serving_far_more_items_than_the_source_reports_is_in_doubt(db):
    store, ledger = db
    # Every page names a new cursor (no repeat to catch), but the source said it holds 2 entities.
    pages = chain(*[([group(f"g{i % 2}")], f"c{i}") for i in range(20)], ([group("last")], None))
    source = ScriptedSource(pages, total=2)
    ingestion = ledger.start_cycle(source.name)
    with pytest.raises(WalkRestarted, match="going round in circles"):
        for sequence in range(21):
            run_chunk(store, ledger, source, ingestion, sequence, 1)


def test_a_walk_the_source_says_changed_under_it_is_restarted_not_swept(db):
    store, ledger = db
    whole = ScriptedSource(chain(([group("a"), group("b"), group("c")], None)))
    first = ledger.start_cycle(whole.name)
    run_chunk(store, ledger, whole, first, 0, 10)
    run_sweep(store, ledger, first, IngestionOptions(), provider=whole)
    ledger.close(first.id, status="complete", next_action="nothing (done)")
    # The next walk saw one entity and the source reported that it changed meanwhile.
    partial = ScriptedSource(chain(([group("a")], None)), doubt="the source changed during the walk")
    second = ledger.start_cycle(whole.name)
    run_chunk(store, ledger, partial, second, 0, 10)
    result = run_sweep(store, ledger, second, IngestionOptions(reject_removals_above_percentage=None), provider=partial)
    assert result.outcome == WALK_RESTARTED and result.removed == 0
    assert "changed during the walk" in ledger.get(second.id).sweep_message
    assert store.refs(whole.name) == {"group:default/a", "group:default/b", "group:default/c"}
    assert ledger.open_ingestion(whole.name).cycle == second.cycle + 1


def test_a_walk_short_of_the_exact_total_is_restarted_twice_then_removes_only_confirmed_gone(db):
    store, ledger = db
    whole = ScriptedSource(chain(([group("a"), group("b"), group("c"), group("d")], None)))
    first = ledger.start_cycle(whole.name)
    run_chunk(store, ledger, whole, first, 0, 10)
    run_sweep(store, ledger, first, IngestionOptions(), provider=whole)
    ledger.close(first.id, status="complete", next_action="nothing (done)")
    # Every later walk sees only "a" although the source counts 3 (b and c are live, d is gone).
    short = ScriptedSource(chain(([group("a")], None)), total=3, counts_exactly=True,
                           present={"group:default/a", "group:default/b", "group:default/c"})
    outcomes = []
    for _ in range(3):
        cycle = ledger.start_cycle(whole.name)
        run_chunk(store, ledger, short, cycle, 0, 10)
        result = run_sweep(store, ledger, cycle, IngestionOptions(reject_removals_above_percentage=None), provider=short)
        outcomes.append(result.outcome)
    assert outcomes == [WALK_RESTARTED, WALK_RESTARTED, "applied"]
    assert result.removed == 1 and result.kept_live == 2
    assert short.asked == [["group:default/b", "group:default/c", "group:default/d"]]
    assert store.refs(whole.name) == {"group:default/a", "group:default/b", "group:default/c"}


def test_a_source_that_cannot_confirm_removals_keeps_everything_after_repeated_doubtful_walks(db):
    store, ledger = db
    whole = ScriptedSource(chain(([group("a"), group("b")], None)))
    first = ledger.start_cycle(whole.name)
    run_chunk(store, ledger, whole, first, 0, 10)
    ledger.close(first.id, status="complete", next_action="nothing (done)")
    doubtful = ScriptedSource(chain(([group("a")], None)), doubt="restarted meanwhile")
    doubtful.still_present = None  # type: ignore[assignment]  (no way to ask the source)
    for _ in range(3):
        cycle = ledger.start_cycle(whole.name)
        run_chunk(store, ledger, doubtful, cycle, 0, 10)
        result = run_sweep(store, ledger, cycle, IngestionOptions(reject_removals_above_percentage=None), provider=doubtful)
    assert result.outcome == "skipped-incomplete" and result.removed == 0
    assert store.refs(whole.name) == {"group:default/a", "group:default/b"}


def test_sweep_guards_are_on_by_default_and_can_be_switched_off_only_explicitly():
    defaults = IngestionOptions()
    assert defaults.reject_removals_above_percentage == 10 and defaults.reject_empty_source_collections
    (explicit,) = parse_providers({"providers": [{"name": "p", "type": "synthetic", "options": {
        "reject_removals_above_percentage": None, "reject_empty_source_collections": False}}]}, Path("."))
    assert explicit.options.reject_removals_above_percentage is None
    assert not explicit.options.reject_empty_source_collections


def test_two_files_declaring_one_entity_keep_the_first_claim_every_cycle_and_name_both(db):
    store, ledger = db
    first_def = group("shared", location="file:/src/a.yaml")
    second_def = RawEntity(entity={**first_def.entity, "metadata": {"name": "shared", "description": "other"}},
                           location="file:/src/b.yaml")
    # The two definitions come in different chunks of the walk.
    source = ScriptedSource(chain(([first_def], "1"), ([group("x")], "2"), ([second_def], None)))
    results = []
    for _ in range(3):
        ingestion = ledger.start_cycle(source.name)
        outcomes = [run_chunk(store, ledger, source, ingestion, seq, 1) for seq in range(3)]
        results.append([(o.result.added, o.result.changed, o.result.rejected) for o in outcomes])
        run_sweep(store, ledger, ingestion, IngestionOptions(), provider=source)
        ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    # Cycle 1 adds it from a.yaml; b.yaml's claim is refused in every cycle; nothing flips.
    assert results[0] == [(1, 0, 0), (1, 0, 0), (0, 0, 1)]
    assert results[1] == results[2] == [(0, 0, 0), (0, 0, 0), (0, 0, 1)]
    stored = store.get_entity("group:default/shared")
    assert stored["location"] == "file:/src/a.yaml" and "description" not in stored["body"]["metadata"]
    (rejection,) = store.rejected(source.name)
    assert rejection["rule"] == "conflict" and rejection["location"] == "file:/src/b.yaml"
    assert "file:/src/a.yaml" in rejection["message"] and "file:/src/b.yaml" in rejection["message"]
    assert outcomes[2].metadata()["conflicts"] == [rejection["message"]]


def test_an_entity_moved_to_another_file_follows_it_without_a_conflict(db):
    store, ledger = db
    for location in ("file:/src/old.yaml", "file:/src/new.yaml"):
        source = ScriptedSource(chain(([group("moving", location=location)], None)))
        ingestion = ledger.start_cycle(source.name)
        outcome = run_chunk(store, ledger, source, ingestion, 0, 10)
        ledger.close(ingestion.id, status="complete", next_action="nothing (done)")
    assert outcome.result.rejected == 0 and outcome.result.changed == 1
    assert store.get_entity("group:default/moving")["location"] == "file:/src/new.yaml"


def write_groups(root: Path, names: list[str]) -> None:
    for old in root.glob("*.yaml"):
        old.unlink()
    for name in names:
        (root / f"{name}.yaml").write_text(
            f"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: {name}\nspec:\n  type: team\n  children: []\n")


@pytest.mark.slow
def test_adhoc_ingest_refuses_a_large_or_total_removal_and_exits_non_zero(data_env, tmp_path):
    from catalog_pipelines.cli import main
    from catalog_pipelines.cli.ingest import EXIT_SWEEP_REFUSED
    from catalog_pipelines.resources import CatalogDatabase

    root = tmp_path / "descriptors"
    root.mkdir()
    runner = CliRunner()
    write_groups(root, [f"team-{i:03d}" for i in range(50)])
    assert runner.invoke(main, ["ingest", str(root), "--quiet"]).exit_code == 0
    # 50 -> 20 files: 60 % would go. Refused by the default guard, reported, exit 3.
    write_groups(root, [f"team-{i:03d}" for i in range(20)])
    refused = runner.invoke(main, ["ingest", str(root), "--quiet"])
    assert refused.exit_code == EXIT_SWEEP_REFUSED, refused.output
    assert "adhoc: sweep rejected-threshold: REMOVAL_THRESHOLD exceeded: attempted to remove 30 of 50" in refused.output
    assert CatalogDatabase().store().count("adhoc") == 50
    # An empty directory never deletes without the explicit override.
    write_groups(root, [])
    empty = runner.invoke(main, ["ingest", str(root), "--quiet", "--max-removal-percentage", "100"])
    assert empty.exit_code == EXIT_SWEEP_REFUSED and "rejected-empty" in empty.output
    assert CatalogDatabase().store().count("adhoc") == 50
    # An operator who means it says so.
    write_groups(root, [f"team-{i:03d}" for i in range(20)])
    allowed = runner.invoke(main, ["ingest", str(root), "--quiet", "--max-removal-percentage", "100"])
    assert allowed.exit_code == 0, allowed.output
    assert CatalogDatabase().store().count("adhoc") == 20


@pytest.mark.slow
def test_a_root_location_whose_targets_match_nothing_counts_as_an_empty_source(data_env, tmp_path):
    from catalog_pipelines.cli import main
    from catalog_pipelines.cli.ingest import EXIT_SWEEP_REFUSED
    from catalog_pipelines.resources import CatalogDatabase

    teams = tmp_path / "teams"
    teams.mkdir()
    root = tmp_path / "catalog-info.yaml"
    root.write_text("apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\n"
                    "spec:\n  targets: [./teams/*.yaml]\n")
    write_groups(teams, [f"team-{i}" for i in range(5)])
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(root), "--quiet"]).exit_code == 0
    assert CatalogDatabase().store().count("adhoc") == 6  # five groups and the root Location
    # The targets now match nothing: only the Location is left, which is no evidence of a source.
    write_groups(teams, [])
    result = runner.invoke(main, ["ingest", str(root), "--quiet", "--max-removal-percentage", "100"])
    assert result.exit_code == EXIT_SWEEP_REFUSED and "rejected-empty" in result.output, result.output
    assert CatalogDatabase().store().count("adhoc") == 6
