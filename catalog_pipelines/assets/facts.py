"""Fact assets: one per fact source, each on its own cadence, stored with its retention policy.

`catalog_facts` follows the catalog snapshot; the export sources (CI, vulnerabilities, tickets,
coverage, on-call) read their drop directory on a cron cadence. Each writes the source's history
(`insight_facts_<source>`, retention applied) and the newest row per entity
(`insight_facts_<source>_latest`, what scorecards read). In the demo, `synthetic_fact_exports`
writes realistic exports for the synthetic organisation into the drop directories first.
"""


import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from catalog_pipelines.automation import every_cron_tick
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

FACTS_GROUP = "facts"
FACTS_AREA = "facts"
EXPORT_SOURCES = ("ci", "vulnerabilities", "tickets", "coverage", "oncall")
SYNTHETIC_EXPORTS = dg.AssetKey("synthetic_fact_exports")


def fact_asset_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_facts")


def fact_exports_dir() -> Path:
    """The drop directory for fact exports: `CATALOG_PIPELINES_FACT_EXPORTS`, else `<data>/fact_exports`."""
    from catalog_pipelines.settings import Settings

    configured = os.environ.get("CATALOG_PIPELINES_FACT_EXPORTS")
    return Path(configured) if configured else Settings.from_env().data_dir / "fact_exports"


# ---------------------------------------------------------------------------------------------
# storage of facts (history with retention + latest), on the shared insight table store


def store_facts(engine: "sa.Engine", source: str, facts: "pd.DataFrame", collected_at: datetime) -> dict[str, Any]:
    """Append one collection to the source's history, apply retention, refresh the latest table."""
    import pandas as pd

    from analytics.facts import FACT_SOURCES, apply_retention, encode_for_storage, latest_facts
    from catalog_pipelines.storage.insights import read_frame, write_frames

    spec = FACT_SOURCES[source]
    new = encode_for_storage(facts, source, collected_at)
    history = read_frame(engine, FACTS_AREA, source)
    combined = new if history is None or history.empty else pd.concat([history, new], ignore_index=True)
    kept = apply_retention(combined, spec.retention, collected_at)
    write_frames(engine, FACTS_AREA, {source: kept, f"{source}_latest": latest_facts(kept)})
    return {"entities": len(facts), "history_rows": len(kept), "pruned_rows": len(combined) - len(kept), "retention": spec.retention.describe()}


def load_latest_facts(engine: "sa.Engine") -> dict[str, "pd.DataFrame"]:
    """The newest facts per entity of every source that has been collected, decoded."""
    from analytics.facts import FACT_SOURCES, decode_from_storage
    from catalog_pipelines.storage.insights import read_frame

    out = {}
    for source in FACT_SOURCES:
        frame = read_frame(engine, FACTS_AREA, f"{source}_latest")
        if frame is not None:
            out[source] = decode_from_storage(frame, source)
    return out



# ---------------------------------------------------------------------------------------------
# assets


@dg.asset(
    key=fact_asset_key("catalog"),
    deps=[CATALOG_SNAPSHOT],
    group_name=FACTS_GROUP,
    kinds={"python", "pandas"},
    automation_condition=dg.AutomationCondition.eager(),
    tags={"facts/source": "catalog"},
)
def catalog_facts(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Catalog facts per owned entity (owner set, owner is a group and resolves, description, tags,
    TechDocs, source location, links, lifecycle, system), refreshed after every catalog snapshot.
    Retention: the 5 latest collections per entity."""
    from analytics.facts import catalog_facts as compute, utc_now

    entities = catalog.entities_frame()
    facts = compute(entities, known_refs=entities["ref"])
    stored = store_facts(catalog.get_engine(), "catalog", facts, utc_now())
    shares = {c: round(float(facts[c].mean()), 4) for c in ("has_owner", "owner_is_group", "has_description", "has_techdocs") if len(facts)}
    return dg.MaterializeResult(metadata={**stored, "dagster/row_count": len(facts), "shares": dg.MetadataValue.json(shares)})


def _export_fact_asset(source: str, demo: bool) -> dg.AssetsDefinition:
    from analytics.fact_sources import FACT_SOURCE_SPECS

    spec = FACT_SOURCE_SPECS[source]
    facts_list = "\n".join(f"- `{source}.{name}` ({f.type}): {f.description}" for name, f in spec.facts.items())

    @dg.asset(
        key=fact_asset_key(source),
        deps=[SYNTHETIC_EXPORTS] if demo else [],
        group_name=FACTS_GROUP,
        kinds={"python", "pandas"},
        automation_condition=every_cron_tick(spec.cron),
        tags={"facts/source": source},
        description=(
            f"{spec.description} Read from `<fact exports>/{source}/` (JSON, JSON Lines or CSV), summarised "
            f"per entity. Cadence `{spec.cron}`; retention: {spec.retention.describe()}.\n\n{facts_list}"
        ),
    )
    def export_facts(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        from analytics.facts import collect_export_facts, utc_now

        now = utc_now()
        directory = fact_exports_dir() / source
        facts, files = collect_export_facts(source, directory, now)
        if not files:
            context.log.warning(f"no export files in {directory}: every {source} fact is 'not reported'")
        stored = store_facts(catalog.get_engine(), source, facts, now)
        return dg.MaterializeResult(
            metadata={**stored, "dagster/row_count": len(facts), "directory": dg.MetadataValue.path(str(directory)), "files_read": len(files), "newest_file": files[-1] if files else ""}
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

    from analytics.synthetic_facts import synthetic_exports, today_utc, write_exports

    as_of = date.fromisoformat(config.as_of) if config.as_of else today_utc()
    directory = fact_exports_dir()
    days = config.backfill_days if not any((directory / "ci").glob("*")) else 1
    exports = synthetic_exports(catalog.entities_frame(), catalog.org_graph(), as_of=as_of, seed=config.seed, days=days)
    written = write_exports(exports, directory)
    rows = {source: int(sum(len(f) for f in by_day.values())) for source, by_day in exports.items()}
    return dg.MaterializeResult(metadata={"as_of": as_of.isoformat(), "days": days, "files": len(written), "rows": dg.MetadataValue.json(rows), "directory": dg.MetadataValue.path(str(directory))})


def build_fact_assets(*, demo: bool = True) -> list[dg.AssetsDefinition]:
    """Every fact asset; with `demo`, the synthetic exports asset feeds the export sources."""
    assets = [catalog_facts, *[_export_fact_asset(s, demo) for s in EXPORT_SOURCES]]
    return [*assets, synthetic_fact_exports] if demo else assets


FACT_ASSET_KEYS = [fact_asset_key(s) for s in ("catalog", *EXPORT_SOURCES)]
