"""`catalog-pipelines scorecard …`: scorecards for an entity or a team, a CI gate, exemptions.

    catalog-pipelines scorecard component:default/payments-api        # one entity, every track
    catalog-pipelines scorecard --team group:default/payments          # a team's view
    catalog-pipelines scorecard gate payments-api --track production-readiness --level 2
    catalog-pipelines scorecard validate                               # check the YAML (GitOps CI)
    catalog-pipelines scorecard exempt REF --check C --expires 2026-12-31 --justification "…"

Everything is read from the stored scorecard tables (the `scorecard_results` and
`scorecard_reports` assets write them); nothing is recomputed here. Every read command takes
`--json`. `gate` exits 0 at or above the level, 1 below it, 2 when there is no result.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table
from catalog_pipelines.model.vocabulary import level_label
from catalog_pipelines.settings import Settings



def _engine():
    from catalog_pipelines.services.catalog import engine_from_env

    return engine_from_env()


def _resolve(ref: str, default_kind: str = "component") -> str:
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    try:
        return parse_entity_ref(ref, default_kind=default_kind).canonical()
    except EntityRefError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from exc


# ---------------------------------------------------------------------------------------------
# click


class _ScorecardGroup(click.Group):
    """`scorecard REF` and `scorecard --team G` run `show`; named subcommands run themselves."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["show", *args]
        elif not args:
            args = ["show"]
        return super().parse_args(ctx, args)


@click.group(cls=_ScorecardGroup, name="scorecard")
def scorecard() -> None:
    """Scorecards: certification per track, checks, fixes, exemptions and a CI gate.

    `scorecard REF` shows one entity; `scorecard --team GROUP` a team (with its sub-teams in the
    roll-ups); `scorecard gate` fails a pipeline below a level.
    """


_STATE_MARK = {"passed": "✔", "failed": "✘", "warning": "!", "not_applicable": "–", "not_reported": "?", "error": "E"}


@scorecard.command("show")
@click.argument("ref", required=False)
@click.option("--team", "team", help="A group ref: show the team's scorecards instead of one entity.")
@click.option("--track", help="Only this track.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(ref: str | None, team: str | None, track: str | None, as_json: bool) -> None:
    """Show the scorecard of REF (an entity ref) or of --team GROUP."""
    if bool(ref) == bool(team):
        raise click.UsageError("give an entity REF or --team GROUP (one of them)")
    from catalog_pipelines.services.scorecards import entity_scorecard, team_scorecard

    engine = _engine()
    if team:
        data = team_scorecard(engine, _resolve(team, "group"), track)
        if as_json:
            emit_json(data)
            return
        click.echo(f"Team {data['team']}")
        if not data["summary"]:
            click.echo("  no scorecard results for this team (is it the owner of anything scored?)")
            return
        click.echo(table([(r["track_id"], r["entities"], r["mean_level"], f"{r['certified_share']:.0%}", f"{r['top_level_share']:.0%}", "" if r["check_pass_rate"] is None else f"{r['check_pass_rate']:.0%}") for r in data["summary"]], ["track", "entities (incl. sub-teams)", "mean level", "certified", "top level", "checks passing"]))
        if data["entities"]:
            click.echo("\nOwned entities")
            click.echo(table([(r["entity_ref"], r["track_id"], level_label(r["level"], r["level_name"]), r["next_level_name"] or "—", r["next_blockers"]) for r in data["entities"]], ["entity", "track", "level", "next level", "blockers"]))
        if data["fix_next"]:
            click.echo("\nWhat to fix next (levels unlocked across the team)")
            click.echo(table([(r["rank"], r["check_id"], r["track_id"], r["level"], r["entities"], r["levels_unlocked"]) for r in data["fix_next"][:10]], ["#", "check", "track", "for level", "entities", "levels unlocked"]))
        if data["campaigns"]:
            click.echo("\nCampaigns")
            click.echo(table([(r["campaign_id"], f"{r['done']}/{r['entities']}", r["deadline"], r["status"]) for r in data["campaigns"]], ["campaign", "done", "deadline", "status"]))
        return
    canonical = _resolve(ref)
    data = entity_scorecard(engine, canonical, track)
    if data is None:
        raise click.ClickException(f"no scorecard results for {canonical} (not in the catalog, or not evaluated yet)")
    if as_json:
        emit_json(data)
        return
    click.echo(f"{data['entity_ref']}  (owner: {data['owner'] or '—'}, evaluation {data['evaluation_id']})")
    for entry in data["tracks"]:
        click.echo(f"\n{entry['track_name']}: {level_label(entry['level'], entry['level_name'])} (of {entry['max_level']})" + (f" → next: {entry['next_level_name']}" if entry["next_level_name"] else ""))
        for level in entry["levels"]:
            click.echo(f"  {'■' if level['achieved'] else '□'} {level_label(level['level'], level['name'])}")
            for c in level["checks"]:
                note = " (exempt until " + str(c["exempt_until"])[:10] + ")" if c.get("exempt_until") else ""
                click.echo(f"      {_STATE_MARK.get(c['state'], '?')} {c['name']} [{c['state']}]{note}")
                if c.get("message") and c["state"] not in ("passed", "not_applicable"):
                    click.echo(f"          {c['message']}")
                if c.get("fix_hint") and c["state"] != "passed":
                    click.echo(f"          fix: {c['fix_hint']}")
    if data["other_checks"]:
        click.echo("\nOther checks")
        for c in data["other_checks"]:
            click.echo(f"  {_STATE_MARK.get(c['state'], '?')} {c['name']} [{c['state']}]")


@scorecard.command("gate")
@click.argument("ref")
@click.option("--track", required=True, help="Track id, e.g. production-readiness.")
@click.option("--level", required=True, help="Required level: its number (1 = lowest) or its name.")
@click.option("--json", "as_json", is_flag=True)
def gate_command(ref: str, track: str, level: str, as_json: bool) -> None:
    """CI gate: exit 0 if REF is certified at --level or higher in --track, 1 below, 2 if unknown."""
    from catalog_pipelines.services.scorecards import gate

    code, detail = gate(_engine(), _resolve(ref), track, level)
    if as_json:
        emit_json(detail)
    elif "error" in detail:
        click.echo(f"scorecard gate: {detail['error']}", err=True)
    else:
        verdict = "PASS" if detail["passed"] else "FAIL"
        click.echo(f"{verdict}: {detail['entity_ref']} is at {level_label(detail['level'], detail['level_name'])} of {track}; required {detail['required_level']}")
        for b in detail["blockers"]:
            click.echo(f"  level {b['level']}: {b['check_id']} is {b['state']}")
    raise SystemExit(code)


@scorecard.command("validate")
@click.option("--config", "config_dir", type=click.Path(exists=True), help="Directory (or file) of scorecard YAML; default config/scorecards.")
@click.option("--json", "as_json", is_flag=True)
def validate(config_dir: str | None, as_json: bool) -> None:
    """Validate the scorecard YAML (for GitOps CI): every problem as file:line: message."""
    from analytics.scorecards.config import ScorecardConfigError, load_config
    from catalog_pipelines.services.facts import fact_catalog

    if config_dir is None:
        from catalog_pipelines.services.scorecards import scorecards_config_dir

        config_dir = str(scorecards_config_dir())
    try:
        config = load_config(config_dir, facts=fact_catalog())  # CollectorConfigError is a ScorecardConfigError-like list
    except ScorecardConfigError as err:
        if as_json:
            emit_json({"valid": False, "issues": [{"file": i.file, "line": i.line, "message": i.message} for i in err.issues]})
        else:
            for issue in err.issues:
                click.echo(str(issue), err=True)
        raise SystemExit(1) from err
    data = {"valid": True, "checks": len(config.checks), "tracks": {t.id: len(t.levels) for t in config.tracks.values()}, "campaigns": len(config.campaigns), "digest": config.digest}
    emit_json(data) if as_json else click.echo(f"OK: {data['checks']} checks, {len(data['tracks'])} tracks, {data['campaigns']} campaigns ({config_dir})")


@scorecard.command("exempt")
@click.argument("ref")
@click.option("--check", "check_id", required=True)
@click.option("--justification", required=True, help="Why the check does not apply or can wait (at least 10 characters).")
@click.option("--expires", required=True, type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), help="Expiry (UTC).")
@click.option("--author", default=lambda: Settings.from_env().user or getpass.getuser(), show_default="current user")
@click.option("--json", "as_json", is_flag=True)
def exempt(ref: str, check_id: str, justification: str, expires: datetime, author: str, as_json: bool) -> None:
    """Exempt REF from a check until --expires (audit-logged); it counts as passed meanwhile."""
    from analytics.scorecards.exemptions import ExemptionError
    from catalog_pipelines.services.scorecards import grant_exemption

    try:
        row = grant_exemption(_engine(), entity_ref=_resolve(ref), check_id=check_id, justification=justification, author=author, expires_at=expires.replace(tzinfo=timezone.utc))
    except ExemptionError as exc:
        raise click.ClickException(str(exc)) from exc
    emit_json(row) if as_json else click.echo(f"exemption {row['exemption_id']}: {row['entity_ref']} / {row['check_id']} until {row['expires_at']} (applies at the next evaluation)")


@scorecard.command("revoke")
@click.argument("exemption_id")
@click.option("--reason", required=True)
@click.option("--author", default=lambda: Settings.from_env().user or getpass.getuser(), show_default="current user")
@click.option("--json", "as_json", is_flag=True)
def revoke_command(exemption_id: str, reason: str, author: str, as_json: bool) -> None:
    """Revoke an exemption before it expires (audit-logged)."""
    from analytics.scorecards.exemptions import ExemptionError
    from catalog_pipelines.services.scorecards import revoke_exemption

    try:
        row = revoke_exemption(_engine(), exemption_id, author=author, reason=reason)
    except ExemptionError as exc:
        raise click.ClickException(str(exc)) from exc
    emit_json(row) if as_json else click.echo(f"revoked {exemption_id}")


@scorecard.command("exemptions")
@click.option("--ref", help="Only this entity.")
@click.option("--json", "as_json", is_flag=True)
def exemptions_command(ref: str | None, as_json: bool) -> None:
    """List exemptions with their status (active, expired, revoked)."""
    from catalog_pipelines.services.scorecards import list_exemptions

    rows = list_exemptions(_engine(), _resolve(ref) if ref else None)
    if rows is None:
        emit_json([]) if as_json else click.echo("no exemptions")
        return
    if as_json:
        emit_json(rows)
        return
    click.echo(table([(r["exemption_id"], r["entity_ref"], r["check_id"], r["status"], str(r["expires_at"])[:10], r["author"], r["justification"]) for r in rows], ["id", "entity", "check", "status", "expires", "author", "justification"]))


@scorecard.command("campaigns")
@click.option("--json", "as_json", is_flag=True)
def campaigns_command(as_json: bool) -> None:
    """Campaign progress for the whole organisation at the latest evaluation."""
    from catalog_pipelines.services.scorecards import org_campaign_progress

    latest = org_campaign_progress(_engine())
    if not latest:
        emit_json([]) if as_json else click.echo("no campaign progress recorded yet")
        return
    if as_json:
        emit_json(latest)
        return
    click.echo(table([(r["campaign_id"], f"{r['done']}/{r['entities']}", f"{r['share_done']:.0%}", r["deadline"], r["days_left"], r["status"]) for r in latest], ["campaign", "done", "share", "deadline", "days left", "status"]))
