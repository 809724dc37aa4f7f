"""`notifications`: after the insight assets, send what they found to the people who can act.

Thin: reads the asset materialisation times from the instance (for stale assets), calls
`services.notify.run_notifications` (the CLI's `catalog-pipelines notify` calls the same), returns
the digests as metadata. A receiver that fails is retried with backoff inside the service and
reported by the `notifications_delivered` check (WARN); it never fails this run or blocks another.
Only an invalid config/notifications.yaml fails the run, with file and line.
"""

import dagster as dg

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS, every_cron_tick
from catalog_pipelines.resources import CatalogDatabase

NOTIFICATIONS = dg.AssetKey("notifications")
DELIVERED_CHECK = "notifications_delivered"


def _upstream() -> list[dg.AssetKey]:
    from catalog_pipelines.model.freshness import FRESHNESS

    return [dg.AssetKey.from_user_string(name) for name in FRESHNESS]


@dg.asset(
    key=NOTIFICATIONS,
    deps=_upstream(),
    group_name="notifications",
    kinds={"python"},
    # After any insight changes, and every 30 minutes so that an asset going stale is noticed
    # even when nothing materialises.
    automation_condition=EAGER_DESPITE_MISSING_DEPS | every_cron_tick("*/30 * * * *", label="every 30 minutes"),
    check_specs=[dg.AssetCheckSpec(DELIVERED_CHECK, asset=NOTIFICATIONS,
                                   description="Every digest of this run reached its channel (failed ones are retried next run).")],
)
def notifications(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Scorecard regressions to the owning team, orphans to the group the orphan report names,
    approaching campaign deadlines, survey response-rate collapses to the survey owner (never a
    figure about fewer than k people), ingestion guard refusals, provider failures and stale assets
    to operators: one digest per team per run, de-duplicated against the sent-log, through apprise
    (config/notifications.yaml; docs/notifications.md)."""
    from catalog_pipelines.assets.dashboards import latest_materializations
    from catalog_pipelines.model.freshness import FRESHNESS
    from catalog_pipelines.services.notify_config import NotificationsConfigError
    from catalog_pipelines.services.notify import run_notifications

    materialized = latest_materializations(context.instance, list(FRESHNESS))
    try:
        result = run_notifications(catalog.get_engine(), materialized=materialized)
    except NotificationsConfigError as err:
        raise dg.Failure(description=f"Invalid notifications configuration:\n{err}") from err
    for warning in result["warnings"]:
        context.log.warning(warning)
    digests = result["digests"]
    failed = [d for d in digests if d["outcome"] == "failed"]
    return dg.MaterializeResult(
        metadata={
            "digests": len(digests),
            "sent": sum(d["outcome"] == "sent" for d in digests),
            "failed": len(failed),
            "items": result["items"],
            "already_sent": result["already_sent"],
            "recipients": dg.MetadataValue.md("\n".join(f"- {d['recipient']} via `{d['channel']}`: {len(d['items'])} item(s), {d['outcome']}" for d in digests) or "_none_"),
            "warnings": dg.MetadataValue.json(result["warnings"]),
        },
        check_results=[dg.AssetCheckResult(
            check_name=DELIVERED_CHECK, passed=not failed, severity=dg.AssetCheckSeverity.WARN,
            metadata={"failed": dg.MetadataValue.json([{k: d[k] for k in ("recipient", "channel", "attempts", "error")} for d in failed])},
        )],
    )


notification_assets = [notifications]
