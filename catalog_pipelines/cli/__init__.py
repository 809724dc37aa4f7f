"""The `catalog-pipelines` command line.

Subcommand modules are imported only when their command runs, so `--help` and simple reads stay
fast (Dagster and pandas cost seconds to import).
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command or group, loaded on first use.
SUBCOMMANDS: dict[str, str] = {
    "ingest": "catalog_pipelines.cli.ingest:ingest",
    "demo": "catalog_pipelines.cli.ingest:demo",
    "catalog": "catalog_pipelines.cli.catalog:catalog",
    "admin": "catalog_pipelines.cli.admin:admin",
    "surveys": "catalog_pipelines.cli.surveys:surveys",
    "scorecard": "catalog_pipelines.cli.scorecards:scorecard",
    "usage": "catalog_pipelines.cli.usage:usage",
    "skills": "catalog_pipelines.cli.catalog_health:skills",
    "dashboards": "catalog_pipelines.cli.dashboards:dashboards",
    "rbac": "catalog_pipelines.cli.dashboards:rbac",
    "config": "catalog_pipelines.cli.config:config",
    "notify": "catalog_pipelines.cli.notify:notify",
    "facts": "catalog_pipelines.cli.facts:facts",
    "serve": "catalog_pipelines.cli.serve:serve",
    "delivery": "catalog_pipelines.cli.delivery:delivery",
}


class LazyGroup(click.Group):
    """Subcommands imported on first use; every error of every command reported by cli/errors.py."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from catalog_pipelines.cli.errors import DEBUG, JSON, wants

        # `--debug` is accepted anywhere on the command line (and taken out before the subcommand
        # parses its own options); `--json` stays for the subcommand and makes errors JSON too.
        ctx.meta[DEBUG] = wants("--debug", args)
        ctx.meta[JSON] = wants("--json", args)
        if ctx.meta[DEBUG]:
            cut = args.index("--") if "--" in args else len(args)
            args = [a for a in args[:cut] if a != "--debug"] + args[cut:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - the one place errors become operator messages
            from catalog_pipelines.cli.errors import report_error

            report_error(exc, ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            module, attr = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="catalog-pipelines")
@click.option("--debug", is_flag=True, help="On an error, print the traceback too (accepted anywhere on the command line).")
def main(debug: bool = False) -> None:
    """Catalog ingestion and insights, orchestrated by Dagster.

    Data lives under CATALOG_PIPELINES_DATA_DIR (default ./.data); see README for configuration.
    Errors are one line naming the file (and line) and the fix, exit status != 0; JSON with --json.
    """
