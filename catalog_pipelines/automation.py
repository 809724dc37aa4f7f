"""The automation conditions the insight assets share (one definition each)."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg


def every_cron_tick(cron: str, label: str | None = None) -> dg.AutomationCondition:
    """Once per cron tick, never while a run is in flight (DOP's daily_cron_tick_passed pattern);
    deliberately not on_cron, which would also wait for the catalog snapshot to update."""
    condition = dg.AutomationCondition.cron_tick_passed(cron) & ~dg.AutomationCondition.in_progress()
    return condition.with_label(label or f"every tick of {cron}")


# Eager, but not held back by upstream partitions that do not exist yet (survey waves declared for
# the future, days before the first usage event) or areas that never ran: plain eager() would wait
# for them forever.
EAGER_DESPITE_MISSING_DEPS = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


def freshness_policy(asset: str, cadence: str | None = None) -> dg.FreshnessPolicy:
    """The asset's declared freshness (`catalog_pipelines.model.freshness.FRESHNESS`) as Dagster's
    time-window policy: the freshness daemon evaluates it and the UI shows PASS / WARN / FAIL.

    An asset whose cadence is configuration (a collector's `cadence` in collectors.yaml) is not in
    FRESHNESS: its windows follow the cron (`model.freshness.for_interval`)."""
    from catalog_pipelines.model.freshness import FRESHNESS, for_interval

    if asset in FRESHNESS:
        declared = FRESHNESS[asset]
    elif cadence is not None:
        declared = for_interval(cron_interval(cadence), f"cron `{cadence}`")
    else:
        raise KeyError(f"{asset!r} declares no freshness (model/freshness.py FRESHNESS) and has no cadence")
    return dg.FreshnessPolicy.time_window(fail_window=declared.fail, warn_window=declared.warn)


def cron_interval(cron: str) -> "timedelta":
    """The longest gap between two ticks of `cron` over the next week (UTC)."""
    from datetime import datetime, timezone

    from dagster._utils.schedules import cron_string_iterator

    ticks = cron_string_iterator(datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp(), cron, "UTC")
    first = next(ticks)
    times = [first]
    for tick in ticks:
        times.append(tick)
        if tick - first > timedelta(days=7) or len(times) > 2100:
            break
    return max(b - a for a, b in zip(times, times[1:]))
