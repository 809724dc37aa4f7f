"""The catalog_snapshot asset refreshes the read API's search rows after an ingestion cycle (the
cycle itself writes none: they are off ingestion's hot path), and reports what it refreshed."""

from __future__ import annotations

from catalog_pipelines.definitions import build_definitions
from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.runs import materialize_snapshot, run_cycle
from catalog_pipelines.services.catalog_read import Caller, CatalogReader
from catalog_pipelines.storage.db import get_engine


def test_catalog_snapshot_refreshes_the_search_rows_of_the_cycle(dagster_instance, tmp_path):
    # The asset's glue, on SQLite only: the refresh itself runs on both backends in tests/web.
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    config = ProviderConfig(name="synth", type="synthetic", params={"size": 120, "seed": 3}, options=IngestionOptions(chunk_size=500))
    defs = build_definitions([config], catalog_url=catalog_url)
    cycle = run_cycle(defs, config, dagster_instance)
    reader, anyone = CatalogReader(get_engine(catalog_url)), Caller("service", "test")
    assert reader.query_entities(anyone, {"filter": ["kind=component"], "limit": ["1"]})["totalItems"] == 0  # not yet
    first = materialize_snapshot(defs, dagster_instance)
    assert first["search_entities_refreshed"] == cycle.added > 0
    assert first["search_rows_written"] > first["search_entities_refreshed"]
    assert reader.query_entities(anyone, {"filter": ["kind=component"], "limit": ["1"]})["totalItems"] > 0
    assert materialize_snapshot(defs, dagster_instance)["search_entities_refreshed"] == 0  # nothing changed since
