"""CLI for catalog health: `catalog deps` and `catalog orphans`, and the `skills` group.

Click and formatting only: the data comes from `catalog_pipelines.services.catalog_health`, which
reads the insight tables the catalog-health assets wrote (`insight_graph_*`, `insight_orphans_*`,
`insight_skills_*`); nothing recomputes an analysis.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table


def _clear_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A read the service cannot answer becomes a one-line CLI error with its reason."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from catalog_pipelines.services.catalog_health import CatalogHealthError

        try:
            command(*args, **kwargs)
        except CatalogHealthError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _records(frame) -> list[dict[str, Any]]:
    from catalog_pipelines.services.catalog_health import records

    return records(frame)


def _resolve(ref: str, default_kind: str = "component") -> str:
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    try:
        return parse_entity_ref(ref, default_kind=default_kind).canonical()
    except EntityRefError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from exc


def _short(ref: Any) -> str:
    from catalog_pipelines.services.catalog_health import isna

    return "" if ref is None or isna(ref) else str(ref).replace(":default/", ":")


# ---------------------------------------------------------------------------------------------
# catalog deps / catalog orphans
# ---------------------------------------------------------------------------------------------


@click.command("deps")
@click.argument("ref")
@click.option("--reverse", is_flag=True, help="Everything that needs REF: what breaks if it goes down.")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Stop after N hops (default: no limit).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_clear_errors
def deps(ref: str, reverse: bool, depth: int | None, as_json: bool) -> None:
    """What REF needs, transitively (or with --reverse, what needs REF).

    "Needs" follows dependsOn, consumesApi, an API's provider and a component's subcomponents.
    REF is `kind:namespace/name`; kind defaults to component and namespace to default.
    """
    from catalog_pipelines.services.catalog_health import dependency_report

    report = dependency_report(_resolve(ref), reverse=reverse, depth=depth)
    if as_json:
        emit_json(report)
        return
    click.echo(f"{report['question']}" + (f" (up to {depth} hops)" if depth else ""))
    if report["in_cycle"]:
        click.echo(f"  note: it is in dependency cycle {report['in_cycle']}: {report['cycle']}")
    if not report["entities"]:
        click.echo("  nothing" + (" needs it" if reverse else ": it needs nothing"))
        return
    rows = [
        (
            e["depth"],
            "  " * (e["depth"] - 1) + _short(e["ref"]) + ("" if e["in_catalog"] else "  (not in catalog)"),
            e["via"],
            _short(e["parent"]),
            _short(e["owner"]),
        )
        for e in report["entities"]
    ]
    click.echo(table(rows, ["hop", "entity", "via", "reached from", "owner"]))
    s = report["summary"]
    click.echo(f"\n{s['entities']} entities, " + ", ".join(f"{n} {k}" for k, n in s["by_kind"].items()))
    if s["owners"]:
        click.echo(("teams to tell: " if reverse else "owned by: ") + ", ".join(_short(o) for o in s["owners"]))


@click.command("orphans")
@click.option("--severity", type=click.Choice(["error", "warning", "info"]), default=None, help="Only this severity.")
@click.option("--category", default=None, help="Only this category (e.g. owner_unresolved).")
@click.option("--group", "notify", default=None, help="Only findings for this group to act on.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_clear_errors
def orphans(severity: str | None, category: str | None, notify: str | None, limit: int, as_json: bool) -> None:
    """The latest orphan report: removed, unowned and dangling entities, with whom to notify."""
    from catalog_pipelines.services.catalog_health import orphan_findings

    report = orphan_findings(severity=severity, category=category, notify_group=_resolve(notify, "group") if notify else None)
    if as_json:
        emit_json(_records(report.head(limit)))
        return
    if report.empty:
        click.echo("no findings")
        return
    rows = [(r["severity"], r["category"], _short(r["ref"]), _short(r["notify_group"]), r["detail"]) for r in _records(report.head(limit))]
    click.echo(table(rows, ["severity", "category", "entity", "notify", "detail"]))
    if len(report) > limit:
        click.echo(f"… {len(report) - limit} more (--limit)")


# ---------------------------------------------------------------------------------------------
# skills
# ---------------------------------------------------------------------------------------------


@click.group("skills")
def skills() -> None:
    """The skills exchange: experts, mentor and gig matches, knowledge risks."""


@skills.command("experts")
@click.argument("skill")
@click.option("--team", default=None, help="Only members of this group (sub-groups included).")
@click.option("--min-level", type=click.IntRange(1, 4), default=1, show_default=True, help="1 beginner … 4 expert.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_clear_errors
def experts(skill: str, team: str | None, min_level: int, as_json: bool) -> None:
    """Who here knows SKILL (aliases work: `k8s`, `golang`), best first."""
    from catalog_pipelines.services.catalog_health import experts as find_experts

    name, found = find_experts(skill, group=_resolve(team, "group") if team else None, min_level=min_level)
    if as_json:
        emit_json({"skill": name, "experts": _records(found)})
        return
    if found.empty:
        click.echo(f"nobody has {name}" + (f" at level {min_level}+" if min_level > 1 else ""))
        return
    click.echo(table([(_short(r["user_ref"]), r["display_name"], r["level_name"], _short(r["teams"])) for r in _records(found)],
                     ["person", "name", "level", "teams"]))


@skills.command("matches")
@click.option("--kind", "which", type=click.Choice(["all", "mentorships", "gigs"]), default="all", show_default=True)
@click.option("--user", default=None, help="Only matches involving this person.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_clear_errors
def matches(which: str, user: str | None, as_json: bool) -> None:
    """Proposed mentorships (learner ↔ mentor) and gig/embed staffing."""
    from catalog_pipelines.services.catalog_health import matches as find_matches

    out = find_matches(which, who=_resolve(user, "user") if user else None)
    if as_json:
        emit_json(out)
        return
    if "mentorships" in out:
        click.echo("mentorships")
        rows = [(_short(m["learner"]), m["skill"], _short(m["mentor"]), m["mentor_level"], "yes" if m["cross_team"] else "no") for m in out["mentorships"]]
        click.echo(table(rows, ["learner", "skill", "mentor", "level", "cross-team"]) if rows else "  none")
        if out["unmatched_wishes"]:
            click.echo("\nnot matched")
            click.echo(table([(_short(u["learner"]), u["skill"], u["reason"]) for u in out["unmatched_wishes"]], ["learner", "skill", "reason"]))
    if "gigs" in out:
        click.echo("\ngigs" if "mentorships" in out else "gigs")
        rows = [
            (g["gig_id"], g["priority"], "" if g["rank"] is None else int(g["rank"]), _short(g["user_ref"]) or "(nobody)", g["covered"], "yes" if g["assigned"] else "")
            for g in out["gigs"]
        ]
        click.echo(table(rows, ["gig", "priority", "rank", "person", "covers", "assigned"]) if rows else "  none")


@skills.command("risks")
@click.option("--team", default=None, help="Only this group.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_clear_errors
def risks(team: str | None, as_json: bool) -> None:
    """Single points of knowledge (one holder) and gaps (none) in skills teams depend on."""
    from catalog_pipelines.services.catalog_health import knowledge_risks

    found = knowledge_risks(group=_resolve(team, "group") if team else None)
    if as_json:
        emit_json(_records(found))
        return
    if found.empty:
        click.echo("no single points of knowledge")
        return
    click.echo(table([(_short(r["group_ref"]), r["skill"], r["risk"], _short(r["holder"]), r["source"]) for r in _records(found)],
                     ["team", "skill", "risk", "holder", "need from"]))
