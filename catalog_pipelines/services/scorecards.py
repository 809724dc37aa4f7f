"""Scorecards: evaluate the checks over the latest facts, derive the reports, and everything the
CLI shows (an entity's or a team's scorecard, the CI gate, exemptions), as data.

Tables (area `scorecards` in the insight store) are described in `catalog_pipelines/assets/scorecards.py`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.model.insight_tables import SCORECARDS
from catalog_pipelines.storage.scorecards import read_table, select_rows, write_table, write_tables

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

BLOCKING = ("failed", "not_reported", "error")
GATE_BELOW, GATE_NO_RESULT = 1, 2


def scorecards_config_dir() -> Path:
    """`CATALOG_PIPELINES_SCORECARDS`, else the project's `config/scorecards`."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().scorecards_config


def run_evaluation(engine: "sa.Engine", entities: "pd.DataFrame", config_dir: Path, now: Any) -> dict[str, Any]:
    """Evaluate and store one evaluation; returns figures for the asset's metadata.

    Raises `ScorecardConfigError` before writing anything when the configuration is invalid.
    """
    from analytics.scorecards.evaluate import campaign_frame, check_frame, evaluate, track_frame
    from analytics.scorecards.config import load_config
    from analytics.scorecards.reports import evaluation_summary, level_changes, regressions, result_changes
    from catalog_pipelines.services.facts import fact_catalog, load_latest_facts

    config = load_config(config_dir, facts=fact_catalog())
    facts = load_latest_facts(engine)
    previous_results = read_table(engine, SCORECARDS.results)
    previous_levels = read_table(engine, SCORECARDS.levels)
    evaluations = read_table(engine, SCORECARDS.evaluations)
    evaluation_id = int(evaluations["evaluation_id"].max()) + 1 if evaluations is not None and len(evaluations) else 1
    ev = evaluate(config, entities, facts, exemptions=read_table(engine, SCORECARDS.exemptions), now=now)
    changes = result_changes(previous_results, ev.results, evaluation_id, now)
    lchanges = level_changes(previous_levels, ev.levels, evaluation_id, now)
    regressed = regressions(changes, lchanges, ev.entities)
    summary = evaluation_summary(ev.results, evaluation_id, now, config, len(ev.entities), len(regressed), ev.errors)
    write_tables(
        engine,
        {
            SCORECARDS.checks: (check_frame(config), False),
            SCORECARDS.tracks: (track_frame(config), False),
            SCORECARDS.campaigns: (campaign_frame(config), False),
            SCORECARDS.entities: (ev.entities, False),
            SCORECARDS.results: (ev.results.assign(evaluation_id=evaluation_id), False),
            SCORECARDS.levels: (ev.levels.assign(evaluation_id=evaluation_id), False),
            SCORECARDS.fix_candidates: (ev.fix_candidates, False),
            SCORECARDS.campaign_members: (ev.campaign_members, False),
            SCORECARDS.result_changes: (changes, True),
            SCORECARDS.level_changes: (lchanges, True),
            SCORECARDS.regressions: (regressed, True),
            SCORECARDS.evaluations: (summary, True),
        },
    )
    states = summary.iloc[0].to_dict()
    return {
        "evaluation_id": evaluation_id,
        "config_digest": config.digest,
        "checks": len(config.checks),
        "tracks": len(config.tracks),
        "entities": len(ev.entities),
        "results": len(ev.results),
        "changes": len(changes),
        "regressions": len(regressed),
        "states": {k: int(states[k]) for k in ("passed", "failed", "warning", "not_applicable", "not_reported", "error", "exempted")},
        "errors": ev.errors,
        "levels": ev.levels.groupby(["track_id", "level_name"]).size().to_dict() if len(ev.levels) else {},
    }


def run_reports(engine: "sa.Engine", org: Any, now: Any) -> dict[str, int]:
    """Roll-ups, campaign progress and fix-next from the stored latest evaluation."""
    from analytics.scorecards.reports import campaign_progress, fix_next, rollup_checks, rollup_levels, rollup_summary

    # The configuration stored with the evaluation, not the YAML as it is now: the reports must
    # describe the results they summarise.
    entities, results, levels = read_table(engine, SCORECARDS.entities), read_table(engine, SCORECARDS.results), read_table(engine, SCORECARDS.levels)
    if entities is None or results is None or levels is None:
        raise RuntimeError("no scorecard evaluation stored yet: materialise scorecard_results first")
    evaluation_id = int(levels["evaluation_id"].max()) if len(levels) else int(results["evaluation_id"].max())
    summary = rollup_summary(levels, entities, org)
    progress = campaign_progress(read_table(engine, SCORECARDS.campaign_members), entities, org, read_table(engine, SCORECARDS.campaigns), now.date())
    tables = {
        SCORECARDS.rollup_levels: (rollup_levels(levels, entities, org, read_table(engine, SCORECARDS.tracks)), False),
        SCORECARDS.rollup_summary: (summary, False),
        SCORECARDS.rollup_checks: (rollup_checks(results, entities, org), False),
        SCORECARDS.fix_next: (fix_next(read_table(engine, SCORECARDS.fix_candidates), entities, org), False),
        # Trends are kept for teams and the org; systems and domains only as the latest view.
        SCORECARDS.rollup_history: (summary[summary["scope_type"].isin(["group", "org"])].assign(evaluation_id=evaluation_id, evaluated_at=_naive(now)), True),
        SCORECARDS.campaign_progress: (progress.assign(evaluation_id=evaluation_id, evaluated_at=_naive(now)), True),
    }
    write_tables(engine, tables)
    return {table.name: len(frame) for table, (frame, _) in tables.items()}


def _naive(now: Any) -> Any:
    import pandas as pd

    stamp = pd.Timestamp(now)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def evaluate_catalog(engine: "sa.Engine", now: Any) -> dict[str, Any]:
    """`run_evaluation` over the stored catalog with the configured scorecards (the asset's use case)."""
    from catalog_pipelines.storage.frames import entities_frame

    return run_evaluation(engine, entities_frame(engine), scorecards_config_dir(), now)


def report_catalog(engine: "sa.Engine", now: Any) -> dict[str, int]:
    """`run_reports` with the stored org hierarchy (the asset's use case)."""
    from catalog_pipelines.services.catalog import org_graph

    return run_reports(engine, org_graph(engine), now)


def report_digest(engine: "sa.Engine", top: int = 10) -> dict[str, Any]:
    """What an operator reads on `scorecard_reports`: entities per track and level of the latest
    evaluation, and its first `top` regressions (owner, entity, check or track, from, to)."""
    levels, regressed = read_table(engine, SCORECARDS.levels), read_table(engine, SCORECARDS.regressions)
    distribution: dict[str, dict[str, int]] = {}
    if levels is not None and len(levels):
        named = levels.assign(level_name=levels["level_name"].fillna("(none)").astype(str))
        for (track, level, name), n in named.groupby(["track_id", "level", "level_name"], dropna=False).size().items():
            distribution.setdefault(str(track), {})[f"{int(level) if level == level else 0} {name}"] = int(n)
    latest: list[dict[str, Any]] = []
    total = 0
    if regressed is not None and len(regressed):
        last = regressed[regressed["evaluation_id"] == regressed["evaluation_id"].max()]
        total = len(last)
        columns = ["owner", "entity_ref", "subject_type", "subject_id", "previous", "current"]
        latest = _records(last.sort_values(["owner", "entity_ref", "subject_id"], na_position="last")[columns].head(top))
    return {"levels": distribution, "regressions": latest, "regressions_total": total}


def _records(frame) -> list[dict[str, Any]]:
    if frame is None:
        return []
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


# ---------------------------------------------------------------------------------------------
# data for the views (the CLI and tests)


def entity_scorecard(engine, ref: str, track: str | None = None) -> dict[str, Any] | None:
    """Everything `scorecard REF` shows, as data."""
    results = select_rows(engine, SCORECARDS.results, entity_ref=ref)
    if results is None or results.empty:
        return None
    levels = select_rows(engine, SCORECARDS.levels, entity_ref=ref)
    checks = read_table(engine, SCORECARDS.checks).set_index("check_id")
    tracks = read_table(engine, SCORECARDS.tracks)
    entity = select_rows(engine, SCORECARDS.entities, entity_ref=ref)
    exemptions = read_table(engine, SCORECARDS.exemptions)
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
    summary = select_rows(engine, SCORECARDS.rollup_summary, scope_type="group", scope_ref=group)
    entities = select_rows(engine, SCORECARDS.entities, owner=group)
    levels = select_rows(engine, SCORECARDS.levels, entity_ref=list(entities["entity_ref"])) if entities is not None and len(entities) else None
    fixes = select_rows(engine, SCORECARDS.fix_next, scope_ref=group)
    campaigns = select_rows(engine, SCORECARDS.campaign_progress, scope_type="group", scope_ref=group)
    regressions = select_rows(engine, SCORECARDS.regressions, owner=group)
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
    tracks = read_table(engine, SCORECARDS.tracks)
    levels = select_rows(engine, SCORECARDS.levels, entity_ref=ref, track_id=track)
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
        results = select_rows(engine, SCORECARDS.results, entity_ref=ref)
        needed = rows[rows["level"] <= required]
        merged = needed.merge(results, on="check_id").merge(read_table(engine, SCORECARDS.checks)[["check_id", "severity"]], on="check_id", how="left")
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

    now = now or datetime.now(timezone.utc)
    target = f"{entity_ref}#{check_id}"
    checks = read_table(engine, SCORECARDS.checks)
    try:
        _authorize(engine, author, EXEMPTION_CREATE, entity_ref, authorizer)
        row = new_exemption(entity_ref=entity_ref, check_id=check_id, justification=justification, author=author, expires_at=expires_at, now=now, known_checks=set(checks["check_id"]) if checks is not None else None)
    except ExemptionError as exc:
        audit.record(engine, actor=author or "unknown", action="scorecard.exemption.grant", target=target, outcome="denied", details={"reason": str(exc), "justification": justification}, at=now)
        raise
    try:
        write_table(engine, SCORECARDS.exemptions, pd.DataFrame([row]), append=read_table(engine, SCORECARDS.exemptions) is not None)
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

    now = now or datetime.now(timezone.utc)
    register = read_table(engine, SCORECARDS.exemptions)
    try:
        if register is None:
            raise ExemptionError(f"no exemption {exemption_id!r}")
        match = register[register["exemption_id"] == exemption_id]
        _authorize(engine, author, EXEMPTION_REVOKE, match["entity_ref"].iat[0] if len(match) else exemption_id, authorizer)
        updated = revoke(register, exemption_id, author=author, reason=reason, now=now)
    except ExemptionError as exc:
        audit.record(engine, actor=author or "unknown", action="scorecard.exemption.revoke", target=exemption_id, outcome="denied", details={"reason": str(exc)}, at=now)
        raise
    write_table(engine, SCORECARDS.exemptions, updated)
    row = updated[updated["exemption_id"] == exemption_id].iloc[0]
    audit.record(engine, actor=author, action="scorecard.exemption.revoke", target=f"{row['entity_ref']}#{row['check_id']}", details={"exemption_id": exemption_id, "reason": reason}, at=now)
    return _records(updated[updated["exemption_id"] == exemption_id])[0]


def list_exemptions(engine: "sa.Engine", ref: str | None = None, now: datetime | None = None) -> list[dict[str, Any]] | None:
    """Every exemption (of `ref` only, if given) with its status (active, expired, revoked);
    None when no exemption was ever stored."""
    from analytics.scorecards.exemptions import status

    register = read_table(engine, SCORECARDS.exemptions)
    if register is None or register.empty:
        return None
    if ref:
        register = register[register["entity_ref"] == ref]
    return _records(register.assign(status=status(register, now or datetime.now(timezone.utc))))


def org_campaign_progress(engine: "sa.Engine") -> list[dict[str, Any]]:
    """Campaign progress for the whole organisation at the latest evaluation."""
    progress = select_rows(engine, SCORECARDS.campaign_progress, scope_type="org")
    if progress is None or progress.empty:
        return []
    return _records(progress[progress["evaluation_id"] == progress["evaluation_id"].max()])
