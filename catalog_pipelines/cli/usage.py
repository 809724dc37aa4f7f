"""`catalog-pipelines usage …`: portal usage insights, and getting events in.

`summary` only reads the insight tables `usage_insights` wrote (any window up to the retention is
exact: sums of daily figures and of last-seen histograms). `import` appends JSON-lines files of
events to the raw store (validated, pseudonymised; malformed lines are reported and skipped),
`generate` writes synthetic events for the catalog's org, `refresh` materialises the pending days
and the insights through Dagster (real runs in the instance, as the sensor would), and `collector`
serves the HTTP collector on its own for demos.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table
from catalog_pipelines.model.vocabulary import SUPPRESSED

def summary_report(days: int = 28, top: int = 5, engine=None) -> dict[str, Any]:
    from catalog_pipelines.services.usage import UsageUnavailable, summary_report as report

    try:
        return report(days, top, engine)
    except UsageUnavailable as exc:
        raise click.ClickException(str(exc)) from exc


def _n(value: int | None) -> str:
    """A count of people, or "suppressed" when it is about fewer than k people."""
    return SUPPRESSED if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


@click.group("usage")
def usage() -> None:
    """Portal usage insights from Backstage analytics events."""


@usage.command("summary")
@click.option("--days", type=click.IntRange(1, 3660), default=28, show_default=True, help="Window ending on the latest day with data: one of the configured WAU, MAU and retention windows (7, 28, 90 by default), or more than the data holds for all of it.")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True, help="Rows per top list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def summary(days: int, top: int, as_json: bool) -> None:
    """Active users, adoption, top plugins / pages / entities, search, templates and funnels."""
    report = summary_report(days, top)
    if as_json:
        emit_json(report)
        return
    r = report
    click.echo(f"Portal usage, {r['days']} days to {r['as_of']} (data from {r['data_from']}, {r['days_with_events']} days with events in the window)")
    if r["requested_days"] > r["days"]:
        click.echo(f"note: only {r['days']} days of data are stored, not the {r['requested_days']} asked for")
    if r["days_not_summarised"]:
        click.echo(f"warning: {r['days_not_summarised']} days of the window were never summarised (missing usage_daily_activity partitions)")
    click.echo(
        f"Active users {_n(r['active_users'])} · new {_n(r['new_users'])} · events {r['events']:,} ({r['anonymous_events']:,} anonymous)\n"
        f"On {r['as_of']}: DAU {_n(r['dau'])} · WAU {_n(r['wau'])} · MAU {_n(r['mau'])} · stickiness {_pct(r['stickiness'])} · "
        f"average DAU over the window {SUPPRESSED if r['dau_average'] is None else format(r['dau_average'], '.1f')}"
    )
    adoption = r["adoption"]
    if adoption:
        hidden = adoption["teams_suppressed"]
        click.echo(f"\nAdoption: members active in the window ({hidden} group{'' if hidden == 1 else 's'} suppressed: fewer than k members, or fewer than k active or inactive)")
        rows = [(t["name"], t["members"], t["active_members"], _pct(t["share"])) for t in adoption["top_level"] + adoption["top_teams"]]
        seen, unique = set(), []
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                unique.append(row)
        click.echo(table(unique, ["group", "members", "active", "share"]))
        if adoption["bottom_teams"]:
            click.echo("lowest: " + ", ".join(f"{t['name']} {_pct(t['share'])}" for t in adoption["bottom_teams"]))
    for title, key, label in (("Top plugins", "top_plugins", "plugin"), ("Top pages", "top_pages", "page"), ("Top entities", "top_entities", "entity")):
        if r[key]:
            click.echo(f"\n{title}")
            click.echo(table([(row["key"], row["users"], row["events"]) for row in r[key]], [label, "users", "events"]))
    s = r["search"]
    click.echo(f"\nSearch: {s['searches']:,} searches · zero results {_pct(s['zero_result_rate'])} · click-through {_pct(s['click_through_rate'])}")
    if s["top_terms"]:
        click.echo(table([(t["term"], t["searches"], t["zero_results"], t["clicked"]) for t in s["top_terms"]], ["term", "searches", "zero results", "clicked"]))
    t = r["templates"]
    click.echo(f"\nTemplates: {t['creates']:,} created · {t['minutes_saved']:,.0f} minutes saved")
    if t["top"]:
        click.echo(table([(x["template"], x["creates"], f"{x['minutes_saved']:,.0f}") for x in t["top"]], ["template", "creates", "minutes saved"]))
    if r["funnels"]:
        click.echo("\nFunnels (sessions)")
        rows = []
        for name, steps in r["funnels"].items():
            for i, step in enumerate(steps):
                rows.append((name if i == 0 else "", step["step"], step["sessions"], _pct(step["conversion"]) if i else ""))
        click.echo(table(rows, ["funnel", "step", "sessions", "of first step"]))


@usage.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_(files: tuple[Path, ...], as_json: bool) -> None:
    """Append JSON-lines files of events to the raw store (one event per line).

    Each line is validated on its own; malformed lines are reported with their line number and
    reasons and skipped. The usage_arrivals_sensor (or `usage refresh`) then compacts the days.
    """
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.usage import import_events

    # A landing door like `ingest`: events may arrive before the first catalog cycle.
    results = import_events(engine_from_env(create=True), list(files))
    if as_json:
        emit_json(results)
        return
    for path, result in results.items():
        click.echo(f"{path}: {result['accepted']:,} accepted, {result['rejected']:,} rejected, days: {', '.join(result['by_day']) or 'none'}")
        for rejection in result["rejections"][:20]:
            click.echo(f"  line {rejection['index']}: {'; '.join(rejection['reasons'])}")
        if result["rejected"] > 20:
            click.echo(f"  … and {result['rejected'] - 20} more")


@usage.command("generate")
@click.option("--days", type=click.IntRange(1, 400), default=30, show_default=True, help="Days ending yesterday (UTC).")
@click.option("--events", type=click.IntRange(1), default=200_000, show_default=True, help="Events in total.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jsonl", type=click.Path(dir_okay=False, path_type=Path), help="Write Backstage-shaped JSON lines here instead of the raw store.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def generate(days: int, events: int, seed: int, jsonl: Path | None, as_json: bool) -> None:
    """Synthetic portal usage for the users and teams in the catalog (demo data).

    Power-law activity across teams, weekday seasonality, a plugin launch a third of the way in,
    searches with some zero-result terms, template runs with minutes saved.
    """
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.usage import generate_events

    result = generate_events(engine_from_env(), days=days, events=events, seed=seed, jsonl=jsonl)
    if result is None:
        raise click.ClickException("the catalog has no User entities: ingest a catalog first (`catalog-pipelines demo` or `ingest`)")
    written, target = result["events"], result["written_to"]
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{written:,} events for {result['users']:,} users, {result['from']} .. {result['to']} → {target}")


@usage.command("refresh")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def refresh(as_json: bool) -> None:
    """Compact and summarise every day with new events, then recompute the insights (Dagster runs)."""
    from catalog_pipelines.runs import instance_from_env, materialize_usage

    result = materialize_usage(instance_from_env())
    if as_json:
        emit_json(result)
        return
    click.echo(f"days processed: {len(result['days'])}" + (f" ({result['days'][0]} .. {result['days'][-1]})" if result["days"] else ""))
    if result["skipped"]:
        click.echo(f"skipped (today, or before the first partition): {', '.join(result['skipped'])}")
    click.echo("checks: " + ", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in result["checks"].items()))


@usage.command("collector")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=7008, show_default=True)
def collector(host: str, port: int) -> None:
    """Serve the HTTP event collector on its own (POST /events).

    Callers authenticate with service tokens (CATALOG_PIPELINES_USAGE_SERVICE_TOKENS=
    'token=backstage-analytics,…') and/or Backstage user tokens verified against the auth backend
    (CATALOG_PIPELINES_BACKSTAGE_AUTH_URL=https://backstage.example.com/api/auth); browsers only
    from CATALOG_PIPELINES_USAGE_CORS_ORIGINS. Refusals are audited in the catalog database, and
    the catalog's users are loaded so that their names are pseudonymised in free text too.
    """
    import uvicorn

    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.usage import catalog_people, retention_days, usage_root
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.web.usage_collector import CollectorSecurity, ConfigError, create_collector_app

    try:
        security = CollectorSecurity.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    engine = engine_from_env()
    people = catalog_people(engine)
    app = create_collector_app(
        usage_root() / "raw", Settings.from_env().pseudonym_key, security=security, audit_engine=engine, people=people, retention_days=retention_days()
    )
    click.echo(f"usage collector on http://{host}:{port}/events: {len(security.service_tokens)} service token(s), "
               f"Backstage user tokens {'from ' + security.verifier.jwks_url if security.verifier else 'not accepted'}, "
               f"{len(people)} catalog users known, CORS origins: {', '.join(security.cors_origins) or 'none'}")
    uvicorn.run(app, host=host, port=port, log_level="info")
