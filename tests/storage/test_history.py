"""Catalog history on both backends: every change of a cycle is a version written in the same
transaction as the change, unchanged entities write nothing, and the services answer
describe-as-of, diff and history from it (storage/history.py, services/history.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity, Rejection
from catalog_pipelines.services import history as svc
from catalog_pipelines.storage import catalog as catalog_module
from catalog_pipelines.storage import history
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger


def component(i: int, owner: str = "team-a", lifecycle: str = "production", system: str | None = None, description: str = "") -> dict:
    spec = {"type": "service", "lifecycle": lifecycle, "owner": owner}
    if system:
        spec["system"] = system
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": f"svc-{i}", "description": description}, "spec": spec}


def group(name: str) -> dict:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": name},
            "spec": {"type": "team", "children": []}}


def processed(bodies: list[dict]) -> list[ProcessedEntity]:
    out = [process_entity(RawEntity(entity=b, location=f"test#{b['metadata']['name']}")) for b in bodies]
    assert all(isinstance(e, ProcessedEntity) for e in out)
    return out


class Catalog:
    """Runs whole cycles of provider "p" through write_chunk (two chunks) and the sweep."""

    def __init__(self, url: str, history_on: bool = True):
        self.engine = get_engine(url)
        self.store, self.ledger = CatalogStore(self.engine, history=history_on), Ledger(self.engine)

    def cycle(self, bodies: list[dict], rejections: list[Rejection] = (), fail_chunk: int | None = None) -> int:
        ing = self.ledger.start_cycle("p")
        entities = processed(bodies)
        half = len(entities) // 2
        for seq, part in enumerate((entities[:half], entities[half:])):
            self.store.write_chunk(provider="p", ingestion_id=ing.id, sequence=seq, cursor_in=None, cursor={"n": seq},
                                   done=seq == 1, entities=part, rejections=list(rejections) if seq == 1 else [],
                                   fail_before_commit=fail_chunk == seq)
        self.store.sweep(provider="p", ingestion_id=ing.id, cycle=ing.cycle, reject_removals_above_percentage=None,
                         reject_empty_source_collections=False, sequence=1)
        self.ledger.close(ing.id, status="complete")
        return ing.cycle

    def rows(self) -> list[dict]:
        h = s.entity_history
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(sa.select(h).order_by(h.c.id))]


@pytest.fixture
def cat(catalog_url):
    return Catalog(catalog_url)


def test_each_change_of_a_cycle_is_one_version_and_an_unchanged_cycle_writes_none(cat):
    base = [group("team-a"), group("team-b")] + [component(i) for i in range(6)]
    assert cat.cycle(base) == 1
    first = cat.rows()
    assert [r["change"] for r in first] == ["added"] * 8
    assert all(r["previous_body"] is None for r in first)  # a first cycle stores no bodies
    assert {r["chunk"] for r in first} == {0, 1} and {r["cycle"] for r in first} == {1}
    assert next(r for r in first if r["ref"] == "component:default/svc-0")["owner"] == "group:default/team-a"

    cat.cycle(base)
    assert len(cat.rows()) == 8  # nothing changed: nothing written

    bad = Rejection(location="test#bad", message="spec.owner: missing", ref="component:default/svc-9", field="spec.owner", rule="required")
    third = [group("team-a"), group("team-b")] + [component(0, owner="team-b")] + [component(i) for i in range(1, 5)] + [component(5, description="new")]
    cat.cycle(third, rejections=[bad])
    new = {r["ref"]: r for r in cat.rows()[8:]}
    assert new["component:default/svc-0"]["change"] == "changed"
    assert history.unpack_body(new["component:default/svc-0"]["previous_body"])["spec"]["owner"] == "team-a"
    assert new["component:default/svc-0"]["owner"] == "group:default/team-b"
    assert "spec.owner" in new["component:default/svc-0"]["fields"]
    assert new["component:default/svc-5"]["fields"] == '["metadata.description"]'
    assert new["component:default/svc-9"]["change"] == "rejected"
    assert {r: v["change"] for r, v in new.items() if v["change"] == "removed"} == {}
    # The same rejection again is not a new version.
    cat.cycle(third, rejections=[bad])
    assert len(cat.rows()) == 11


def test_removed_entities_keep_their_body_and_describe_as_of_reads_each_version(cat):
    v1 = [group("team-a"), component(1, lifecycle="experimental"), component(2)]
    cat.cycle(v1)
    cat.cycle([group("team-a"), component(1, lifecycle="production"), component(2)])
    cat.cycle([group("team-a"), component(1, lifecycle="production")])
    assert svc.describe_as_of(cat.engine, "svc-1", 1)["lifecycle"] == "experimental"
    assert svc.describe_as_of(cat.engine, "component:default/svc-1", "2")["lifecycle"] == "production"
    assert svc.describe_as_of(cat.engine, "svc-2", 2)["body"]["metadata"]["name"] == "svc-2"
    with pytest.raises(svc.HistoryError, match="removed in cycle 3"):
        svc.describe_as_of(cat.engine, "svc-2", 3)
    with pytest.raises(svc.HistoryError, match="no cycle 9"):
        svc.describe_as_of(cat.engine, "svc-1", 9)
    with pytest.raises(svc.HistoryError, match="no history for component:default/nope"):
        svc.history_of(cat.engine, "nope")
    assert [v["change"] for v in svc.history_of(cat.engine, "svc-2")] == ["added", "removed"]
    now = dt.datetime.now(dt.timezone.utc)
    assert svc.describe_as_of(cat.engine, "svc-1", now.isoformat())["lifecycle"] == "production"


def test_diff_lists_added_removed_and_field_changes_with_filters(cat):
    cat.cycle([group("team-a"), group("team-b"), component(1), component(2), component(3, system="sys")])
    cat.cycle([group("team-a"), group("team-b"), component(1, owner="team-b"), component(3), component(4)])
    out = svc.diff(cat.engine, 1, 2)
    assert out["counts"] == {"added": 1, "removed": 1, "changed": 2}
    assert [a["ref"] for a in out["added"]] == ["component:default/svc-4"]
    assert [a["ref"] for a in out["removed"]] == ["component:default/svc-2"]
    changed = {c["ref"]: c for c in out["changed"]}
    assert changed["component:default/svc-1"]["changes"]["owner"] == {"from": "group:default/team-a", "to": "group:default/team-b"}
    assert {"type": "ownedBy", "target": "group:default/team-b"} in changed["component:default/svc-1"]["changes"]["relations"]["added"]
    assert changed["component:default/svc-3"]["changes"]["system"] == {"from": "system:default/sys", "to": None}
    assert svc.diff(cat.engine, 1, 2, kind="group")["counts"] == {"added": 0, "removed": 0, "changed": 0}
    with pytest.raises(svc.HistoryError, match="no cycle 1 of provider 'other'"):
        svc.diff(cat.engine, 1, 2, provider="other")
    assert svc.diff(cat.engine, 1, 2, provider="p")["counts"]["added"] == 1
    assert svc.diff(cat.engine, 2, 2)["counts"] == {"added": 0, "removed": 0, "changed": 0}
    with pytest.raises(svc.HistoryError, match="after"):
        svc.diff(cat.engine, 2, 1)


def test_diff_and_describe_by_time_see_the_cycles_written_before_that_time(cat):
    cat.cycle([group("team-a"), component(1, lifecycle="experimental")])
    between = dt.datetime.now(dt.timezone.utc)
    cat.cycle([group("team-a"), component(1), component(2)])
    after = dt.datetime.now(dt.timezone.utc)
    out = svc.diff(cat.engine, between.isoformat(), after.isoformat())
    assert out["counts"] == {"added": 1, "removed": 0, "changed": 1}
    # the same instant written with another offset is the same point
    shifted = between.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    assert svc.describe_as_of(cat.engine, "svc-1", shifted)["lifecycle"] == "experimental"
    with pytest.raises(svc.HistoryError, match="both be cycles or both be times"):
        svc.diff(cat.engine, 1, after.isoformat())


def test_the_change_summary_finds_ownership_changes_and_entities_that_lost_their_owner(cat):
    cat.cycle([group("team-a"), group("team-b"), group("team-c"), component(1), component(2, owner="team-b")])
    cat.cycle([group("team-a"), group("team-c"), component(1, owner="team-c"), component(2, owner="team-b")])
    frames = svc.build_change_summary(cat.engine)
    counts = frames["changes_by_cycle"]
    assert int(counts[counts["cycle"] == 1]["added"].sum()) == 5
    assert frames["ownership_changes"]["ref"].tolist() == ["component:default/svc-1"]
    lost = frames["lost_owners"]
    assert set(lost["ref"]) == {"component:default/svc-2"} and lost["reason"].tolist() == ["owner removed from the catalog"]
    assert "Ownership changes" in frames["preview"]
    stored = svc.changes_page_data(cat.engine)
    assert len(stored["ownership_changes"]) == 1


@pytest.mark.parametrize("where", ["chunk", "sweep"])
def test_a_rolled_back_change_leaves_no_history_row_and_no_history_row_outlives_its_change(cat, monkeypatch, where):
    cat.cycle([group("team-a"), component(1), component(2)])
    before = cat.rows()
    with pytest.raises(RuntimeError):
        if where == "chunk":
            cat.cycle([group("team-a"), component(1, owner="team-b"), component(2), component(3)], fail_chunk=0)
        else:
            def boom(*a, **k):
                raise RuntimeError("crash after the history rows, before the delete")

            original = history.HistoryWriter.record_removals

            def record_then_crash(self, conn, where_):
                original(self, conn, where_)
                boom()

            monkeypatch.setattr(history.HistoryWriter, "record_removals", record_then_crash)
            cat.cycle([group("team-a"), component(1)])
    assert cat.rows() == before
    assert cat.store.count() == 3
    assert_history_matches_catalog(cat)


def assert_history_matches_catalog(cat: Catalog) -> None:
    """Every stored entity is its latest version; every ref whose latest version is not a removal is stored."""
    latest = {}
    for row in cat.rows():
        if row["change"] != "rejected":
            latest[row["ref"]] = row
    with cat.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(s.entities.c.ref, s.entities.c.content_hash)).all())
    assert stored == {ref: v["content_hash"] for ref, v in latest.items() if v["change"] != "removed"}


def test_history_and_catalog_agree_after_a_crash_between_committed_chunks(cat):
    cat.cycle([group("team-a"), component(1), component(2)])
    with pytest.raises(RuntimeError):
        cat.cycle([group("team-a"), component(1, owner="team-b"), component(2), component(3)], fail_chunk=1)
    assert_history_matches_catalog(cat)  # chunk 0 (svc-1's change) committed with its version, chunk 1 not
    assert not [r for r in cat.rows() if r["ref"] == "component:default/svc-3"]


def test_history_off_writes_nothing_and_pruning_keeps_the_catalog_as_of_the_oldest_kept_cycle(catalog_url):
    off = Catalog(catalog_url, history_on=False)
    off.cycle([group("team-a"), component(1)])
    assert off.rows() == []
    on = Catalog(catalog_url)
    for lifecycle in ("a", "b", "c", "d"):
        on.cycle([group("team-a"), component(1, lifecycle=lifecycle), component(2)] + ([component(3)] if lifecycle == "a" else []))
    # cycles 2..5 hold versions; keep the last 2 (4 and 5)
    deleted = history.prune(on.engine, "p", current_cycle=5, keep_cycles=2)
    assert deleted > 0
    assert svc.describe_as_of(on.engine, "svc-1", 4)["lifecycle"] == "c"
    assert svc.describe_as_of(on.engine, "svc-1", 5)["lifecycle"] == "d"
    assert svc.describe_as_of(on.engine, "svc-2", 5)["body"]["metadata"]["name"] == "svc-2"
    assert not [r for r in on.rows() if r["ref"] == "component:default/svc-3"]  # removed before the window


def test_a_database_that_predates_history_gets_a_baseline_version_per_entity(catalog_url):
    cat = Catalog(catalog_url, history_on=False)
    cat.cycle([group("team-a"), component(1)])
    with cat.engine.begin() as conn:
        assert history.baseline(conn) == 2
    assert svc.describe_as_of(cat.engine, "svc-1", 0)["owner"] == "group:default/team-a"


def test_history_keep_cycles_from_the_providers_file_prunes_after_each_sweep(catalog_url, tmp_path):
    from catalog_pipelines.ingestion.config import ConfigError, parse_providers
    from catalog_pipelines.ingestion.cycle import run_sweep

    raw = {"providers": [{"name": "p", "type": "synthetic", "size": 50, "options": {"history_keep_cycles": 1}}]}
    options = parse_providers(raw, tmp_path)[0].options
    assert options.history_keep_cycles == 1
    with pytest.raises(ConfigError, match="history_keep_cycles"):
        parse_providers({"providers": [{"name": "p", "type": "synthetic", "options": {"history_keep_cycles": 0}}]}, tmp_path)
    cat = Catalog(catalog_url)
    for lifecycle in ("a", "b", "c"):
        ing = cat.ledger.start_cycle("p")
        cat.store.write_chunk(provider="p", ingestion_id=ing.id, sequence=0, cursor_in=None, cursor=None, done=True,
                              entities=processed([group("team-a"), component(1, lifecycle=lifecycle)]), rejections=[])
        run_sweep(cat.store, cat.ledger, cat.ledger.get(ing.id), options)
        cat.ledger.close(ing.id, status="complete")
    # cycle 3 kept; of the older versions only svc-1's latest (cycle 2) and team-a's (cycle 1) remain, bodies dropped
    assert sorted((r["ref"], r["cycle"]) for r in cat.rows()) == [
        ("component:default/svc-1", 2), ("component:default/svc-1", 3), ("group:default/team-a", 1)]
    assert svc.describe_as_of(cat.engine, "svc-1", 2)["lifecycle"] == "b"


def test_a_diff_over_several_cycles_reports_the_net_relation_changes_with_or_without_stored_deltas(cat):
    groups = [group("team-a"), group("team-b"), group("team-c")]
    cat.cycle(groups + [component(1), component(2, system="sys")])
    cat.cycle(groups + [component(1, owner="team-b"), component(2, system="sys", description="x")])
    cat.cycle(groups + [component(1, owner="team-c"), component(2, system="other")])
    cat.cycle(groups + [component(1, owner="team-a"), component(2, system="other")])
    changed = [r for r in cat.rows() if r["change"] == "changed"]
    assert {r["relations_delta"] for r in changed if r["ref"] == "component:default/svc-2" and r["cycle"] == 2} == {""}

    def relations(out):
        return {c["ref"]: c["changes"].get("relations") for c in out["changed"]}

    composed = {(a, b): relations(svc.diff(cat.engine, a, b)) for a, b in ((1, 3), (1, 4), (2, 4))}
    # svc-1: team-a → team-b → team-c → team-a: no net relation change; svc-2 moved to "other".
    assert composed[(1, 4)]["component:default/svc-1"] is None
    assert composed[(1, 3)]["component:default/svc-1"] == {"added": [{"type": "ownedBy", "target": "group:default/team-c"}],
                                                           "removed": [{"type": "ownedBy", "target": "group:default/team-a"}]}
    assert {"type": "partOf", "target": "system:default/other"} in composed[(2, 4)]["component:default/svc-2"]["added"]
    everything = {(a, b): svc.diff(cat.engine, a, b) for a, b in composed}
    # Versions written before deltas and previous states were kept (NULL) are answered from the
    # bodies and a lookup of each entity's earlier state, alike.
    with cat.engine.begin() as conn:
        conn.execute(s.entity_history.update().values(relations_delta=None))
    assert {(a, b): relations(svc.diff(cat.engine, a, b)) for a, b in composed} == composed
    with cat.engine.begin() as conn:
        conn.execute(s.entity_history.update().values(previous_owner=None, previous_lifecycle=None, previous_system=None,
                                                      previous_relations_hash=None))
    assert {(a, b): svc.diff(cat.engine, a, b) for a, b in composed} == everything


def test_a_history_table_of_the_first_release_gets_the_columns_added_since(catalog_url):
    cat = Catalog(catalog_url)
    cat.cycle([group("team-a"), component(1)])
    with cat.engine.begin() as conn:
        for column in ("relations_delta", "previous_owner", "previous_lifecycle", "previous_system", "previous_relations_hash"):
            conn.execute(sa.text(f"ALTER TABLE entity_history DROP COLUMN {column}"))
    from catalog_pipelines.storage.db import ensure_schema

    ensure_schema(cat.engine)
    cat.cycle([group("team-a"), group("team-b"), component(1, owner="team-b")])
    assert svc.diff(cat.engine, 1, 2)["changed"][0]["changes"]["relations"]["added"] == [
        {"type": "ownedBy", "target": "group:default/team-b"}]
