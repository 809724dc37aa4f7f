"""Facts: catalog facts, one reader per export source (JSON, JSON Lines, CSV), retention, and the
synthetic organisation's exports (deterministic, teams that differ and change over time)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import orjson
import pandas as pd
import pytest

from analytics.facts.collect import Retention, apply_retention, catalog_facts, decode_from_storage, encode_for_storage, latest_facts

NOW = datetime(2026, 7, 1, 12, tzinfo=timezone.utc)


# ##### FIXTURES


def entity(kind: str, name: str, **spec) -> dict:
    meta = spec.pop("metadata", {})
    return {"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": "default", **meta}, "spec": spec}


def frame(bodies: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"ref": f"{b['kind']}:default/{b['metadata']['name']}".lower(), "kind": b["kind"].lower(), "namespace": "default", "name": b["metadata"]["name"], "type": b["spec"].get("type"), "owner": b["spec"].get("owner"), "system": b["spec"].get("system"), "lifecycle": b["spec"].get("lifecycle"), "provider": "t", "entity": b}
            for b in bodies
        ]
    )


# ##### CATALOG FACTS


def test_catalog_facts_describe_ownership_docs_source_links_lifecycle_and_system():
    bodies = [
        entity("Group", "team-a", type="team"),
        entity("User", "jane"),
        entity("Component", "full", type="service", owner="team-a", lifecycle="production", system="shop", metadata={"description": "Does things", "tags": ["java"], "links": [{"url": "u"}], "annotations": {"backstage.io/techdocs-ref": "dir:.", "backstage.io/source-location": "url:https://x"}}),
        entity("Component", "bare", type="service", owner="user:jane", metadata={"description": "  "}),
        entity("API", "ghost-owned", type="openapi", owner="team-gone", lifecycle="production"),
    ]
    facts = catalog_facts(frame(bodies)).set_index("entity_ref")
    assert set(facts.index) == {"component:default/full", "component:default/bare", "api:default/ghost-owned"}  # users/groups have no facts
    full, bare, ghost = facts.loc["component:default/full"], facts.loc["component:default/bare"], facts.loc["api:default/ghost-owned"]
    assert (full.has_owner, full.owner_is_group, full.owner_exists, full.has_description, full.has_techdocs, full.has_source_location, full.links_count, full.lifecycle, full.has_system) == (True, True, True, True, True, True, 1, "production", True)
    assert full.tags == ["java"] and full.tag_count == 1
    assert (bare.has_owner, bare.owner_is_group, bare.owner_exists, bare.has_description, bare.has_techdocs, bare.has_links, bare.has_system) == (True, False, True, False, False, False, False)
    assert (ghost.owner_is_group, ghost.owner_exists) == (True, False)


def test_fact_storage_round_trip_keeps_lists_and_booleans():
    facts = catalog_facts(frame([entity("Component", "a", type="service", owner="team-a", metadata={"tags": ["x", "y"]})]))
    stored = encode_for_storage(facts, "catalog", NOW)
    assert stored["tags"].iat[0] == '["x","y"]'
    back = decode_from_storage(stored, "catalog")
    assert back["tags"].iat[0] == ["x", "y"] and back["has_owner"].tolist() == [True] and str(back["has_owner"].dtype) == "boolean"


# ##### EXPORT READERS


def history(*stamps: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"entity_ref": [r for r, _ in stamps], "collected_at": [pd.Timestamp("2026-07-01") - pd.Timedelta(days=d) for _, d in stamps], "v": range(len(stamps))})


def test_retention_keeps_the_n_latest_rows_per_entity():
    kept = apply_retention(history(("a", 3), ("a", 2), ("a", 1), ("b", 5)), Retention(max_items=2), NOW)
    assert sorted(zip(kept["entity_ref"], kept["v"], strict=True)) == [("a", 1), ("a", 2), ("b", 3)]


def test_retention_time_to_live_drops_old_rows_so_stale_facts_become_missing():
    kept = apply_retention(history(("a", 20), ("a", 1), ("b", 20)), Retention(ttl=timedelta(days=14)), NOW)
    assert kept["v"].tolist() == [1]
    assert latest_facts(kept)["entity_ref"].tolist() == ["a"]
