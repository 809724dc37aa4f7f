"""`catalog-pipelines ingest` and `catalog-pipelines demo`."""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from pathlib import Path

import click

from catalog_pipelines.cli.output import emit_json, table


def _configs(path: str | None, name: str, providers: tuple[str, ...], guards: dict | None = None):
    from catalog_pipelines.ingestion.config import ConfigError, IngestionOptions, ProviderConfig, configured_providers, missing_roots
    from catalog_pipelines.settings import Settings

    guards = guards or {}
    if path:
        # An ad-hoc provider has the same safe sweep guards as a configured one.
        return [ProviderConfig(name=name, type="files", params={"roots": [str(Path(path).resolve())]},
                               options=dataclasses.replace(IngestionOptions(chunk_size=500), **guards))]
    configs = configured_providers()
    # A root that is not there would be walked as an empty source (retries, then a refused sweep):
    # say which line names it instead.
    problems = missing_roots(Settings.from_env().providers_config)
    if problems:
        raise ConfigError("\n".join(problems))
    if providers:
        unknown = set(providers) - {c.name for c in configs}
        if unknown:
            raise click.UsageError(f"unknown provider(s) {sorted(unknown)}; configured: {[c.name for c in configs]}")
        configs = [c for c in configs if c.name in providers]
    if not configs:
        raise click.UsageError(f"no providers configured in {Settings.from_env().providers_config} "
                               "(CATALOG_PIPELINES_PROVIDERS) and no PATH given")
    if guards:
        configs = [dataclasses.replace(c, options=dataclasses.replace(c.options, **guards)) for c in configs]
    return configs


# `ingest` exits with this when a cycle ran but its sweep was refused or skipped: nothing was
# removed, and an operator has to look (1 is a failed run, 2 a usage error).
EXIT_SWEEP_REFUSED = 3
UNSWEPT = ("rejected-threshold", "rejected-empty", "skipped-incomplete")


def unswept_lines(reports: list[dict]) -> list[str]:
    """One line per provider whose sweep removed nothing because a guard refused it or the walk
    could not be verified complete."""
    return [f"{r['provider']}: sweep {r['sweep'].get('outcome')}: {r['sweep'].get('message')}"
            for r in reports if r["sweep"].get("outcome") in UNSWEPT]


def run_cycles(configs, *, quiet: bool = False) -> list[dict]:
    """Run one full cycle per provider through Dagster in-process, with a progress bar each."""
    from tqdm import tqdm

    from catalog_pipelines.runs import CycleFailed, cycle_definitions, instance_from_env, materialize_snapshot, run_cycle

    defs = cycle_definitions(configs)
    instance = instance_from_env()
    reports = []
    for config in configs:
        # Only on a terminal: in CI logs and pipes a redrawn bar is hundreds of lines of noise.
        bar = tqdm(desc=f"{config.name}", unit="chunk", disable=quiet or not sys.stderr.isatty(), file=sys.stderr, leave=True)

        def on_chunk(meta: dict, bar=bar, size=config.options.chunk_size) -> None:
            total = meta.get("source_total")
            if total and bar.total is None:
                bar.total = math.ceil(int(total) / size)
            bar.set_postfix(added=meta.get("added"), changed=meta.get("changed"), rejected=meta.get("rejected"))
            bar.update(1)

        try:
            reports.append(run_cycle(defs, config, instance, on_chunk=on_chunk).as_dict())
        except CycleFailed as failed:
            # Recorded in the ledger by run_cycle; the other providers still run.
            reports.append(failure_report(failed))
        finally:
            bar.close()
    materialize_snapshot(defs, instance)
    return reports


def failure_report(failed) -> dict:
    """The cycle report of a provider whose run failed: what it did, plus `error` (the root cause),
    `attempts` and `next_retry_at` as the ledger recorded them."""
    report = failed.report.as_dict() if failed.report is not None else {"provider": failed.provider, "sweep": {}}
    at = failed.next_retry_at
    return {**report, "error": failed.cause, "attempts": failed.attempts,
            "next_retry_at": at.isoformat(timespec="seconds") if at is not None else None}


def failure_line(r: dict) -> str:
    """One line per failed provider: its name and the root cause (no Dagster wrapper, no traceback)."""
    cause = " ".join(str(r["error"]).split())
    retry = f"; attempt {r['attempts']}, next retry after {r['next_retry_at']}" if r.get("next_retry_at") else ""
    return f"ingest: {r['provider']} failed: {cause}{retry}"


def _print_failures(reports: list[dict]) -> None:
    for r in reports:
        if r.get("error"):
            click.echo(failure_line(r), err=True)


def _print_reports(reports: list[dict]) -> None:
    _print_failures(reports)
    reports = [r for r in reports if not r.get("error")]
    if not reports:
        return
    rows = [
        (r["provider"], r["cycle"], r["chunks"], r["added"], r["changed"], r["unchanged"], r["rejected"],
         r["sweep"].get("outcome"), r["sweep"].get("removed"), f"{r['seconds']:.1f}s")
        for r in reports
    ]
    click.echo(table(rows, ["provider", "cycle", "chunks", "added", "changed", "unchanged", "rejected", "sweep", "removed", "time"]))


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=True, file_okay=True))
@click.option("--name", default="adhoc", show_default=True, help="Provider name for an ad-hoc PATH.")
@click.option("--provider", "providers", multiple=True, help="Only these configured providers (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the cycle reports as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--max-removal-percentage", type=click.FloatRange(0, 100), default=None,
              help="Refuse a sweep removing more than this share of a provider's entities (default: the "
                   "provider's reject_removals_above_percentage, 10 unless configured).")
@click.option("--allow-empty-source", is_flag=True,
              help="Let a walk that found nothing remove everything the provider owned (off by default).")
def ingest(path: str | None, name: str, providers: tuple[str, ...], as_json: bool, quiet: bool,
           max_removal_percentage: float | None, allow_empty_source: bool) -> None:
    """Run a full ingestion cycle through Dagster (in-process, persistent instance).

    Without PATH: every configured provider (config/providers.yaml or CATALOG_PIPELINES_PROVIDERS).
    With PATH: an ad-hoc descriptor-file provider for that directory or root Location file.
    Each chunk is a Dagster run of the provider's chunk partition; the sweep closes the cycle.
    Exits 3 when a sweep was refused by a guard or skipped (nothing removed; the reason is printed).
    """
    if path and not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
        raise click.BadParameter("provider names are lower-case letters, digits and _", param_hint="--name")
    guards: dict = {}
    if max_removal_percentage is not None:
        guards["reject_removals_above_percentage"] = max_removal_percentage
    if allow_empty_source:
        guards["reject_empty_source_collections"] = False
    reports = run_cycles(_configs(path, name, providers, guards), quiet=quiet or as_json)
    if as_json:
        _print_failures(reports)
        emit_json(reports)
    else:
        _print_reports(reports)
    refused = unswept_lines(reports)
    for line in refused:
        click.echo(line, err=True)
    if any(r.get("error") for r in reports):
        sys.exit(1)  # a failed run weighs more than a refused sweep
    if refused:
        sys.exit(EXIT_SWEEP_REFUSED)


DEMO_EVENTS_PER_USER_DAY = 10


@click.command()
@click.option("--size", type=int, default=None, help="Synthetic org size (default: the config's, 5,000).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(size: int | None, quiet: bool) -> None:
    """Build the demo: ingest the synthetic org and the Backstage example catalog through Dagster
    on SQLite, materialise the insights, and print what happened and how to open the UI."""
    from catalog_pipelines.settings import Settings

    settings = Settings.from_env()
    configs = _configs(None, "", ())
    if size is not None:
        configs = [dataclasses.replace(c, params={**c.params, "size": size}) if c.type == "synthetic" else c for c in configs]
    click.echo(f"catalog database: {settings.catalog_database_url}")
    click.echo(f"DAGSTER_HOME:     {settings.dagster_home}\n")
    reports = run_cycles(configs, quiet=quiet)
    _print_reports(reports)
    for line in unswept_lines(reports):
        click.echo(line)
    from catalog_pipelines.cli.catalog import print_stats  # noqa: E402

    click.echo("")
    print_stats()
    ctx = click.get_current_context()
    from catalog_pipelines.cli.surveys import generate_cmd, load_cmd

    click.echo("\nsurveys: synthetic R&D pulse exports for the catalog's teams (8 quarterly waves)")
    ctx.invoke(generate_cmd, seed=7, email_domain="acme.example", survey_id=None, as_json=False)
    ctx.invoke(load_cmd, waves=(), as_json=False)

    from catalog_pipelines.cli.usage import generate as usage_generate, refresh as usage_refresh
    from catalog_pipelines.services.catalog import engine_from_env, org_graph

    # About ten portal events per user per working day, so a small demo org gets a small event log
    # (the default 5,000-entity org: ~300,000 events).
    days = 60
    events = DEMO_EVENTS_PER_USER_DAY * days * len(org_graph(engine_from_env()).users)
    click.echo(f"\nportal usage: {days} days of synthetic Backstage analytics events for the catalog's users")
    ctx.invoke(usage_generate, days=days, events=events, seed=0, jsonl=None, as_json=False)
    ctx.invoke(usage_refresh, as_json=False)

    from catalog_pipelines.runs import failed_checks, materialize_insights

    insights = materialize_insights(quiet=quiet, demo=True)
    if insights:
        click.echo("\ninsight assets materialised: " + ", ".join(insights))
    click.echo(
        "\nOpen the Dagster UI on this data with:\n"
        "  make ui            # then browse http://127.0.0.1:3000 (assets, partitions, runs)\n"
        "Try the CLI:\n"
        "  .venv/bin/catalog-pipelines catalog describe component:default/artist-lookup\n"
        "  .venv/bin/catalog-pipelines catalog search playback\n"
        "  .venv/bin/catalog-pipelines catalog rejected"
    )
    for line in demo_summary(failed_checks()):
        click.echo(line)


UI = "http://127.0.0.1:3000"


def demo_summary(failed: list[dict]) -> list[str]:
    """The demo's last lines: where the dashboards are, which checks failed and how to look at them."""
    from catalog_pipelines.services.site import site_dir

    index = site_dir() / "index.html"
    lines = ["", f"dashboards: {index}" + ("" if index.exists() else "  (not built: see the errors above)"),
             f"  open it in a browser: {index.resolve().as_uri()}"]
    if not failed:
        return [*lines, "checks: every asset check passed"]
    by_severity = {}
    for check in failed:
        by_severity[check["severity"].lower()] = by_severity.get(check["severity"].lower(), 0) + 1
    counts = ", ".join(f"{n} {severity}-level" for severity, n in sorted(by_severity.items()))
    lines.append(f"checks: {len(failed)} failed ({counts}):")
    for check in failed:
        about = " ".join(check["description"].split())
        lines.append(f"  {check['asset']}:{check['check']} [{check['severity']}]" + (f" {about[:120]}" if about else ""))
        lines.append(f"    look: make ui, then {UI}/assets/{check['asset']}?view=checks")
    lines.append("  (a warn-level failure is a finding in the demo's data, not a broken pipeline)")
    return lines
