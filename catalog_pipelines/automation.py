"""The automation conditions the insight assets share (one definition each)."""

from __future__ import annotations

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


def freshness_policy(asset: str) -> dg.FreshnessPolicy:
    """The asset's declared freshness (`catalog_pipelines.model.freshness.FRESHNESS`) as Dagster's
    time-window policy: the freshness daemon evaluates it and the UI shows PASS / WARN / FAIL."""
    from catalog_pipelines.model.freshness import FRESHNESS

    declared = FRESHNESS[asset]
    return dg.FreshnessPolicy.time_window(fail_window=declared.fail, warn_window=declared.warn)
