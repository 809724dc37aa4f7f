"""`catalog-pipelines catalog …`: what engineers ask of the catalog (owner, purpose, code, deps)."""

from __future__ import annotations

from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table

CODE_ANNOTATIONS = ("backstage.io/source-location", "github.com/project-slug", "gitlab.com/project-slug", "backstage.io/view-url")
DOCS_ANNOTATIONS = ("backstage.io/techdocs-ref", "backstage.io/techdocs-entity")
DEPLOY_ANNOTATIONS = ("backstage.io/kubernetes-id", "backstage.io/kubernetes-label-selector", "argocd/app-name", "pagerduty.com/service-id")


def _store():
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.storage.catalog import CatalogStore

    return CatalogStore(engine_from_env())


def _resolve(ref: str) -> str:
    from catalog_pipelines.services.catalog import MalformedRef, parse_ref

    try:
        return parse_ref(ref)
    except MalformedRef as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from None


def describe_entity(store, ref: str) -> dict[str, Any] | None:
    """Everything `describe` shows, as data (the JSON output and the tests use this)."""
    row = store.get_entity(ref)
    if row is None:
        return None
    body = row["body"]
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    annotations = meta.get("annotations") or {}
    relations = store.relations_of(ref)
    by_type: dict[str, list[str]] = {}
    for rtype, target in relations:
        by_type.setdefault(rtype, []).append(target)
    links = meta.get("links") or []

    def pick_links(words: tuple[str, ...]) -> list[dict[str, Any]]:
        return [l for l in links if any(w in f"{l.get('title', '')} {l.get('type', '')} {l.get('url', '')}".lower() for w in words)]

    def first(refs: list[str], kind: str) -> str | None:
        return next((r for r in sorted(refs) if r.startswith(kind + ":")), None)

    system = first(by_type.get("partOf", []), "system")
    if row["kind"] == "system":
        domain = first(by_type.get("partOf", []), "domain")
    elif system:
        domain = first([t for ty, t in store.relations_of(system) if ty == "partOf"], "domain")
    else:
        domain = None
    return {
        "ref": row["ref"],
        "kind": body.get("kind"),
        "title": meta.get("title"),
        "description": meta.get("description"),
        "type": spec.get("type"),
        "lifecycle": spec.get("lifecycle"),
        "owner": (by_type.get("ownedBy") or [None])[0],
        "system": system,
        "domain": domain,
        "tags": meta.get("tags") or [],
        "code": {k: annotations[k] for k in CODE_ANNOTATIONS if k in annotations},
        "docs": {k: annotations[k] for k in DOCS_ANNOTATIONS if k in annotations},
        "deployment": {k: annotations[k] for k in DEPLOY_ANNOTATIONS if k in annotations},
        "links": links,
        "docs_links": pick_links(("doc", "wiki", "runbook")),
        "deployment_links": pick_links(("deploy", "dashboard", "grafana", "argo", "kubernetes", "k8s", "console")),
        "depends_on": sorted(by_type.get("dependsOn", [])),
        "dependents": sorted(by_type.get("dependencyOf", [])),
        "provides_apis": sorted(by_type.get("providesApi", [])),
        "consumes_apis": sorted(by_type.get("consumesApi", [])),
        "relations": [{"type": t, "target": x} for t, x in relations],
        "provider": row["provider"],
        "location": row["location"],
        "first_seen": row["first_seen"],
        "last_changed": row["last_changed"],
    }


@click.group()
def catalog() -> None:
    """Read the catalog: describe, search, stats, rejected, deps, orphans, diff, history."""


def _attach_health_commands() -> None:
    from catalog_pipelines.cli.catalog_health import deps, orphans

    catalog.add_command(deps)
    catalog.add_command(orphans)


def _attach_history_commands() -> None:
    from catalog_pipelines.cli.history import diff, history

    catalog.add_command(diff)
    catalog.add_command(history)


@catalog.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--as-of", "as_of", default=None, metavar="CYCLE|TIME", help="As the catalog held it at the end of this cycle, or at this ISO time (catalog history).")
def describe(ref: str, as_json: bool, as_of: str | None) -> None:
    """Who owns REF, what it does, where its code, docs and deployment are, what it depends on.

    REF is `kind:namespace/name`; kind defaults to component and namespace to default.
    """
    if as_of is not None:
        from catalog_pipelines.cli.history import describe_as_of

        describe_as_of(ref, as_of, as_json)
        return
    store = _store()
    info = describe_entity(store, _resolve(ref))
    if info is None:
        from catalog_pipelines.services.catalog import unknown_ref

        raise click.ClickException(str(unknown_ref(_resolve(ref), store.refs())))
    if as_json:
        emit_json(info)
        return
    click.echo(f"{info['ref']}  ({info['kind']}{', ' + info['type'] if info['type'] else ''})")
    if info["description"]:
        click.echo(f"  {info['description']}")
    for label, key in (("owner", "owner"), ("lifecycle", "lifecycle"), ("system", "system"), ("domain", "domain")):
        if info[key]:
            click.echo(f"  {label:<10} {info[key]}")
    if info["tags"]:
        click.echo(f"  {'tags':<10} {', '.join(info['tags'])}")
    for label in ("code", "docs", "deployment"):
        for k, v in info[label].items():
            click.echo(f"  {label:<10} {v}  ({k})")
    for link in info["links"]:
        click.echo(f"  {'link':<10} {link.get('title') or link.get('type') or ''} {link.get('url')}")
    for label, key in (("provides", "provides_apis"), ("consumes", "consumes_apis"), ("depends on", "depends_on"), ("dependents", "dependents")):
        if info[key]:
            click.echo(f"  {label:<10} " + f"\n  {'':<10} ".join(info[key]))
    click.echo(f"  {'source':<10} {info['provider']}: {info['location']}")


@catalog.command()
@click.argument("text")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(text: str, limit: int, as_json: bool) -> None:
    """Entities whose ref, title, description or tags mention TEXT."""
    hits = _store().search(text, limit=limit)
    rows = [
        {"ref": h["ref"], "title": h["body"].get("metadata", {}).get("title"),
         "description": (h["body"].get("metadata", {}).get("description") or "")[:80],
         "owner": (h["body"].get("spec") or {}).get("owner")}
        for h in hits
    ]
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo(f"nothing matches {text!r}")
    else:
        click.echo(table([(r["ref"], r["owner"], r["description"]) for r in rows], ["ref", "owner", "description"]))


def print_stats(as_json: bool = False) -> None:
    stats = _store().stats()
    if as_json:
        emit_json(stats)
        return
    click.echo(f"entities: {stats['entities']}   relation pairs: {stats['relation_pairs']}   "
               f"rejected (latest cycles): {stats['rejected']}   removed (all time): {stats['removed_total']}")
    click.echo(table(sorted(stats["by_kind"].items()), ["kind", "count"]))
    click.echo(table(sorted(stats["by_provider"].items()), ["provider", "count"]))


@catalog.command()
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    """Counts by kind and provider, relations, rejections and removals."""
    print_stats(as_json)


@catalog.command("refresh-search")
@click.option("--json", "as_json", is_flag=True)
def refresh_search_command(as_json: bool) -> None:
    """Bring the read API's search rows up to date now (`serve` and the catalog_snapshot asset do it too)."""
    from catalog_pipelines.services.catalog_read import refresh_search

    figures = refresh_search(_store().engine)
    if as_json:
        emit_json(figures)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in figures.items()))


@catalog.command()
@click.option("--provider", default=None, help="Only this provider.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def rejected(provider: str | None, limit: int, as_json: bool) -> None:
    """Documents the latest cycles rejected, with the reason (file, document, field, rule, value)."""
    rows = _store().rejected(provider, limit)
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no rejected entities")
    else:
        for r in rows:
            where = r["location"] + (f" [document {r['doc_index']}]" if r["doc_index"] is not None else "")
            click.echo(f"{r['provider']}: {where}\n    {r['message']}")


_attach_health_commands()
_attach_history_commands()
