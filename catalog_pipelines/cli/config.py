"""`catalog-pipelines config …`: JSON Schemas of the YAML configuration and a check of every file."""

from __future__ import annotations

from pathlib import Path

import click

from catalog_pipelines.cli.output import emit_json


@click.group()
def config() -> None:
    """Configuration files: JSON Schemas for editors, and a check of every configured file."""


@config.command("schema")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write <kind>.schema.json into (default: config/schemas of the project).")
def schema(out_dir: Path | None) -> None:
    """Write one JSON Schema per configuration kind (providers, scorecards, surveys, rbac, skills, gigs, notifications).

    Point the YAML language server at them, e.g. `# yaml-language-server: $schema=schemas/providers.schema.json`.
    """
    from catalog_pipelines.config_schemas import write_schemas
    from catalog_pipelines.settings import CONFIG_DIR

    for path in write_schemas(out_dir or CONFIG_DIR / "schemas"):
        click.echo(str(path))


@config.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print {files, issues} as JSON.")
def validate(as_json: bool) -> None:
    """Check every configured file (paths from the environment, see docs/admin.md).

    Each problem is one line `file:line: path: message`; the exit status is 1 on any problem.
    """
    from catalog_pipelines.config_schemas import validate_all

    files, issues = validate_all(base=Path.cwd())
    if as_json:
        emit_json({
            "files": [str(f) for f in files],
            "issues": [{"file": i.file, "line": i.line, "path": i.path, "message": i.message} for i in issues],
        })
    else:
        for issue in issues:
            click.echo(str(issue))
        click.echo(f"{len(files)} file(s) checked, {len(issues)} problem(s)", err=True)
    if issues:
        raise SystemExit(1)
