"""`catalog-pipelines dashboards …` (the static site) and `catalog-pipelines rbac …` (the policy).

    catalog-pipelines dashboards build [--audience REF] [--out DIR] [--json]
    catalog-pipelines dashboards pages [--out DIR] [--json]
    catalog-pipelines dashboards export --team T --format pdf|png OUT [--site DIR] [--json]
    catalog-pipelines rbac validate [FILE] [--json]
    catalog-pipelines rbac check ACTOR PERMISSION [--resource REF] [--json]

`dashboards build` reads the catalog database (the same tables the `dashboards_site` asset reads)
and writes the site; with `--audience`, only what that person may see under the RBAC policy
(`CATALOG_PIPELINES_PERMISSIONS`, default config/permissions.yaml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from catalog_pipelines.cli.output import emit_json, table


@click.group("dashboards")
def dashboards() -> None:
    """The static dashboards site for analysts (offline HTML, plotly.js included)."""


@dashboards.command("build")
@click.option("--audience", metavar="REF", help="Build only what this person may see (user:default/alice).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default <output_dir>/dashboards, or <output_dir>/dashboards-for/<name> with --audience).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def build(audience: str | None, out_dir: Path | None, as_json: bool) -> None:
    """Build the site from the catalog database (pages appear for the data that exists)."""
    from catalog_pipelines.permissions import PolicyError
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.site import audience_dir, build_for_audience, load_site_inputs, site_dir, source_names
    from dashboards import SiteLeakError, build_site

    engine = engine_from_env()
    materialized = {}
    try:
        # Reading the Dagster instance (not launching a run): the run helpers module owns it.
        from catalog_pipelines.runs import latest_materialization_times

        materialized = latest_materialization_times(source_names(engine))
    except Exception as exc:  # noqa: BLE001 - freshness is a nicety: a missing or locked instance must not stop the build
        click.echo(f"note: asset materialisation times unavailable ({type(exc).__name__}: {exc})", err=True)
    inputs = load_site_inputs(engine, materialized)
    try:
        if audience:
            report = build_for_audience(inputs, audience, out_dir or audience_dir(audience))
        else:
            report = build_site(inputs, out_dir or site_dir())
    except (PolicyError, SiteLeakError, FileExistsError, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(f"site: {report.out_dir / 'index.html'}" + (f"  (for {report.audience})" if report.audience else ""))
        click.echo(f"{len(report.written)} pages, {report.team_pages} team pages, {report.files} files, "
                   f"{report.bytes / 1024 / 1024:.1f} MB in {report.seconds:.1f} s")
        for page in report.unavailable:
            click.echo(f"  - {page['title']}: {page['reason']}")
    if report.errors:
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        sys.exit(1)


@dashboards.command("pages")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Site folder (default <output_dir>/dashboards).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pages(out_dir: Path | None, as_json: bool) -> None:
    """What the last build wrote: pages, their source assets and freshness (from its manifest)."""
    import orjson

    from catalog_pipelines.services.site import site_dir

    folder = out_dir or site_dir()
    manifest = folder / "manifest.json"
    if not manifest.exists():
        raise click.ClickException(f"no site in {folder}: run `catalog-pipelines dashboards build` (or materialise dashboards_site)")
    data = orjson.loads(manifest.read_bytes())
    if as_json:
        emit_json(data)
        return
    click.echo(f"built {data['generated_at']}" + (f" for {data['audience']}" if data.get("audience") else "") + f", {len(data['teams'])} team pages")
    click.echo(table([(p["title"], p["status"], p["path"] or p["reason"], ", ".join(p["sources"]), p["materialized"] or "")
                      for p in data["pages"]], ["page", "status", "file / reason", "source", "materialised"]))


@dashboards.command("export")
@click.option("--team", required=True, metavar="TEAM", help="The team: group ref, name or page title (group:default/payments, payments).")
@click.option("--format", "fmt", type=click.Choice(["pdf", "png"]), default="pdf", show_default=True,
              help="pdf: one A4 page (print stylesheet); png: the whole page as an image.")
@click.option("--site", "site", type=click.Path(file_okay=False, path_type=Path), help="Site folder (default <output_dir>/dashboards).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export(team: str, fmt: str, site: Path | None, as_json: bool, out: Path) -> None:
    """Export one team's page of the built site as a one-page PDF or a PNG (quarterly reviews)."""
    from catalog_pipelines.services.site import ExportError, export_team, site_dir

    try:
        written = export_team(site or site_dir(), team, fmt, out)
    except (ExportError, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json(written)
    else:
        extra = f", {written['pages']} page, scale {written['scale']}" if fmt == "pdf" else ""
        click.echo(f"{written['out']}: {written['bytes'] / 1024:.0f} KiB{extra} (from {written['team_page']})")


# --------------------------------------------------------------------------------------- rbac


@click.group("rbac")
def rbac() -> None:
    """The access policy (roles, members, permissions, conditions): validate it, explain a decision."""


@rbac.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def validate(file: Path | None, as_json: bool) -> None:
    """Check a policy file (default: the active one) and list every problem with its location."""
    from analytics.rbac import Policy, PolicyError
    from catalog_pipelines.permissions import policy_path

    path = file or policy_path()
    if not path.exists():
        raise click.ClickException(f"{path} does not exist (a missing policy denies everything)")
    try:
        policy = Policy.from_file(path)
    except PolicyError as exc:
        if as_json:
            emit_json({"valid": False, "file": str(path), "problems": exc.problems})
            sys.exit(1)
        raise click.ClickException(str(exc)) from None
    summary = [{"role": r.name, "members": sorted(r.members), "permissions": [
        {"permission": g.pattern, "decision": g.decision, "conditions": g.condition.describe() if g.condition else None}
        for g in r.grants]} for r in policy.roles]
    if as_json:
        emit_json({"valid": True, "file": str(path), "digest": policy.digest, "roles": summary})
        return
    click.echo(f"{path}: valid, {len(policy.roles)} roles (applied in this order; first match decides)")
    for role in summary:
        click.echo(f"  {role['role']}: {len(role['members'])} member(s), {len(role['permissions'])} permission decision(s)")


@rbac.command("check")
@click.argument("actor")
@click.argument("permission")
@click.option("--resource", metavar="REF", help="What it acts on: group:default/team-a, component:default/x, ingestion-provider:name.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(actor: str, permission: str, resource: str | None, as_json: bool) -> None:
    """May ACTOR use PERMISSION (on --resource)? Membership comes from the catalog database."""
    from analytics.rbac import PERMISSIONS, Resource
    from catalog_pipelines.permissions import PolicyAuthorizer, PolicyError

    authorizer = PolicyAuthorizer.from_env()
    try:
        subject = authorizer.subject(actor)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    decision = authorizer.policy.decide(subject, permission)
    allowed = authorizer.is_allowed(subject.ref, permission, resource)
    body = {
        "actor": subject.ref, "permission": permission, "resource": Resource.of(resource).ref if resource else None,
        "allowed": allowed, "decision": decision.result, "role": decision.role, "explanation": decision.explain(),
        "known_permission": permission in PERMISSIONS, "groups": sorted(subject.groups), "owns": sorted(subject.owned_groups),
        "policy": authorizer.source,
    }
    if as_json:
        emit_json(body)
    else:
        click.echo(("ALLOWED" if allowed else "DENIED") + f": {decision.explain()}")
        if decision.result == "conditional" and not resource:
            click.echo("  (conditional: pass --resource to evaluate the conditions)")
        if permission not in PERMISSIONS:
            click.echo(f"  note: {permission!r} is not a known permission")
    sys.exit(0 if allowed else 3)
