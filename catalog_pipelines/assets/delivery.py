"""Delivery insights' assets (issue 22). Events side: `delivery_events_daily`.

The collector assets (`<name>_facts` of every collector whose params ask for `events:`) collect
delivery events from their cursors as they collect facts and upsert them into the event tables;
`delivery_events_daily` is partitioned by UTC day (`partitions.delivery_days`): materialising a
day closes it (per kind: events, entities, events with no entity, rows whose times contradict each
other; events per entity in the metadata; recorded in `delivery_event_days`), and a backfill of a
range closes those days again in one run. The delivery metrics depend on it.

Metrics side: `delivery_metrics` (eager, after the events' days and the catalog snapshot) reads
the events its windows need and publishes DORA's four keys, PR flow and review load per entity,
team and organisation as insight tables (area `delivery`, docs/delivery.md) through ONE service
call, `services.delivery.compute_delivery_metrics`.
"""

import dagster as dg

from catalog_pipelines.partitions import delivery_days
from catalog_pipelines.resources import CatalogDatabase

DELIVERY_GROUP = "delivery"
DELIVERY_EVENTS_DAILY = dg.AssetKey("delivery_events_daily")
EVENT_TIMES_CONSISTENT = "event_times_consistent"
LISTED_ENTITIES = 20


def _collector_deps(collectors_config=None) -> list[dg.AssetKey]:
    from catalog_pipelines.assets.facts import fact_asset_key
    from catalog_pipelines.services.delivery import event_collectors

    return [fact_asset_key(name) for name in event_collectors(collectors_config)]


def build_delivery_event_assets(collectors_config=None) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=DELIVERY_EVENTS_DAILY,
        deps=_collector_deps(collectors_config),
        partitions_def=delivery_days,
        group_name=DELIVERY_GROUP,
        kinds={"python", "sql"},
        # A two-year backfill is one run that walks the days, not 730 runs of a second's work each.
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[dg.AssetCheckSpec(
            EVENT_TIMES_CONSISTENT, asset=DELIVERY_EVENTS_DAILY,
            description="No event of the day has times contradicting each other (a merge, a close or a first review "
                        "before the pull request's creation, a finish before the start, a resolve before the incident).")],
    )
    def delivery_events_daily(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        """One UTC day of delivery events (pull requests, reviews, deployments, incidents, pipeline
        runs), as the collectors stored them: counted per kind and per entity and recorded as closed.
        Late events (a pull request merged today moves to today) are in the next close of their day."""
        from datetime import date

        from catalog_pipelines.services.delivery import close_days

        days = [date.fromisoformat(key) for key in context.partition_keys]
        closed = close_days(catalog.get_engine(), days)
        totals = {kind: sum(c["events"][kind] for c in closed) for kind in closed[0]["events"]} if closed else {}
        problems = {c["day"]: sum(c["problems"].values()) for c in closed if sum(c["problems"].values())}
        last = closed[-1] if closed else None
        per_entity = {}
        if last:
            merged: dict[str, int] = {}
            for counts in last["per_entity"].values():
                for ref, n in counts.items():
                    merged[ref] = merged.get(ref, 0) + n
            per_entity = dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:LISTED_ENTITIES])
        return dg.MaterializeResult(
            metadata={
                "days": len(days),
                **{f"events_{kind}": n for kind, n in totals.items()},
                "dagster/row_count": sum(totals.values()),
                # one run may cover many days (backfills): the latest day's figures
                "entities_by_kind": dg.MetadataValue.json(last["entities"] if last else {}),
                "without_entity_by_kind": dg.MetadataValue.json(last["unmapped"] if last else {}),
                "top_entities": dg.MetadataValue.json(per_entity),
            },
            check_results=[dg.AssetCheckResult(
                check_name=EVENT_TIMES_CONSISTENT, passed=not problems, severity=dg.AssetCheckSeverity.WARN,
                metadata={"days_with_problems": dg.MetadataValue.json(problems)})],
        )

    return [delivery_events_daily]


DELIVERY_METRICS = dg.AssetKey("delivery_metrics")


def build_delivery_metric_assets(collectors_config=None) -> list[dg.AssetsDefinition]:
    from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
    from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS, freshness_policy

    @dg.asset(
        key=DELIVERY_METRICS,
        # the event-collecting collectors directly too: a job without the daily partitions (the
        # insights job, the demo) still runs the collectors first
        deps=[DELIVERY_EVENTS_DAILY, CATALOG_SNAPSHOT, *_collector_deps(collectors_config)],
        group_name=DELIVERY_GROUP,
        kinds={"python", "pandas"},
        automation_condition=EAGER_DESPITE_MISSING_DEPS,
        freshness_policy=freshness_policy("delivery_metrics"),
    )
    def delivery_metrics(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        """DORA's four keys (deployment frequency, lead time for changes, change failure rate, time
        to restore) per entity, team and organisation, per ISO week and over the rolling window, with
        performance bands and trends; PR flow (cycle time and its parts, sizes, stale PRs, merged
        without review) and review load (k-protected). Insight tables of area `delivery`."""
        from catalog_pipelines.services.delivery import compute_delivery_metrics

        result = compute_delivery_metrics(catalog.get_engine())
        summary = result["tables"]["dora_summary"]
        org = summary[summary["scope_type"] == "org"]
        figures = {str(r.metric): (None if r.value != r.value else round(float(r.value), 3)) for r in org.itertuples()}
        bands = {str(r.metric): (None if r.band != r.band else str(r.band)) for r in org.itertuples()}
        return dg.MaterializeResult(metadata={
            "as_of": str(result["as_of"]),
            "org_figures": dg.MetadataValue.json(figures),
            "org_bands": dg.MetadataValue.json(bands),
            "rows": dg.MetadataValue.json(result["rows"]),
            "dagster/row_count": sum(result["rows"].values()),
        })

    return [delivery_metrics]
