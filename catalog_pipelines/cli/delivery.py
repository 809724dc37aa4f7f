"""`catalog-pipelines delivery …`: DORA's four keys and PR flow, read from the published tables.

`show` reads only the insight tables `delivery_metrics` wrote (services.delivery); `compute`
recomputes and publishes them from the stored events (the asset's service call, for operators).
"""

from __future__ import annotations

import math
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table

UNIT_FORMAT = {"per week": "{:.2f}/week", "hours": "{:.1f} h", "share": "{:.1%}"}


def _value(value: Any, unit: str, reason: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return str(reason) if isinstance(reason, str) and reason else "n/a"
    return UNIT_FORMAT.get(unit, "{:.2f}").format(float(value))


def _engine():
    from catalog_pipelines.services.catalog import engine_from_env

    return engine_from_env()


@click.group("delivery")
def delivery() -> None:
    """Delivery insights: DORA's four keys, PR flow and review load per team."""


@delivery.command("show")
@click.option("--team", "team", default=None, help="A group ref or name (default: the organisation).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(team: str | None, as_json: bool) -> None:
    """The four keys with band and trend, PR cycle time and its parts, the stalest PRs."""
    from catalog_pipelines.services.delivery import delivery_report

    try:
        report = delivery_report(_engine(), team)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None
    if report is None:
        raise click.ClickException("no delivery metrics yet: materialise delivery_metrics (or run `catalog-pipelines delivery compute`)")
    if as_json:
        emit_json(report)
        return
    click.echo(f"Delivery of {report['scope_ref']} ({report['scope_type']}), {report['window_start']} .. {report['window_end']}")
    rows = [(k["metric"], _value(k["value"], k["unit"], k["reason"]), k["band"] or "-",
             _value(k["previous_value"], k["unit"], None), k["trend"] or "-", k["events"]) for k in report["four_keys"]]
    click.echo(table(rows, ["metric", "value", "band", "previous", "trend", "events"]))
    if report["pr_flow"]:
        click.echo("\nPR flow (hours unless size)")
        click.echo(table([(p["metric"], _value(p["p50"], p["unit"], p["reason"]), _value(p["p75"], p["unit"], None),
                           _value(p["p90"], p["unit"], None), p["events"]) for p in report["pr_flow"]],
                         ["part", "median", "p75", "p90", "PRs"]))
    s = report.get("pr_summary")
    if s:
        share = s["share_merged_without_review"]
        click.echo(f"\nmerged {s['merged']}, without review {s['merged_without_review']}"
                   f" ({'n/a' if share is None else format(share, '.1%')}), open {s['open_prs']}, stale {s['stale_prs']}")
    if report["stale_prs"]:
        click.echo("\nStalest open PRs")
        click.echo(table([(p["rank"], f"{p['age_days']:.0f} d", p["url"]) for p in report["stale_prs"]], ["#", "age", "pull request"]))


@delivery.command("compute")
@click.option("--full", is_flag=True, help="From scratch, not from the kept day-grain facts (after a change to past events the run cannot see).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compute(full: bool, as_json: bool) -> None:
    """Recompute and publish the delivery tables from the stored events (what the asset does):
    incrementally from the kept facts when it can, from scratch with --full."""
    from catalog_pipelines.services.delivery import compute_delivery_metrics

    result = compute_delivery_metrics(_engine(), full=full)
    since = None if result["since"] is None else str(result["since"])
    if as_json:
        emit_json({"as_of": str(result["as_of"]), "mode": result["mode"], "since": since, "rows": result["rows"],
                   "timings": result["timings"]})
        return
    how = "from scratch" if result["mode"] == "full" else f"incrementally from {since}"
    click.echo(f"delivery metrics as of {result['as_of']} ({how}): " + ", ".join(f"{k} {v}" for k, v in result["rows"].items()))
