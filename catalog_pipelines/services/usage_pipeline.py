"""The usage pipeline's steps as plain functions: the Dagster assets and the benchmark call these.

    raw parts ──compact_days──▶ events.parquet ──summarise_days──▶ daily summaries
                                                                      │
                                      insight tables ◀──insights──────┘  (retained days only)

Each step works day by day, so memory stays bounded by one day of events however many days a
backfill covers; `insights` reads only the small daily summaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from analytics.usage.insights import UsageConfig, compute_insights, summarise_day
from catalog_pipelines.storage.usage_store import Compaction, DailySummaryStore, RawEventStore

if TYPE_CHECKING:
    import pandas as pd

    from analytics.org import OrgGraph


@dataclass
class DaysReport:
    days: list[date] = field(default_factory=list)
    events: int = 0
    new_events: int = 0
    duplicates: int = 0
    late_events: int = 0
    parts: int = 0
    summary_bytes: int = 0
    users_by_day: dict[date, int] = field(default_factory=dict)


def compact_days(raw: RawEventStore, days: Iterable[date]) -> tuple[DaysReport, list[Compaction]]:
    report, compactions = DaysReport(), []
    for day in days:
        c = raw.compact_day(day)
        compactions.append(c)
        report.days.append(c.day)
        report.events += c.events
        report.new_events += c.new_events
        report.duplicates += c.duplicates
        report.late_events += c.late_events
        report.parts += c.parts
        report.users_by_day[c.day] = c.users
    return report, compactions


def summarise_days(raw: RawEventStore, summaries: DailySummaryStore, days: Iterable[date], config: UsageConfig = UsageConfig()) -> DaysReport:
    # One process, day after day: measured on the 2-core machine, two spawned worker processes
    # cost a quarter more CPU (imports, cold caches) and were slower whenever anything else ran.
    report = DaysReport()
    for day in days:
        summary = summarise_day(raw.read_day(day), day, config)
        report.summary_bytes += summaries.write(summary)
        report.days.append(day)
        report.events += int(summary.totals["events"].iloc[0])
        report.users_by_day[day] = len(summary.users)
    return report


def retained_days(summaries: DailySummaryStore, config: UsageConfig, as_of: date | None = None) -> list[date]:
    days = summaries.days()
    if not days:
        return []
    last = as_of or days[-1]
    first = last - timedelta(days=config.retention_days - 1)
    return [d for d in days if first <= d <= last]


def insights(
    summaries: DailySummaryStore,
    *,
    org: "OrgGraph | None",
    key: bytes | None,
    config: UsageConfig = UsageConfig(),
    as_of: date | None = None,
    protect: bool = True,
) -> dict[str, "pd.DataFrame"]:
    """All insight tables from the retained days' summaries (raises if there are none); with
    `protect` (the default; see `compute_insights`) no people count below k."""
    days = retained_days(summaries, config, as_of)
    if not days:
        raise LookupError("no daily usage summaries yet")
    # The pairs are most of the volume and the combine step needs only who touched what when.
    parts = summaries.load(days, columns={"pairs": ["dimension", "key", "user"], "users": ["user"]})
    return compute_insights(parts, org=org, key=key, config=config, as_of=as_of or days[-1], protect=protect)


def sweep(raw: RawEventStore, summaries: DailySummaryStore, today: date, retention_days: int) -> dict[str, Any]:
    """Delete raw events and summaries of days older than the retention period (today included)."""
    cutoff = today - timedelta(days=retention_days - 1)
    return {"cutoff": cutoff, "raw_days": raw.sweep(cutoff), "summary_days": summaries.sweep(cutoff)}
