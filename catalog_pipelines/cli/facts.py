"""`catalog-pipelines facts …`: facts from the tools organisations run.

`facts parse FORMAT FILE` prints the facts one report file yields, without a catalog (for people
checking a CI artefact, and for CI itself). `collect` and `show` (collectors against the catalog)
are attached to this group as well.
"""

from __future__ import annotations

from pathlib import Path

import click

from catalog_pipelines.cli.output import emit_json, table

_FORMATS = ("sarif", "trivy", "grype", "osv", "cobertura", "lcov", "jacoco", "junit", "scorecard")


@click.group()
def facts() -> None:
    """Facts about entities from report files and vendor APIs (docs/facts.md)."""


def _attach() -> None:
    from catalog_pipelines.cli.facts_collect import collect, show

    facts.add_command(collect)
    facts.add_command(show)


_attach()


@facts.command("parse")
@click.argument("fmt", metavar="FORMAT", type=click.Choice((*_FORMATS, "auto"), case_sensitive=False))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the facts (or the error) as JSON.")
@click.option("--max-file-bytes", type=click.IntRange(min=1), default=None, help="Refuse larger files (default 100 MiB).")
def parse(fmt: str, file: Path, as_json: bool, max_file_bytes: int | None) -> None:
    """Print the facts a report FILE yields; FORMAT is one of sarif, trivy, grype, osv, cobertura,
    lcov, jacoco, junit, scorecard (or auto: recognise it).

    A file that cannot be read is one line `file: place: reason` on stderr (with --json, an
    {"error": {file, place, reason}} object on stdout) and exit status 1.
    """
    from catalog_pipelines.collectors.reports import DEFAULT_MAX_FILE_BYTES, ReportError, parse_report

    try:
        detected, found = parse_report(None if fmt.lower() == "auto" else fmt.lower(), file, max_file_bytes=max_file_bytes or DEFAULT_MAX_FILE_BYTES)
    except ReportError as exc:
        if as_json:
            emit_json({"error": exc.to_dict()})
        else:
            click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    if as_json:
        emit_json(found if fmt.lower() != "auto" else {"format": detected, "facts": found})
        return
    click.echo(f"{file}: {detected}")
    rows = []
    for name, value in found.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        rows.append((name, value))
    click.echo(table(rows, ["fact", "value"]))
