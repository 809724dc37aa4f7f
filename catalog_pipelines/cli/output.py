"""Output helpers shared by every command: JSON for machines, aligned tables for people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click
import orjson


def emit_json(value: Any) -> None:
    def default(obj: Any) -> Any:
        if isinstance(obj, (dt.datetime, dt.date)):
            return obj.isoformat()
        if hasattr(obj, "item"):  # numpy scalars
            return obj.item()
        return str(obj)

    click.echo(orjson.dumps(value, default=default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])
