"""`catalog-pipelines facts collect` and `facts show`: standalone click commands.

They belong to the `facts` group of cli/facts.py (with `facts parse`), which attaches them.
Both call `catalog_pipelines.services.facts`, as the Dagster assets do.
"""

from __future__ import annotations

import click

from catalog_pipelines.cli.output import emit_json, table


def _engine():
    from catalog_pipelines.services.catalog import engine_from_env

    return engine_from_env()


@click.command("collect")
@click.option("--collector", "names", multiple=True, help="Run only this collector (repeatable; default: every one in collectors.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print each run's figures and lists as JSON.")
def collect(names: tuple[str, ...], as_json: bool) -> None:
    """Run fact collectors: collect from each one's cursor, map records to entities by their
    annotations, store. Unmapped, ambiguous and rejected records are counted and listed; the exit
    status is 1 if any record was rejected or a collector failed (the rest still lands)."""
    from catalog_pipelines.services.facts import CollectorConfigError, collect_all, wanted_collectors

    try:
        wanted = wanted_collectors(names)  # exit 2 before the catalog is opened
    except CollectorConfigError as exc:
        for issue in exc.issues:
            click.echo(str(issue), err=True)
        raise SystemExit(2) from exc
    runs = collect_all(_engine(), wanted)
    failed = any("error" in r for r in runs)
    if as_json:
        emit_json(runs)
    else:
        keys = ["observations", "mapped", "shared", "unmapped", "ambiguous", "rejected", "stored", "unchanged"]
        headers = ["collector", "records", "mapped", "shared", "unmapped", "ambiguous", "rejected", "stored", "unchanged"]
        if any(r.get("events") for r in runs):  # delivery events (docs/facts.md, "Delivery events")
            keys += ["events", "events_unmapped", "events_stored"]
            headers += ["events", "events unmapped", "events stored"]
        rows = [[r["collector"], *(r.get(k, "") for k in keys)] for r in runs]
        click.echo(table(rows, headers))
        for r in runs:
            if "run_id" not in r:
                click.echo(f"{r['collector']}: failed: {r['error']}", err=True)
                continue
            for line in r["rejections"]:
                click.echo(f"{r['collector']}: rejected: {line}", err=True)
            for line in r["unmapped_records"][:20]:
                click.echo(f"{r['collector']}: unmapped: {line}", err=True)
            for item in r["ambiguous_records"][:20]:
                click.echo(f"{r['collector']}: ambiguous: {item['record']} -> {', '.join(item['entities'])}", err=True)
    if failed or any(r.get("rejected") for r in runs):
        raise SystemExit(1)


@click.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print {ref, sources: {source: {observed_at, collected_at, origin, facts}}}.")
def show(ref: str, as_json: bool) -> None:
    """An entity's latest facts, per source, with where and when each was observed."""
    from catalog_pipelines.model.refs import EntityRefError
    from catalog_pipelines.services.facts import entity_facts

    try:
        found = entity_facts(_engine(), ref)
    except EntityRefError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from exc
    if as_json:
        emit_json(found)
        return
    if not found["sources"]:
        click.echo(f"{found['ref']}: no facts", err=True)
        raise SystemExit(1)
    rows = [[source, name, value, data["observed_at"], data["origin"]] for source, data in sorted(found["sources"].items()) for name, value in sorted(data["facts"].items())]
    click.echo(f"{found['ref']}")
    click.echo(table(rows, ["source", "fact", "value", "observed", "origin"]))
