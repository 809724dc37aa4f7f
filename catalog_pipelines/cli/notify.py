"""`catalog-pipelines notify [--dry-run] [--json]`: send what the insights found (one digest per team).

Calls `services.notify.run_notifications`, as the `notifications` asset does. The asset
materialisation times (for stale assets) come from the Dagster instance under DAGSTER_HOME, read
through runs.py; without an instance, stale assets are not checked (a note says so).

Exit codes: 0 every digest sent (or nothing to send, or --dry-run); 1 a digest could not be
delivered after its retries (recorded; the next run retries it); 2 an invalid notifications file.
"""

from __future__ import annotations

import sys

import click

from catalog_pipelines.cli.output import emit_json


@click.command("notify")
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def notify(dry_run: bool, as_json: bool) -> None:
    """Notify teams and operators: scorecard regressions, orphans, campaign deadlines, survey
    response-rate collapses, ingestion problems, stale assets (config/notifications.yaml)."""
    from catalog_pipelines.model.freshness import FRESHNESS
    from catalog_pipelines.services.notify_config import NotificationsConfigError
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.notify import run_notifications

    materialized = None
    try:
        # Reading the Dagster instance (not launching a run): the run helpers module owns it.
        from catalog_pipelines.runs import latest_materialization_times

        materialized = latest_materialization_times(list(FRESHNESS))
    except Exception as exc:  # noqa: BLE001 - a missing or locked instance only skips the stale-asset rule
        click.echo(f"note: asset materialisation times unavailable ({type(exc).__name__}: {exc})", err=True)
    try:
        result = run_notifications(engine_from_env(), dry_run=dry_run, materialized=materialized)
    except NotificationsConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        emit_json(result)
    else:
        for digest in result["digests"]:
            state = "would send" if dry_run else digest["outcome"]
            click.echo(f"== {digest['recipient']} via {digest['channel']} ({len(digest['items'])} item(s), {state})")
            click.echo(digest["title"])
            click.echo(digest["body"])
            if digest["error"]:
                click.echo(f"   error after {digest['attempts']} attempt(s): {digest['error']}")
        click.echo(f"{len(result['digests'])} digest(s), {result['items']} item(s) found, {result['already_sent']} already sent"
                   + (" (dry run: nothing sent)" if dry_run else ""))
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if any(d["outcome"] == "failed" for d in result["digests"]):
        sys.exit(1)
