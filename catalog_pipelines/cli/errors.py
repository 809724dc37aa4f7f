"""One error handler for every command: one line naming the file (and line) and the fix, exit != 0.

`catalog-pipelines` runs every command through `report_error` (cli/__init__.py: `LazyGroup.invoke`),
so a command raises what it raises and never formats an error of its own:

- a configuration file problem (any `…ConfigError`, a YAML syntax error, a missing providers file):
  `error: <file>:<line>: <what>` and how to fix it, exit 2;
- no catalog at the configured path (`NoCatalog`): where it looked and what to do, exit 2;
- a file or directory the process cannot read or write (`OSError`, SQLite's "unable to open"):
  the path and the fix, exit 1;
- anything else: its type and message, exit 1, with a pointer to `--debug`.

With `--json` anywhere on the command line the error is JSON on stdout,
`{"error": {"message", "file", "line", "kind", "exit_code"}}`, so a script reading stdout gets JSON
either way. `--debug` anywhere on the command line prints the traceback first (stderr).
Usage errors (click's own) keep click's message and exit code 2; with `--json` they are JSON too.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import asdict, dataclass

import click

DEBUG = "catalog_pipelines.debug"
JSON = "catalog_pipelines.json"

EXIT_FAILED = 1
EXIT_CONFIG = 2

_FILE_LINE = re.compile(r"^(?P<file>[^\s:][^:\n]*?):(?P<line>\d+):")


@dataclass
class OperatorError:
    message: str
    kind: str
    exit_code: int
    file: str | None = None
    line: int | None = None


def _with_place(message: str, kind: str, exit_code: int) -> OperatorError:
    match = _FILE_LINE.match(message)
    if match:
        return OperatorError(message, kind, exit_code, match["file"], int(match["line"]))
    return OperatorError(message, kind, exit_code)


def describe(exc: BaseException) -> OperatorError:
    """What an operator needs to read about `exc`, in one line (several for several config problems)."""
    import yaml

    name = type(exc).__name__
    if isinstance(exc, click.ClickException):
        return OperatorError(exc.format_message(), "usage", exc.exit_code)
    if name == "NoCatalog":
        return OperatorError(str(exc), "no-catalog", EXIT_CONFIG)
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            where = f"{mark.name}:{mark.line + 1}" if mark.name and not mark.name.startswith("<") else f"line {mark.line + 1}"
            return _with_place(f"{where}: invalid YAML: {problem}; fix the syntax there", "config", EXIT_CONFIG)
        return OperatorError(f"invalid YAML: {problem}", "config", EXIT_CONFIG)
    if name.endswith("ConfigError") or name in ("PolicyError", "ValidationError", "SettingsError"):
        text = str(exc).strip()
        said = any(word in text for word in ("config validate", "fix ", "point ", "unset "))
        hint = "" if said else " (fix it there; `catalog-pipelines config validate` checks every file)"
        return _with_place(text + hint, "config", EXIT_CONFIG)
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        verb = "cannot write" if isinstance(exc, PermissionError) else "cannot use"
        return OperatorError(
            f"{exc.filename}: {verb} it ({exc.strerror or exc}): make it writable, or point "
            "CATALOG_PIPELINES_DATA_DIR at a directory you can write",
            "filesystem", EXIT_FAILED, str(exc.filename))
    if name == "OperationalError" and "unable to open database file" in str(exc):
        from catalog_pipelines.settings import Settings

        url = Settings.from_env().catalog_database_url
        return OperatorError(
            f"{url}: cannot open the catalog database (unable to open database file): make its directory "
            "writable, or point CATALOG_PIPELINES_DATA_DIR at a directory you can write",
            "filesystem", EXIT_FAILED)
    first = (str(exc).strip().splitlines() or [""])[0]
    return OperatorError(f"{name}: {first} (unexpected: run again with --debug for the traceback)", "unexpected", EXIT_FAILED)


def wants(flag: str, args: list[str]) -> bool:
    """True when `flag` is among the command line's options (before a `--`)."""
    return flag in (args[: args.index("--")] if "--" in args else args)


def report_error(exc: Exception, ctx: click.Context) -> None:
    """Print `exc` for an operator and exit; re-raise what click itself handles."""
    from catalog_pipelines.cli.output import emit_json

    if isinstance(exc, (click.exceptions.Exit, click.Abort)):
        raise exc
    as_json = bool(ctx.meta.get(JSON))
    if isinstance(exc, click.ClickException) and not as_json:
        raise exc  # click prints "Error: …" (and usage) with its exit code
    if ctx.meta.get(DEBUG):
        traceback.print_exception(exc, file=sys.stderr)
    error = describe(exc)
    if as_json:
        emit_json({"error": asdict(error)})
    else:
        for line in error.message.splitlines() or [error.message]:
            click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)
