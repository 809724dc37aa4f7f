"""How fresh every insight asset must be: declared once, read by every door.

- the Dagster glue turns each declaration into the asset's `freshness_policy`
  (`dg.FreshnessPolicy.time_window(fail_window, warn_window)`, evaluated by Dagster's freshness
  daemon and shown in the UI: asset page and catalog, "Freshness" PASS / WARN / FAIL);
- the dashboards evaluate the same declarations on the asset materialisation times the site build
  reads from the Dagster instance (`services.site` / `catalog_pipelines.runs`), and print "fresh as
  of ..." or "stale since ..." under each page title;
- `services.notify` raises an operators' notification for every stale asset.

The windows follow each asset's cadence: an asset is stale when its last materialisation is older
than `fail` (about two of its runs missed), in warning after `warn` (one run missed). Stdlib only,
so the model, services and dashboards may all import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

FRESH, WARN, STALE, UNKNOWN = "fresh", "warn", "stale", "unknown"
_ORDER = {FRESH: 0, UNKNOWN: 1, WARN: 2, STALE: 3}


@dataclass(frozen=True)
class Freshness:
    """The asset must have materialised within `fail` (stale after), ideally within `warn`."""

    fail: timedelta
    warn: timedelta | None
    cadence: str  # why these windows, shown in docs and the asset description

    def __post_init__(self) -> None:
        # Dagster's constraints on a time-window policy, checked here so every door agrees.
        if self.fail < timedelta(minutes=1) or (self.warn is not None and not timedelta(minutes=1) <= self.warn < self.fail):
            raise ValueError(f"freshness windows must be >= 1 minute and warn < fail, got fail={self.fail} warn={self.warn}")

    def describe(self) -> str:
        warn = f", warn after {_human(self.warn)}" if self.warn else ""
        return f"stale when not materialised for {_human(self.fail)}{warn} ({self.cadence})"


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


# Every insight asset (user-string key) and its freshness. Adding an insight asset: add it here,
# `tests/dagster/test_freshness.py` fails for an insight asset without a declaration.
FRESHNESS: dict[str, Freshness] = {
    # the catalog's own facts; each collector's `<name>_facts` follows its collectors.yaml cadence
    # (`for_interval`, applied by the Dagster glue)
    "catalog_facts": Freshness(_h(50), _h(26), "after every catalog snapshot; providers rest a day at most"),
    # scorecards: results hourly at :45, reports right after
    "scorecard_results": Freshness(_h(3), _h(2), "hourly at :45"),
    "scorecard_reports": Freshness(_h(3), _h(2), "after every evaluation"),
    # surveys: waves arrive every quarter; trends re-run on every new export and snapshot
    "survey_trends": Freshness(timedelta(days=100), timedelta(days=93), "quarterly waves"),
    # usage: daily partitions, insights after each day
    "usage_insights": Freshness(_h(50), _h(26), "daily"),
    # delivery: the four keys and PR flow after each closed day of events
    "delivery_metrics": Freshness(_h(50), _h(26), "daily, after each closed day of delivery events"),
    # catalog health: after every catalog snapshot
    "orphan_report": Freshness(_h(50), _h(26), "after every catalog snapshot"),
    "relationship_graph": Freshness(_h(50), _h(26), "after every catalog snapshot"),
    "skills_exchange": Freshness(_h(50), _h(26), "after every catalog snapshot"),
    "catalog_changes": Freshness(_h(50), _h(26), "after every catalog snapshot"),
    # the site, rebuilt when any insight changes
    "dashboards_site": Freshness(_h(50), _h(26), "after any insight"),
}


def for_interval(interval: timedelta, cadence: str) -> Freshness:
    """Windows for an asset that runs every `interval`: warning once one run is missed (plus 30
    minutes' grace), stale once two are (plus an hour)."""
    return Freshness(fail=2 * interval + _h(1), warn=interval + timedelta(minutes=30), cadence=cadence)


def _human(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 and hours % 24 == 0 else f"{hours:g} h"


@dataclass(frozen=True)
class FreshnessStatus:
    """One asset's (or page's) freshness at `now`: `state`, its last materialisation, and since
    when it is (or will be) stale."""

    state: str
    last: datetime | None
    stale_since: datetime | None

    def label(self, fmt=lambda t: t.isoformat(timespec="minutes")) -> str:  # noqa: ANN001 - a formatter
        if self.state == UNKNOWN or self.last is None:
            return "never materialised"
        if self.state == STALE:
            return f"stale since {fmt(self.stale_since)}"
        suffix = " (due soon)" if self.state == WARN else ""
        return f"fresh as of {fmt(self.last)}{suffix}"


def _utc(value: datetime) -> datetime:
    """Naive times are UTC (the project stores UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def status(policy: Freshness, last: datetime | None, now: datetime) -> FreshnessStatus:
    """The state of an asset last materialised at `last` (None: never), as Dagster's time-window
    evaluator computes it (>= fail: stale; >= warn: warning)."""
    if last is None:
        return FreshnessStatus(UNKNOWN, None, None)
    last, now = _utc(last), _utc(now)
    age = now - last
    stale_since = last + policy.fail
    if age >= policy.fail:
        return FreshnessStatus(STALE, last, stale_since)
    if policy.warn is not None and age >= policy.warn:
        return FreshnessStatus(WARN, last, stale_since)
    return FreshnessStatus(FRESH, last, stale_since)


def statuses(materialized: Mapping[str, datetime], now: datetime, assets: Iterable[str] | None = None) -> dict[str, FreshnessStatus]:
    """Every declared asset (or those of `assets` that are declared) and its status."""
    names = FRESHNESS if assets is None else [a for a in assets if a in FRESHNESS]
    return {name: status(FRESHNESS[name], materialized.get(name), now) for name in names}


def combined(found: Mapping[str, FreshnessStatus]) -> FreshnessStatus | None:
    """A page's freshness from its sources': as fresh as its oldest source; stale since the first
    source went stale; None when no source declares a policy. A never-materialised source does not
    make the page stale (the page says "no data" then)."""
    known = [s for s in found.values() if s.last is not None]
    if not found:
        return None
    if not known:
        return FreshnessStatus(UNKNOWN, None, None)
    worst = max(known, key=lambda s: _ORDER[s.state]).state
    stale = [s.stale_since for s in known if s.state == STALE and s.stale_since is not None]
    return FreshnessStatus(worst, min(s.last for s in known), min(stale) if stale else min(s.stale_since for s in known if s.stale_since))
