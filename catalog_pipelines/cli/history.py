"""`catalog-pipelines catalog diff / history` and `catalog describe --as-of`: the catalog's history
(services/history.py). Attached to the `catalog` group by cli/catalog.py."""

from __future__ import annotations

from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table


def _engine():
    from catalog_pipelines.services.catalog import engine_from_env

    return engine_from_env()


def _answer(call, *args: Any, **kwargs: Any) -> Any:
    """Run a history service call; a question it cannot answer is one line and exit 1."""
    from catalog_pipelines.services.history import HistoryError

    try:
        return call(_engine(), *args, **kwargs)
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from None


def describe_as_of(ref: str, as_of: str, as_json: bool) -> None:
    """REF as the catalog held it at the end of cycle AS_OF, or at time AS_OF."""
    from catalog_pipelines.services.history import describe_as_of as describe

    info = _answer(describe, ref, as_of)
    if as_json:
        emit_json(info)
        return
    v = info["version"]
    click.echo(f"{info['ref']}  ({info['kind']})  as of {info['as_of']}")
    if info["description"]:
        click.echo(f"  {info['description']}")
    for label in ("owner", "lifecycle", "system"):
        if info[label]:
            click.echo(f"  {label:<10} {info[label]}")
    for rel in info["relations"]:
        click.echo(f"  {rel['type']:<10} {rel['target']}")
    fields = f" ({', '.join(v['fields'])})" if v["fields"] else ""
    click.echo(f"  {'version':<10} {v['change']}{fields} in {info['provider']} cycle {v['cycle']}, chunk {v['chunk']}, {v['at']}")


def _change_text(change: dict[str, Any]) -> str:
    parts = []
    for name, value in change["changes"].items():
        if name == "relations":
            parts += [f"+{r['type']} {r['target']}" for r in value["added"]] + [f"-{r['type']} {r['target']}" for r in value["removed"]]
        else:
            parts.append(f"{name}: {value['from'] or '-'} -> {value['to'] or '-'}")
    others = [f for f in change["fields"] if f.split(".")[-1] not in change["changes"]]
    if others:
        parts.append(", ".join(others))
    return "; ".join(parts)


@click.command()
@click.option("--from", "start", required=True, help="A cycle number or an ISO time.")
@click.option("--to", "end", required=True, help="A cycle number or an ISO time.")
@click.option("--kind", default=None, help="Only entities of this kind.")
@click.option("--provider", default=None, help="Only this provider's entities (and its cycle numbers).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff(start: str, end: str, kind: str | None, provider: str | None, as_json: bool) -> None:
    """What changed between two cycles (or times): entities added, removed and changed, with the
    changes of owner, lifecycle, system and relations."""
    from catalog_pipelines.services.history import diff as compute

    out = _answer(compute, start, end, kind=kind, provider=provider)
    if as_json:
        emit_json(out)
        return
    c = out["counts"]
    click.echo(f"{out['from']} -> {out['to']}: {c['added']} added, {c['removed']} removed, {c['changed']} changed")
    for label, key in (("+", "added"), ("-", "removed")):
        for e in out[key]:
            click.echo(f"{label} {e['ref']}  ({e['provider']}, cycle {e['cycle']})")
    for e in out["changed"]:
        click.echo(f"~ {e['ref']}  {_change_text(e)}")


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def history(ref: str, as_json: bool) -> None:
    """Every kept version of REF: what changed, in which provider, cycle and chunk, and when."""
    from catalog_pipelines.services.history import history_of

    versions = _answer(history_of, ref)
    if as_json:
        emit_json(versions)
        return
    rows = [(v["cycle"], v["chunk"], v["at"], v["change"], v["owner"],
             ", ".join(v["fields"]) if isinstance(v["fields"], list) else (v["fields"] or {}).get("message", "")) for v in versions]
    click.echo(f"{versions[0]['ref']}  ({versions[-1]['provider']})")
    click.echo(table(rows, ["cycle", "chunk", "at", "change", "owner", "fields"]))
