"""`catalog_changes`: the per-cycle change summary of the catalog history, after each snapshot.

One call to `catalog_pipelines.services.history.build_change_summary`, which reads the history
the ingestion cycles wrote (storage/history.py) and stores the insight tables `HISTORY.*`
(`insight_history_*`) that the dashboards' changes page reads.
"""

import time

import dagster as dg

from catalog_pipelines.automation import freshness_policy

from catalog_pipelines.assets.catalog_health import GROUP, REFRESH
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase

CATALOG_CHANGES = dg.AssetKey("catalog_changes")


@dg.asset(key=CATALOG_CHANGES, deps=[CATALOG_SNAPSHOT], group_name=GROUP, kinds={"pandas"}, automation_condition=REFRESH,
          freshness_policy=freshness_policy("catalog_changes"))
def catalog_changes(catalog: CatalogDatabase) -> dg.MaterializeResult:
    """What each ingestion cycle changed: entities added, changed, removed and rejected per
    provider, cycle and kind; ownership changes; entities that lost their owner (the owner entity
    was removed, or the entity stopped naming one). The preview shows each provider's latest cycle."""
    from catalog_pipelines.services.history import build_change_summary

    started = time.perf_counter()
    built = build_change_summary(catalog.get_engine())
    counts = built["changes_by_cycle"]
    return dg.MaterializeResult(
        metadata={
            "preview": dg.MetadataValue.md(built["preview"]),
            "cycles": int(counts[["provider", "cycle"]].drop_duplicates().shape[0]) if len(counts) else 0,
            "ownership_changes": len(built["ownership_changes"]),
            "lost_owners": len(built["lost_owners"]),
            "dagster/row_count": len(counts),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )


history_assets = [catalog_changes]
