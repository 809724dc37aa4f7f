"""Portal usage assets: Backstage analytics events in daily partitions, and the insights on them.

    collector / `usage import` ──▶ raw part files (pseudonymised, in the event's own UTC day)
                                        │ usage_arrivals_sensor, daily schedule
                                        ▼
    usage_events [day] ──▶ usage_daily_activity [day] ──▶ usage_insights ◀── catalog_snapshot
                                                                (insight tables, area `usage`)
    usage_retention (daily): deletes days older than the retention period

- `usage_events` (daily partitions): folds the day's part files into one deduplicated Parquet
  file; a re-run after late events adds them. Check `users_pseudonymised`.
- `usage_daily_activity` (daily partitions): the day reduced to a small summary (who was active,
  per-key users, searches, templates, funnels), so a new day never means re-reading 90 days.
- `usage_insights`: combines the retained days' summaries with the catalog's teams into the
  insight tables below; checks `metrics_consistent` and `retained_days_summarised`.
- `usage_retention`: enforces the retention period (default 90 days).

| table (`insight_usage_…`) | content |
| --- | --- |
| `daily` | per day: events, DAU, WAU, MAU (rolling 7 / 28 days), stickiness, new/returning users, searches, zero-result and click-through rates, creates, minutes saved |
| `weekly` | per ISO week: active users (each person once), new users, events |
| `cohorts` | weekly cohorts by first active week: active users and retention per week since |
| `reach` | per dimension and key, users by the day they were last active: distinct users over any window is a sum |
| `top_daily` | per dimension (plugin, action, page, entity, search_term, template), key and day: events, daily users |
| `search_terms_daily` | per term and day: searches, with a result count, zero results, clicked through |
| `templates_daily` | per template and day: creates, minutes saved |
| `funnels_daily` | per funnel, step and day: sessions reaching the step |
| `adoption` | per group (rolled up the hierarchy): members, members active in the last 28 days, share |
| `plugin_adoption` | per plugin and week: active users, first-time users, cumulative users |
| `meta` | as-of day, window, thresholds, catalog users active / unknown |

Paths: `<data_dir>/usage/raw` and `<data_dir>/usage/daily`. Environment:
`CATALOG_PIPELINES_USAGE_RETENTION_DAYS` (default 90), `CATALOG_PIPELINES_USAGE_START` (first
partition, default 2025-01-01).
"""

# No `from __future__ import annotations`: Dagster reads the context and resource annotations.
import warnings
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import dagster as dg

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS, freshness_policy
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.partitions import usage_days
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.services.usage import raw_store, retention_days, summary_store, usage_config
from catalog_pipelines.model.vocabulary import SUPPRESSED

# `backfill_policy` is beta in Dagster 1.13; it is what lets a backfill of many days run as one
# run, so we use it knowingly and keep the warning out of every CLI command's output.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

if TYPE_CHECKING:
    import pandas as pd

USAGE_GROUP = "usage"
USAGE_EVENTS = dg.AssetKey("usage_events")
USAGE_DAILY_ACTIVITY = dg.AssetKey("usage_daily_activity")
USAGE_INSIGHTS = dg.AssetKey("usage_insights")
USAGE_RETENTION = dg.AssetKey("usage_retention")
USERS_PSEUDONYMISED = "users_pseudonymised"
METRICS_CONSISTENT = "metrics_consistent"
RETAINED_DAYS_SUMMARISED = "retained_days_summarised"




def _days(context: dg.AssetExecutionContext) -> list[date]:
    return [date.fromisoformat(key) for key in context.partition_keys]


# ---------------------------------------------------------------------------------------------
# assets


@dg.asset(
    key=USAGE_EVENTS,
    partitions_def=usage_days,
    group_name=USAGE_GROUP,
    kinds={"python", "pyarrow", "parquet"},
    # A 90-day backfill is one run that walks the days, not 90 runs of a second's work each.
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec(
            USERS_PSEUDONYMISED,
            asset=USAGE_EVENTS,
            description="Every stored user value is a keyed pseudonym (p_ + 32 hex digits), never an entity ref or e-mail.",
        )
    ],
)
def usage_events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Portal analytics events of one UTC day, in Backstage's analytics shape (action, subject,
    value, attributes, context with pluginId / routeRef or extensionId / entityRef), as the HTTP
    collector and `usage import` appended them: every part file of the day folded into one Parquet
    file, keeping the first copy of each event id, so re-sent batches count once. Events arriving
    after their day was compacted (late events) land in the same day and are added by a re-run."""
    from catalog_pipelines.services.usage_pipeline import compact_days

    raw = raw_store()
    days = _days(context)
    report, compactions = compact_days(raw, days)
    leaks = {d.isoformat(): n for d in days if (n := raw.identity_leaks(d))}
    rejected = sum(raw.rejected_on(d) for d in days)
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "events": report.events,
            "new_events": report.new_events,
            "duplicates_dropped": report.duplicates,
            "late_events": report.late_events,
            "part_files_folded": report.parts,
            # one run may cover many days (backfills): the latest day's figure, and all of them
            "users": compactions[-1].users if compactions else 0,
            "users_by_day": dg.MetadataValue.json({c.day.isoformat(): c.users for c in compactions}),
            # Rejections are filed by the day they were received (a malformed event has no day).
            "rejected_received_these_days": rejected,
            "bytes": sum(c.bytes for c in compactions),
            "path": dg.MetadataValue.path(str(raw.root)),
            "dagster/row_count": report.events,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=USERS_PSEUDONYMISED,
                passed=not leaks,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"values_not_pseudonymised": sum(leaks.values()), "days": dg.MetadataValue.json(leaks)},
            )
        ],
    )


@dg.asset(
    key=USAGE_DAILY_ACTIVITY,
    deps=[USAGE_EVENTS],
    partitions_def=usage_days,
    group_name=USAGE_GROUP,
    kinds={"python", "pandas", "parquet"},
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def usage_daily_activity(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One day of usage reduced to what the insights need: active users, events per (plugin,
    action, page, entity, search term, template) and user, search outcomes, template savings,
    funnel progress and day totals. About a tenth of the day's events in rows; lets a new day
    update the 90-day insights without re-reading 90 days of events."""
    from catalog_pipelines.services.usage_pipeline import summarise_days

    days = _days(context)
    summaries = summary_store()
    config = usage_config()
    report = summarise_days(raw_store(), summaries, days, config)
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "events": report.events,
            # the Dagster UI is a door too: no count of fewer than k people
            "active_users": _people(report.users_by_day[days[-1]] if days else 0, config.min_team_size),
            "active_users_by_day": dg.MetadataValue.json({d.isoformat(): _people(n, config.min_team_size) for d, n in report.users_by_day.items()}),
            "summary_bytes": report.summary_bytes,
            "path": dg.MetadataValue.path(str(summaries.root)),
        }
    )


@dg.asset(
    key=USAGE_INSIGHTS,
    deps=[USAGE_DAILY_ACTIVITY, CATALOG_SNAPSHOT],
    group_name=USAGE_GROUP,
    kinds={"python", "pandas"},
    # Days before the first event have no partition data.
    automation_condition=EAGER_DESPITE_MISSING_DEPS,
    freshness_policy=freshness_policy("usage_insights"),
    check_specs=[
        dg.AssetCheckSpec(METRICS_CONSISTENT, asset=USAGE_INSIGHTS, description="DAU ≤ WAU ≤ MAU every day, and every rate and share lies in [0, 1]."),
        dg.AssetCheckSpec(
            RETAINED_DAYS_SUMMARISED,
            asset=USAGE_INSIGHTS,
            description="Every retained day that has events has a daily summary (else a usage_daily_activity partition is missing and the figures undercount).",
        ),
    ],
)
def usage_insights(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Portal usage insights over the retained days: DAU / WAU / MAU and stickiness, new vs
    returning users, weekly cohort retention, adoption by team (share of each group's members
    active in the last 28 days, through catalog membership, rolled up the hierarchy; groups under
    5 members suppressed), top plugins, pages (route parameters stripped), entities, search
    (zero-result rate, click-through, top terms used by 3+ people), templates (creates, minutes
    saved) and funnels. Published as insight tables (area `usage`)."""
    from catalog_pipelines.services.usage import publish_insights

    published = publish_insights(catalog.get_engine())
    if published is None:
        context.log.info("no daily usage summaries yet: nothing to publish")
        return dg.MaterializeResult(
            metadata={"status": "no usage data yet"},
            check_results=[
                dg.AssetCheckResult(check_name=METRICS_CONSISTENT, passed=True, metadata={"status": "no data"}),
                dg.AssetCheckResult(check_name=RETAINED_DAYS_SUMMARISED, passed=True, metadata={"status": "no data"}),
            ],
        )
    tables, rows, problems, missing = (published[k] for k in ("tables", "rows", "problems", "missing"))
    daily, meta = tables["daily"], tables["meta"].iloc[0]
    last = daily.iloc[-1]
    k = int(meta["min_people"])
    return dg.MaterializeResult(
        metadata={
            "as_of": meta["as_of"],
            "window": f"{meta['first_day']} .. {meta['as_of']}",
            "days_summarised": int(meta["days_summarised"]),
            "days_with_events": int(meta["days_with_events"]),
            "dau": _people(last["dau"], k),
            "wau": _people(last["wau"], k),
            "mau": _people(last["mau"], k),
            "stickiness": float(last["stickiness"]) if last["stickiness"] == last["stickiness"] else SUPPRESSED,
            "catalog_users_active": f"{_people(meta.get('active_catalog_users'), k)} / {meta.get('catalog_users', 0)}",
            "active_users_unknown_to_catalog": _people(meta.get("active_unknown_users"), k),
            "rows": dg.MetadataValue.json(rows),
            "top_plugins": dg.MetadataValue.md(_top_markdown(tables, "plugin")),
            "dagster/row_count": sum(rows.values()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=METRICS_CONSISTENT,
                passed=not problems,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"problems": len(problems), "examples": dg.MetadataValue.json(problems[:20])},
            ),
            dg.AssetCheckResult(
                check_name=RETAINED_DAYS_SUMMARISED,
                passed=not missing,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"days_missing": dg.MetadataValue.json([d.isoformat() for d in missing])},
            ),
        ],
    )


class UsageRetentionConfig(dg.Config):
    retention_days: int = 0  # 0: CATALOG_PIPELINES_USAGE_RETENTION_DAYS, default 90


@dg.asset(key=USAGE_RETENTION, group_name=USAGE_GROUP, kinds={"python", "parquet"})
def usage_retention(context: dg.AssetExecutionContext, config: UsageRetentionConfig) -> dg.MaterializeResult:
    """Enforces the usage retention period: raw events, rejection logs and daily summaries of days
    older than the retention (default 90 days, today included) are deleted. The insight tables
    hold only aggregates and follow on their next refresh."""
    from catalog_pipelines.services.usage_pipeline import sweep

    days = config.retention_days or retention_days()
    today = datetime.now(UTC).date()
    raw = raw_store()
    result = sweep(raw, summary_store(), today, days)
    remaining = raw.days()
    for day in result["raw_days"]:
        context.log.info(f"deleted usage events of {day.isoformat()}")
    return dg.MaterializeResult(
        metadata={
            "retention_days": days,
            "cutoff": result["cutoff"].isoformat(),
            "days_deleted": len(result["raw_days"]),
            "summaries_deleted": len(result["summary_days"]),
            "deleted": dg.MetadataValue.json([d.isoformat() for d in result["raw_days"]]),
            "oldest_day_kept": remaining[0].isoformat() if remaining else "",
            "days_kept": len(remaining),
        }
    )


def _people(value: object, k: int) -> int | str:
    """A count of people for run metadata: the count when at least k, else "suppressed"."""
    from analytics.usage.privacy import MIN_PEOPLE_FLOOR, shown_count

    shown = shown_count(value, max(k, MIN_PEOPLE_FLOOR))
    return SUPPRESSED if shown is None else shown


def _top_markdown(tables: dict[str, "pd.DataFrame"], dimension: str, limit: int = 10) -> str:
    from analytics.usage.insights import window_summary

    meta = tables["meta"].iloc[0]
    # the MAU window, or all the data when it covers less (the published windows)
    summary = window_summary(tables, days=min(int(meta["mau_days"]), int(meta["days"])), top=limit)
    rows = summary[f"top_{dimension}s"]
    lines = [f"| {dimension} | users (28 d) | events (28 d) |", "| --- | ---: | ---: |"]
    lines += [f"| {r['key']} | {r['users']} | {r['events']} |" for r in rows]
    return "\n".join(lines)


usage_assets = [usage_events, usage_daily_activity, usage_insights, usage_retention]
