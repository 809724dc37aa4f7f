"""`catalog_changes` stores the per-cycle change summary and previews it in markdown."""

from __future__ import annotations

import dagster as dg

from catalog_pipelines.assets.history import catalog_changes
from catalog_pipelines.model.insight_tables import HISTORY
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.storage.insights import read_frame
from tests.storage.test_history import Catalog, component, group


def test_catalog_changes_stores_the_summary_and_previews_ownership_changes_and_lost_owners(catalog_url):
    cat = Catalog(catalog_url)
    cat.cycle([group("team-a"), group("team-b"), group("team-c"), component(1), component(2, owner="team-b")])
    cat.cycle([group("team-a"), group("team-c"), component(1, owner="team-c"), component(2, owner="team-b")])
    result = dg.materialize([catalog_changes], resources={"catalog": CatalogDatabase(url=catalog_url)},
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = result.asset_materializations_for_node("catalog_changes")[0].metadata
    assert metadata["ownership_changes"].value == 1 and metadata["lost_owners"].value == 1 and metadata["cycles"].value == 2
    preview = metadata["preview"].value
    assert "component:default/svc-1" in preview and "owner removed from the catalog" in preview
    counts = read_frame(cat.engine, HISTORY.changes_by_cycle)
    assert int(counts[counts["cycle"] == 2]["removed"].sum()) == 1
