"""Fact assets: the catalog's own facts, and one asset per collector configured in collectors.yaml.

`catalog_facts` follows the catalog snapshot. Each collector asset (`<name>_facts`, group `facts`)
runs on its collectors.yaml cadence: it collects from the stored cursor, maps observations to
entities through their annotations (so it reads the catalog: it is downstream of the snapshot),
stores them, and shows mapped / unmapped / ambiguous / rejected in its metadata
(`services.facts.collect`). The demo's `synthetic_fact_sources` writes synthetic report files
(group `demo`); it is NOT upstream of any collector: the demo runs it first, then the collectors.
"""

import dagster as dg

from catalog_pipelines.automation import every_cron_tick, freshness_policy
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase

FACTS_GROUP = "facts"
SYNTHETIC_SOURCES = dg.AssetKey("synthetic_fact_sources")
LISTED_IN_METADATA = 10


def fact_asset_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_facts")


@dg.asset(
    key=fact_asset_key("catalog"),
    deps=[CATALOG_SNAPSHOT],
    group_name=FACTS_GROUP,
    kinds={"python", "pandas"},
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=freshness_policy("catalog_facts"),
    tags={"facts/source": "catalog"},
)
def catalog_facts(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Catalog facts per owned entity (owner set, owner is a group and resolves, description, tags,
    TechDocs, source location, links, lifecycle, system), refreshed after every catalog snapshot.
    Retention: the 5 latest collections per entity."""
    from catalog_pipelines.services.facts import collect_catalog_facts

    figures = collect_catalog_facts(catalog.get_engine())
    return dg.MaterializeResult(metadata={**figures["stored"], "dagster/row_count": figures["rows"], "shares": dg.MetadataValue.json(figures["shares"])})


def collector_metadata(figures: dict) -> dict:
    """A collector run's figures as asset metadata: counts, the first few of each list, the cursor."""
    return {
        **{k: figures[k] for k in ("observations", "mapped", "shared", "unmapped", "ambiguous", "rejected", "stored", "unchanged", "batches", "pruned")},
        "dagster/row_count": figures["mapped"],
        "first_unmapped": dg.MetadataValue.json(figures["unmapped_records"][:LISTED_IN_METADATA]),
        "first_ambiguous": dg.MetadataValue.json(figures["ambiguous_records"][:LISTED_IN_METADATA]),
        "first_rejections": dg.MetadataValue.json(figures["rejections"][:LISTED_IN_METADATA]),
        "cursor": dg.MetadataValue.json(figures["cursor"] or {}),
        "run_id": figures["run_id"],
    }


def _collector_asset(entry) -> dg.AssetsDefinition:
    facts = "\n".join(f"- `{entry.name}.{n}` ({f.type}): {f.description}" for n, f in (entry.facts or {}).items())

    @dg.asset(
        key=fact_asset_key(entry.name),
        deps=[CATALOG_SNAPSHOT],
        group_name=FACTS_GROUP,
        kinds={"python"},
        automation_condition=every_cron_tick(entry.cadence),
        freshness_policy=freshness_policy(fact_asset_key(entry.name).to_user_string(), cadence=entry.cadence),
        tags={"facts/source": entry.name, "facts/collector_type": entry.type},
        description=(
            f"{entry.description or 'Facts collected by a ' + entry.type + ' collector.'} Collector `{entry.name}` "
            f"(type `{entry.type}`), cadence `{entry.cadence}`, retention: {entry.retention.describe()}.\n\n{facts}"
        ),
    )
    def collector_facts(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        from catalog_pipelines.services.facts import collect

        figures = collect(catalog.get_engine(), entry.name)
        for kind in ("unmapped", "ambiguous", "rejected"):
            if figures[kind]:
                context.log.warning(f"{figures[kind]} {kind} record(s); the first are in the metadata")
        return dg.MaterializeResult(metadata=collector_metadata(figures))

    return collector_facts


class SyntheticSourcesConfig(dg.Config):
    seed: int = 7
    as_of: str = ""  # YYYY-MM-DD; empty = today (UTC)


@dg.asset(key=SYNTHETIC_SOURCES, deps=[CATALOG_SNAPSHOT], group_name="demo", kinds={"python"}, automation_condition=every_cron_tick("0 1 * * *"))
def synthetic_fact_sources(context: dg.AssetExecutionContext, config: SyntheticSourcesConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Demo only: real-format report files (SARIF, Trivy, Cobertura, JUnit, ...) for the synthetic
    organisation's repositories, in the report folder the collectors read. No collector depends on
    it: the demo materialises it first, then the collectors (production never runs it)."""
    from datetime import date

    from catalog_pipelines.services.facts import write_synthetic_sources

    figures = write_synthetic_sources(catalog.get_engine(), seed=config.seed, as_of=date.fromisoformat(config.as_of) if config.as_of else None)
    return dg.MaterializeResult(metadata={k: (dg.MetadataValue.json(v) if isinstance(v, dict | list) else str(v)) for k, v in figures.items()})


def build_fact_assets(*, demo: bool = True, collectors_config=None) -> list[dg.AssetsDefinition]:
    """`catalog_facts`, one asset per configured collector, and (with `demo`) the synthetic sources."""
    from catalog_pipelines.services.facts import collectors_file

    assets = [catalog_facts, *[_collector_asset(e) for e in collectors_file(collectors_config).collectors]]
    return [*assets, synthetic_fact_sources] if demo else assets


def fact_asset_keys(collectors_config=None) -> list[dg.AssetKey]:
    from catalog_pipelines.services.facts import collectors_file

    return [fact_asset_key("catalog"), *[fact_asset_key(e.name) for e in collectors_file(collectors_config).collectors]]
