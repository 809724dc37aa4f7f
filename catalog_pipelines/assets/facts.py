"""Fact assets: one per fact source, each on its own cadence, stored with its retention policy.

`catalog_facts` follows the catalog snapshot; the export sources (CI, vulnerabilities, tickets,
coverage, on-call) read their drop directory on a cron cadence. Each writes the source's history
(`insight_facts_<source>`, retention applied) and the newest row per entity
(`insight_facts_<source>_latest`, what scorecards read). In the demo, `synthetic_fact_exports`
writes realistic exports for the synthetic organisation into the drop directories first.
"""



import dagster as dg

from catalog_pipelines.automation import every_cron_tick, freshness_policy
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase

FACTS_GROUP = "facts"
EXPORT_SOURCES = ("ci", "vulnerabilities", "tickets", "coverage", "oncall")
SYNTHETIC_EXPORTS = dg.AssetKey("synthetic_fact_exports")


def fact_asset_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_facts")


# ---------------------------------------------------------------------------------------------
# assets


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


def _export_fact_asset(source: str, demo: bool) -> dg.AssetsDefinition:
    from analytics.facts.sources import FACT_SOURCE_SPECS

    spec = FACT_SOURCE_SPECS[source]
    facts_list = "\n".join(f"- `{source}.{name}` ({f.type}): {f.description}" for name, f in spec.facts.items())

    @dg.asset(
        key=fact_asset_key(source),
        deps=[SYNTHETIC_EXPORTS] if demo else [],
        group_name=FACTS_GROUP,
        kinds={"python", "pandas"},
        automation_condition=every_cron_tick(spec.cron),
        freshness_policy=freshness_policy(fact_asset_key(source).to_user_string()),
        tags={"facts/source": source},
        description=(
            f"{spec.description} Read from `<fact exports>/{source}/` (JSON, JSON Lines or CSV), summarised "
            f"per entity. Cadence `{spec.cron}`; retention: {spec.retention.describe()}.\n\n{facts_list}"
        ),
    )
    def export_facts(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        from catalog_pipelines.services.facts import collect_export_facts

        figures = collect_export_facts(catalog.get_engine(), source)
        directory, files = figures["directory"], figures["files"]
        if not files:
            context.log.warning(f"no export files in {directory}: every {source} fact is 'not reported'")
        return dg.MaterializeResult(
            metadata={**figures["stored"], "dagster/row_count": figures["rows"], "directory": dg.MetadataValue.path(str(directory)), "files_read": len(files), "newest_file": files[-1] if files else ""}
        )

    return export_facts


class SyntheticExportsConfig(dg.Config):
    seed: int = 7
    as_of: str = ""  # YYYY-MM-DD; empty = today (UTC)
    backfill_days: int = 14  # days of CI runs and coverage written when the drop directory is empty


@dg.asset(
    key=SYNTHETIC_EXPORTS,
    deps=[CATALOG_SNAPSHOT],
    group_name="demo",
    kinds={"python"},
    automation_condition=every_cron_tick("0 1 * * *"),
)
def synthetic_fact_exports(context: dg.AssetExecutionContext, config: SyntheticExportsConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Demo only: realistic CI, vulnerability, ticket, coverage and on-call exports for the
    catalog's components, written to the fact drop directories. Teams differ and drift over time;
    some entities are deliberately not covered by some tools."""
    from datetime import date

    from catalog_pipelines.services.facts import write_synthetic_exports

    figures = write_synthetic_exports(catalog.get_engine(), seed=config.seed, as_of=date.fromisoformat(config.as_of) if config.as_of else None, backfill_days=config.backfill_days)
    return dg.MaterializeResult(metadata={"as_of": figures["as_of"].isoformat(), "days": figures["days"], "files": figures["files"], "rows": dg.MetadataValue.json(figures["rows"]), "directory": dg.MetadataValue.path(str(figures["directory"]))})


def build_fact_assets(*, demo: bool = True) -> list[dg.AssetsDefinition]:
    """Every fact asset; with `demo`, the synthetic exports asset feeds the export sources."""
    assets = [catalog_facts, *[_export_fact_asset(s, demo) for s in EXPORT_SOURCES]]
    return [*assets, synthetic_fact_exports] if demo else assets


FACT_ASSET_KEYS = [fact_asset_key(s) for s in ("catalog", *EXPORT_SOURCES)]
