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
    "serve": "catalog_pipelines.cli.serve:serve",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            module, attr = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="catalog-pipelines")
def main() -> None:
    """Catalog ingestion and insights, orchestrated by Dagster.

    Data lives under CATALOG_PIPELINES_DATA_DIR (default ./.data); see README for configuration.
    """
