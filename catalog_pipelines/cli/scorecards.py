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
from catalog_pipelines.settings import Settings

AREA = "scorecards"
BLOCKING = ("failed", "not_reported", "error")
GATE_BELOW, GATE_NO_RESULT = 1, 2


def _engine():
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import get_engine

    return get_engine(Settings.from_env().catalog_database_url)


def _read(engine, name: str):
    from catalog_pipelines.storage.insights import read_frame

    return read_frame(engine, AREA, name)


def _select(engine, name: str, **equals: Any):
    """Rows of a (possibly large) scorecard table where each column equals a value (or is in a list)."""
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.storage.insights import table_name

    if not sa.inspect(engine).has_table(table_name(AREA, name)):
        return None
    tbl = sa.Table(table_name(AREA, name), sa.MetaData(), autoload_with=engine)
    query = sa.select(tbl)
    for column, value in equals.items():
        query = query.where(tbl.c[column].in_(value) if isinstance(value, list | tuple) else tbl.c[column] == value)
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def _resolve(ref: str, default_kind: str = "component") -> str:
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    try:
        return parse_entity_ref(ref, default_kind=default_kind).canonical()
    except EntityRefError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from exc


def _records(frame) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


# ---------------------------------------------------------------------------------------------
# data for the views (also used by tests)


def entity_scorecard(engine, ref: str, track: str | None = None) -> dict[str, Any] | None:
    """Everything `scorecard REF` shows, as data."""
    results = _select(engine, "results", entity_ref=ref)
    if results is None or results.empty:
        return None
    levels = _select(engine, "levels", entity_ref=ref)
    checks = _read(engine, "checks").set_index("check_id")
    tracks = _read(engine, "tracks")
    entity = _select(engine, "entities", entity_ref=ref)
    exemptions = _read(engine, "exemptions")
    by_check = results.set_index("check_id")
    out: dict[str, Any] = {
        "entity_ref": ref,
        "owner": entity["owner"].iat[0] if entity is not None and len(entity) else None,
        "evaluation_id": int(results["evaluation_id"].iat[0]),
        "tracks": [],
        "other_checks": [],
    }

    def check_row(cid: str) -> dict[str, Any]:
        row = by_check.loc[cid]
        meta = checks.loc[cid] if cid in checks.index else None
        state = str(row["state"])
        item = {
            "check_id": cid,
            "name": meta["name"] if meta is not None else cid,
            "state": state,
            "raw_state": str(row["raw_state"]),
            "exempted": bool(row["exempted"]),
            "severity": meta["severity"] if meta is not None else None,
        }
        message = (meta["passed_message"] if state == "passed" else meta["failed_message"]) if meta is not None else ""
        if message:
            item["message"] = message
        if state in ("failed", "warning", "not_reported", "error") and meta is not None and meta["fix_hint"]:
            item["fix_hint"] = meta["fix_hint"]
        if state == "not_reported":
            item["message"] = f"fact missing: {meta['facts'] if meta is not None else '?'}"
        if item["exempted"] and exemptions is not None:
            match = exemptions[(exemptions["entity_ref"] == ref) & (exemptions["check_id"] == cid) & exemptions["revoked_at"].isna()]
            if len(match):
                item["exempt_until"] = match["expires_at"].max()
        return item

    in_tracks: set[str] = set()
    for track_id, rows in tracks.groupby("track_id", sort=False):
        if track and track_id != track:
            continue
        lv = levels[levels["track_id"] == track_id] if levels is not None else None
        if lv is None or lv.empty:
            continue
        lv = lv.iloc[0]
        entry = {
            "track_id": track_id,
            "track_name": rows["track_name"].iat[0],
            "level": int(lv["level"]),
            "level_name": lv["level_name"],
            "max_level": int(lv["max_level"]),
            "next_level_name": None if lv["next_level_name"] is None or lv["next_level_name"] != lv["next_level_name"] else lv["next_level_name"],
            "levels": [],
        }
        for number, level_rows in rows.groupby("level", sort=True):
            level_checks = [check_row(c) for c in level_rows["check_id"] if c in by_check.index]
            in_tracks |= set(level_rows["check_id"])
            entry["levels"].append({"level": int(number), "name": level_rows["level_name"].iat[0], "achieved": int(number) <= int(lv["level"]), "checks": level_checks})
        out["tracks"].append(entry)
    if not track:
        out["other_checks"] = [check_row(c) for c in by_check.index if c not in in_tracks]
    return out


def team_scorecard(engine, group: str, track: str | None = None) -> dict[str, Any]:
    """Everything `scorecard --team GROUP` shows, as data."""
    summary = _select(engine, "rollup_summary", scope_type="group", scope_ref=group)
    entities = _select(engine, "entities", owner=group)
    levels = _select(engine, "levels", entity_ref=list(entities["entity_ref"])) if entities is not None and len(entities) else None
    fixes = _select(engine, "fix_next", scope_ref=group)
    campaigns = _select(engine, "campaign_progress", scope_type="group", scope_ref=group)
    regressions = _select(engine, "regressions", owner=group)
    if track:
        summary = summary[summary["track_id"] == track] if summary is not None else None
        levels = levels[levels["track_id"] == track] if levels is not None else None
        fixes = fixes[fixes["track_id"] == track] if fixes is not None else None
    if campaigns is not None and len(campaigns):
        campaigns = campaigns[campaigns["evaluation_id"] == campaigns["evaluation_id"].max()]
    if regressions is not None and len(regressions):
        regressions = regressions[regressions["evaluation_id"] == regressions["evaluation_id"].max()]
    return {
        "team": group,
        "summary": _records(summary),
        "entities": _records(levels.sort_values(["track_id", "level", "entity_ref"]) if levels is not None else None),
        "fix_next": _records(fixes.sort_values("rank") if fixes is not None else None),
        "campaigns": _records(campaigns),
        "latest_regressions": _records(regressions),
    }


def gate(engine, ref: str, track: str, level: str) -> tuple[int, dict[str, Any]]:
    """(exit code, details) of the CI gate: is `ref` certified at `level` or higher in `track`?"""
    tracks = _read(engine, "tracks")
    levels = _select(engine, "levels", entity_ref=ref, track_id=track)
    if tracks is None or track not in set(tracks["track_id"]):
        return GATE_NO_RESULT, {"entity_ref": ref, "track_id": track, "error": f"unknown track {track!r}"}
    rows = tracks[tracks["track_id"] == track]
    names = {str(n).lower(): int(k) for k, n in rows[["level", "level_name"]].drop_duplicates().itertuples(index=False)}
    required = int(level) if level.isdigit() else names.get(level.lower())
    if required is None:
        return GATE_NO_RESULT, {"entity_ref": ref, "track_id": track, "error": f"track {track!r} has no level {level!r} (levels: {', '.join(sorted(names, key=names.get))})"}
    if levels is None or levels.empty:
        return GATE_NO_RESULT, {"entity_ref": ref, "track_id": track, "error": f"no scorecard result for {ref} in track {track!r}"}
    achieved = int(levels["level"].iat[0])
    blockers = []
    if achieved < required:
        results = _select(engine, "results", entity_ref=ref)
        needed = rows[rows["level"] <= required]
        merged = needed.merge(results, on="check_id").merge(_read(engine, "checks")[["check_id", "severity"]], on="check_id", how="left")
        blockers = _records(merged[merged["state"].isin(BLOCKING) & (merged["severity"] != "warning")][["level", "check_id", "state"]])
    detail = {"entity_ref": ref, "track_id": track, "required_level": required, "level": achieved, "level_name": levels["level_name"].iat[0], "passed": achieved >= required, "blockers": blockers}
    return (0 if achieved >= required else GATE_BELOW), detail


def _authorize(engine, author: str, permission: str, resource: str, authorizer=None) -> None:
    """Raise ExemptionError (after the caller audits it) unless RBAC lets `author` do this."""
    from analytics.scorecards.exemptions import ExemptionError
    from catalog_pipelines.permissions import NotAllowed, PolicyAuthorizer, PolicyError

    authorizer = authorizer or PolicyAuthorizer.from_env(catalog_url=engine.url.render_as_string(hide_password=False))
    try:
        authorizer.require(author, permission, resource)
    except (NotAllowed, PolicyError) as exc:
        raise ExemptionError(f"not permitted: {exc}") from exc


def grant_exemption(engine, *, entity_ref: str, check_id: str, justification: str, author: str, expires_at: datetime, now: datetime | None = None, authorizer=None) -> dict[str, Any]:
    """Store an exemption and audit-log it (also a refused request, with the reason).

    Needs `scorecard.exemption.create` on the entity (RBAC, config/permissions.yaml)."""
    import pandas as pd

    from analytics.scorecards.exemptions import ExemptionError, new_exemption
    from catalog_pipelines.permissions import EXEMPTION_CREATE
    from catalog_pipelines.storage import audit
    from catalog_pipelines.storage.insights import write_frame

    now = now or datetime.now(timezone.utc)
    target = f"{entity_ref}#{check_id}"
    checks = _read(engine, "checks")
    try:
        _authorize(engine, author, EXEMPTION_CREATE, entity_ref, authorizer)
        row = new_exemption(entity_ref=entity_ref, check_id=check_id, justification=justification, author=author, expires_at=expires_at, now=now, known_checks=set(checks["check_id"]) if checks is not None else None)
    except ExemptionError as exc:
        audit.record(engine, actor=author or "unknown", action="scorecard.exemption.grant", target=target, outcome="denied", details={"reason": str(exc), "justification": justification}, at=now)
        raise
    try:
        write_frame(engine, AREA, "exemptions", pd.DataFrame([row]), append=_read(engine, "exemptions") is not None)
    except Exception as exc:
        audit.record(engine, actor=author, action="scorecard.exemption.grant", target=target, outcome="failure", details={"error": str(exc)}, at=now)
        raise
    audit.record(engine, actor=author, action="scorecard.exemption.grant", target=target, details={k: row[k] for k in ("exemption_id", "justification", "expires_at")}, at=now)
    return row


def revoke_exemption(engine, exemption_id: str, *, author: str, reason: str, now: datetime | None = None, authorizer=None) -> dict[str, Any]:
    """Revoke an exemption (needs `scorecard.exemption.revoke` on its entity), audit-logged."""
    from analytics.scorecards.exemptions import ExemptionError, revoke
    from catalog_pipelines.permissions import EXEMPTION_REVOKE
    from catalog_pipelines.storage import audit
    from catalog_pipelines.storage.insights import write_frame

    now = now or datetime.now(timezone.utc)
    register = _read(engine, "exemptions")
    try:
        if register is None:
            raise ExemptionError(f"no exemption {exemption_id!r}")
        match = register[register["exemption_id"] == exemption_id]
        _authorize(engine, author, EXEMPTION_REVOKE, match["entity_ref"].iat[0] if len(match) else exemption_id, authorizer)
        updated = revoke(register, exemption_id, author=author, reason=reason, now=now)
    except ExemptionError as exc:
        audit.record(engine, actor=author or "unknown", action="scorecard.exemption.revoke", target=exemption_id, outcome="denied", details={"reason": str(exc)}, at=now)
        raise
    write_frame(engine, AREA, "exemptions", updated)
    row = updated[updated["exemption_id"] == exemption_id].iloc[0]
    audit.record(engine, actor=author, action="scorecard.exemption.revoke", target=f"{row['entity_ref']}#{row['check_id']}", details={"exemption_id": exemption_id, "reason": reason}, at=now)
    return _records(updated[updated["exemption_id"] == exemption_id])[0]


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
            click.echo(table([(r["entity_ref"], r["track_id"], f"{r['level']} {r['level_name']}", r["next_level_name"] or "—", r["next_blockers"]) for r in data["entities"]], ["entity", "track", "level", "next level", "blockers"]))
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
        click.echo(f"\n{entry['track_name']}: level {entry['level']}/{entry['max_level']} {entry['level_name']}" + (f" → next: {entry['next_level_name']}" if entry["next_level_name"] else ""))
        for level in entry["levels"]:
            click.echo(f"  {'■' if level['achieved'] else '□'} {level['level']} {level['name']}")
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
    code, detail = gate(_engine(), _resolve(ref), track, level)
    if as_json:
        emit_json(detail)
    elif "error" in detail:
        click.echo(f"scorecard gate: {detail['error']}", err=True)
    else:
        verdict = "PASS" if detail["passed"] else "FAIL"
        click.echo(f"{verdict}: {detail['entity_ref']} is at level {detail['level']} ({detail['level_name']}) of {track}; required {detail['required_level']}")
        for b in detail["blockers"]:
            click.echo(f"  level {b['level']}: {b['check_id']} is {b['state']}")
    raise SystemExit(code)


@scorecard.command("validate")
@click.option("--config", "config_dir", type=click.Path(exists=True), help="Directory (or file) of scorecard YAML; default config/scorecards.")
@click.option("--json", "as_json", is_flag=True)
def validate(config_dir: str | None, as_json: bool) -> None:
    """Validate the scorecard YAML (for GitOps CI): every problem as file:line: message."""
    from analytics.scorecards.config import ScorecardConfigError, load_config

    if config_dir is None:
        config_dir = str(Settings.from_env().scorecards_config)
    try:
        config = load_config(config_dir)
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
    from analytics.scorecards.exemptions import status

    register = _read(_engine(), "exemptions")
    if register is None or register.empty:
        emit_json([]) if as_json else click.echo("no exemptions")
        return
    if ref:
        register = register[register["entity_ref"] == _resolve(ref)]
    register = register.assign(status=status(register, datetime.now(timezone.utc)))
    if as_json:
        emit_json(_records(register))
        return
    click.echo(table([(r["exemption_id"], r["entity_ref"], r["check_id"], r["status"], str(r["expires_at"])[:10], r["author"], r["justification"]) for r in _records(register)], ["id", "entity", "check", "status", "expires", "author", "justification"]))


@scorecard.command("campaigns")
@click.option("--json", "as_json", is_flag=True)
def campaigns_command(as_json: bool) -> None:
    """Campaign progress for the whole organisation at the latest evaluation."""
    progress = _select(_engine(), "campaign_progress", scope_type="org")
    if progress is None or progress.empty:
        emit_json([]) if as_json else click.echo("no campaign progress recorded yet")
        return
    latest = progress[progress["evaluation_id"] == progress["evaluation_id"].max()]
    if as_json:
        emit_json(_records(latest))
        return
    click.echo(table([(r["campaign_id"], f"{r['done']}/{r['entities']}", f"{r['share_done']:.0%}", r["deadline"], r["days_left"], r["status"]) for r in _records(latest)], ["campaign", "done", "share", "deadline", "days left", "status"]))
