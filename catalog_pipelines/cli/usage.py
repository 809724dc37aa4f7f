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
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table

AREA = "usage"
TABLES = ("meta", "daily", "reach", "top_daily", "search_terms_daily", "templates_daily", "funnels_daily", "adoption")


def _engine():
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import get_engine

    return get_engine(Settings.from_env().catalog_database_url)


def read_tables(engine=None) -> dict[str, Any]:
    from catalog_pipelines.storage.insights import read_frame

    engine = engine or _engine()
    return {name: read_frame(engine, AREA, name) for name in TABLES}


def summary_report(days: int = 28, top: int = 5, engine=None) -> dict[str, Any]:
    """What `usage summary` prints, as data (the JSON output and the tests use this)."""
    from analytics.usage import window_summary

    tables = read_tables(engine)
    meta = tables["meta"]
    if meta is None or meta.empty:
        raise click.ClickException("no usage insights yet: materialise `usage_insights` (Dagster UI, or `catalog-pipelines usage refresh`)")
    covered = int(meta.iloc[0]["days"])
    # A window longer than the data is all the data: say so rather than pretend to more.
    report = window_summary(tables, days=min(days, covered), top=top)
    report["requested_days"] = days
    return report


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


@click.group("usage")
def usage() -> None:
    """Portal usage insights from Backstage analytics events."""


@usage.command("summary")
@click.option("--days", type=click.IntRange(1, 3660), default=28, show_default=True, help="Window ending on the latest day with data.")
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
        f"Active users {r['active_users']:,} · new {r['new_users']:,} · events {r['events']:,} ({r['anonymous_events']:,} anonymous)\n"
        f"On {r['as_of']}: DAU {r['dau']:,} · WAU {r['wau']:,} · MAU {r['mau']:,} · stickiness {_pct(r['stickiness'])} · average DAU over the window {r['dau_average']:.1f}"
    )
    adoption = r["adoption"]
    if adoption:
        hidden = adoption["teams_suppressed"]
        click.echo(f"\nAdoption: members active in the window ({hidden} group{'' if hidden == 1 else 's'} below the minimum size not shown)")
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
    from analytics.usage_privacy import People
    from analytics.usage_store import RawEventStore
    from catalog_pipelines.assets.usage import retention_days, usage_root
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.catalog import CatalogStore

    store = RawEventStore(usage_root() / "raw")
    key = Settings.from_env().pseudonym_key
    # The catalog's users, so that their names in paths and search terms are pseudonymised too.
    people = People.from_entities(CatalogStore(_engine()).iter_entities(kinds=["User"]))
    results = {}
    for path in files:
        results[str(path)] = store.import_jsonl(path, key, retention_days=retention_days(), people=people).as_dict()
    if as_json:
        emit_json(results)
        return
    for path, result in results.items():
        click.echo(f"{path}: {result['accepted']:,} accepted, {result['rejected']:,} rejected, days: {', '.join(result['by_day']) or 'none'}")
        for rejection in result["rejections"][:20]:
            click.echo(f"  line {rejection['index']}: {'; '.join(rejection['reasons'])}")
        if result["rejected"] > 20:
            click.echo(f"  … and {result['rejected'] - 20} more")


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def _minutes(duration: Any) -> float | None:
    """Backstage's `backstage.io/time-saved` annotation (ISO 8601, e.g. PT2H30M) in minutes."""
    match = _DURATION.match(str(duration or "").strip().upper())
    if not match or not any(match.groups()):
        return None
    d, h, m = (int(x) if x else 0 for x in match.groups())
    return float(d * 1440 + h * 60 + m)


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
    import orjson

    from analytics.synthetic_usage import DEFAULT_TEMPLATES, SyntheticUsage
    from analytics.usage_store import RawEventStore
    from catalog_pipelines.assets.usage import usage_root
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.settings import Settings

    catalog = CatalogDatabase()
    org = catalog.org_graph()
    if not org.users:
        raise click.ClickException("the catalog has no User entities: ingest a catalog first (`catalog-pipelines demo` or `ingest`)")
    entities = catalog.entities_frame(["Component", "API", "System", "Resource"])
    refs = list(entities["ref"]) if len(entities) else None
    templates_frame = catalog.entities_frame(["Template"])
    templates = []
    for ref, entity in zip(templates_frame.get("ref", []), templates_frame.get("entity", [])):
        annotations = ((entity or {}).get("metadata") or {}).get("annotations") or {}
        templates.append((ref, _minutes(annotations.get("backstage.io/time-saved")) or 60.0))
    start = datetime.now(UTC).date() - timedelta(days=days)
    gen = SyntheticUsage(org, seed=seed, start=start, days=days, events=events, entity_refs=refs, templates=templates or DEFAULT_TEMPLATES)
    written = 0
    if jsonl:
        with jsonl.open("wb") as handle:
            for index in range(days):
                for event in gen.backstage_events(index):
                    handle.write(orjson.dumps(event) + b"\n")
                    written += 1
        target = str(jsonl)
    else:
        store = RawEventStore(usage_root() / "raw")
        key = Settings.from_env().pseudonym_key
        for index in range(days):
            table_ = gen.day_table(index, key=key)
            store.append(table_)
            written += table_.num_rows
        target = str(store.root)
    result = {"events": written, "days": days, "from": start.isoformat(), "to": (start + timedelta(days=days - 1)).isoformat(), "users": len(org.users), "written_to": target}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{written:,} events for {len(org.users):,} users, {result['from']} .. {result['to']} → {target}")


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

    from analytics.usage_privacy import People
    from catalog_pipelines.assets.usage import retention_days, usage_root
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.usage_collector import CollectorSecurity, ConfigError, create_collector_app

    try:
        security = CollectorSecurity.from_env()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    engine = _engine()
    people = People.from_entities(CatalogStore(engine).iter_entities(kinds=["User"]))
    app = create_collector_app(
        usage_root() / "raw", Settings.from_env().pseudonym_key, security=security, audit_engine=engine, people=people, retention_days=retention_days()
    )
    click.echo(f"usage collector on http://{host}:{port}/events: {len(security.service_tokens)} service token(s), "
               f"Backstage user tokens {'from ' + security.verifier.jwks_url if security.verifier else 'not accepted'}, "
               f"{len(people)} catalog users known, CORS origins: {', '.join(security.cors_origins) or 'none'}")
    uvicorn.run(app, host=host, port=port, log_level="info")
