"""What each fact source provides: its facts, cadence and retention. No pandas here.

The Dagster code location reads these specs when it defines the fact assets (descriptions, cron
cadences), so they live apart from the readers in `analytics/facts/collect.py`, which import pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FACT_TYPES = ("boolean", "number", "string", "list", "object")

@dataclass(frozen=True)
class FactSpec:
    type: str
    description: str

    def __post_init__(self) -> None:
        if self.type not in FACT_TYPES:
            raise ValueError(f"fact type {self.type!r} must be one of {FACT_TYPES}")


@dataclass(frozen=True)
class Retention:
    """Keep the `max_items` latest rows per entity, and/or drop rows older than `ttl`."""

    max_items: int | None = None
    ttl: timedelta | None = None

    def describe(self) -> str:
        parts = []
        if self.max_items is not None:
            parts.append(f"keep {self.max_items} latest per entity")
        if self.ttl is not None:
            parts.append(f"time-to-live {self.ttl}")
        return ", ".join(parts) or "keep everything"


@dataclass(frozen=True)
class FactSource:
    name: str
    description: str
    facts: dict[str, FactSpec]
    retention: Retention
    cron: str  # collection cadence; the Dagster asset reads it
    summarise: "Callable[[pd.DataFrame, datetime], pd.DataFrame] | None" = None
    key: str | None = None  # record id column, for de-duplicating across export files
    time_columns: tuple[str, ...] = field(default_factory=tuple)


def _specs(**facts: tuple[str, str]) -> dict[str, FactSpec]:
    return {name: FactSpec(t, d) for name, (t, d) in facts.items()}


FACT_SOURCE_SPECS: dict[str, FactSource] = {
    "catalog": FactSource(
        name="catalog",
        description="Derived from the stored catalog entities (kinds with an owner).",
        facts=_specs(
            has_owner=("boolean", "spec.owner is set"),
            owner_is_group=("boolean", "the owner is a Group ref (not a User)"),
            owner_exists=("boolean", "the owner ref resolves to an entity in the catalog"),
            has_description=("boolean", "metadata.description is not blank"),
            tags=("list", "metadata.tags"),
            tag_count=("number", "number of tags"),
            has_techdocs=("boolean", "a backstage.io/techdocs-ref or techdocs-entity annotation"),
            has_source_location=("boolean", "a source-location annotation or a url: managed-by-location"),
            links_count=("number", "number of metadata.links"),
            has_links=("boolean", "at least one metadata.links entry"),
            lifecycle=("string", "spec.lifecycle"),
            system=("string", "spec.system as written"),
            has_system=("boolean", "spec.system is set"),
            entity=("object", "the live entity body; use `path` to reach any field"),
        ),
        retention=Retention(max_items=5),
        cron="0 * * * *",
    ),
    "ci": FactSource(
        name="ci",
        description="CI pipeline runs (one record per run).",
        facts=_specs(
            runs_30d=("number", "runs in the last 30 days, any branch"),
            last_status=("string", "status of the latest default-branch run (success, failed, cancelled)"),
            last_duration_seconds=("number", "duration of the latest default-branch run"),
            median_duration_seconds=("number", "median default-branch run duration, 30 days"),
            default_branch_success_rate=("number", "share of successful default-branch runs, 30 days (0..1)"),
        ),
        retention=Retention(ttl=timedelta(days=14)),
        cron="15 * * * *",
        key="run_id",
        time_columns=("started_at",),
    ),
    "vulnerabilities": FactSource(
        name="vulnerabilities",
        description="Security findings (one record per finding; restated when resolved).",
        facts=_specs(
            open_critical=("number", "open critical findings"),
            open_high=("number", "open high findings"),
            open_medium=("number", "open medium findings"),
            open_low=("number", "open low findings"),
            open_total=("number", "open findings of any severity"),
            oldest_open_days=("number", "age in days of the oldest open finding (0 when none)"),
            oldest_critical_high_days=("number", "age in days of the oldest open critical/high finding"),
        ),
        retention=Retention(max_items=10, ttl=timedelta(days=30)),
        cron="0 */6 * * *",
        key="vulnerability_id",
        time_columns=("opened_at", "resolved_at"),
    ),
    "tickets": FactSource(
        name="tickets",
        description="Tickets and incidents (one record per ticket; restated when closed).",
        facts=_specs(
            open_tickets=("number", "open tickets (not incidents)"),
            open_incidents=("number", "open incidents"),
            oldest_open_ticket_days=("number", "age in days of the oldest open ticket (0 when none)"),
            incidents_30d=("number", "incidents opened in the last 30 days"),
        ),
        retention=Retention(max_items=10),
        cron="30 */2 * * *",
        key="ticket_id",
        time_columns=("opened_at", "closed_at"),
    ),
    "coverage": FactSource(
        name="coverage",
        description="Code coverage reports (one record per measurement).",
        facts=_specs(
            line_coverage=("number", "latest line coverage, percent"),
            branch_coverage=("number", "latest branch coverage, percent"),
        ),
        retention=Retention(max_items=30),
        cron="0 3 * * *",
        time_columns=("measured_at",),
    ),
    "oncall": FactSource(
        name="oncall",
        description="On-call schedules (one record per entity).",
        facts=_specs(
            has_oncall=("boolean", "an on-call schedule is attached"),
            oncall_responders=("number", "people in the rotation"),
            has_escalation_policy=("boolean", "an escalation policy is attached"),
        ),
        retention=Retention(max_items=7),
        cron="0 4 * * *",
        time_columns=("updated_at",),
    ),
}
