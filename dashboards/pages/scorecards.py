"""Scorecards: certification per track and level, check pass rates, team leaderboard, what to fix
next, and the trend over evaluations (tables `insight_scorecards_*`)."""

from __future__ import annotations

import pandas as pd

from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Column, Doc
from catalog_pipelines.model.insight_tables import SCORECARDS
from dashboards.inputs import AREA_ASSETS
from dashboards.pages.base import Ctx, PageOut, max_time, missing_tables, pct
from catalog_pipelines.model.vocabulary import level_label

PERMISSION = "scorecard.read"
NEEDED = (SCORECARDS.rollup_summary, SCORECARDS.rollup_levels, SCORECARDS.rollup_checks)
FIX_ROWS = 1000
LEVEL_BLUES = ["#bdbdbd", "#c6dbef", "#6baed6", "#2171b5", "#08306b", "#041b3d"]


def track_names(ctx: Ctx) -> dict[str, str]:
    tracks = ctx.inputs.table(SCORECARDS.tracks)
    if tracks is None or "track_name" not in tracks.columns:
        return {}
    return dict(zip(tracks["track_id"], tracks["track_name"]))


def check_names(ctx: Ctx) -> dict[str, str]:
    checks = ctx.inputs.table(SCORECARDS.checks)
    if checks is None or "name" not in checks.columns:
        return {}
    return dict(zip(checks["check_id"], checks["name"]))


def certification_figure(levels: pd.DataFrame, tracks: dict[str, str], title: str) -> dict:
    """Share of entities at each level, one stacked bar per track (from rollup_levels rows)."""
    shares: dict[str, dict[int, tuple[float, str]]] = {}
    for r in levels.itertuples():
        shares.setdefault(tracks.get(r.track_id, r.track_id), {})[int(r.level)] = (float(r.share), str(r.level_name))
    return certification_bars(shares, title)


def certification_bars(shares: dict[str, dict[int, tuple[float, str]]], title: str, names: bool = True) -> dict:
    """`shares[track][level] = (share 0..1, level name)`. Tracks name their levels differently, so
    series are level numbers (darker = higher) and each level's name shows on hover (`names`;
    the thousands of team pages leave the names to the scorecards page and keep the JSON small:
    tracks are positions with tick labels, colours come from the colourway)."""
    order = sorted(shares)
    numbers = sorted({n for levels in shares.values() for n in levels})
    data = []
    for n in numbers:
        # One vocabulary (model/vocabulary.py): "Level 1 · Bronze / Scanned", the config's names.
        label = level_label(n, [shares[t][n][1] for t in order if n in shares[t]])
        cells = [shares[t].get(n) for t in order]
        trace = {"type": "bar", "orientation": "h", "name": label, "y": list(range(len(order))),
                 "x": [None if c is None else round(c[0] * 100, 1) for c in cells]}
        if names:
            trace["customdata"] = [None if c is None else c[1] for c in cells]
            trace["hovertemplate"] = "%{x:.1f}% at %{customdata}<extra>" + label + "</extra>"
        data.append(trace)
    layout = {"title": {"text": title}, "barmode": "stack", "height": max(260, 150 + 50 * len(order)),
              "colorway": [LEVEL_BLUES[min(n, len(LEVEL_BLUES) - 1)] for n in numbers],
              "xaxis": {"title": {"text": "Share of entities (%)"}, "ticksuffix": "%", "range": [0, 100]},
              "yaxis": {"title": {"text": "Track"}, "automargin": True, "tickvals": list(range(len(order))), "ticktext": order}}
    return {"data": data, "layout": layout}


LEVELS_UNLOCKED = ("Levels unlocked: summed over those entities, the certification levels fixing the check would unlock; "
                   "a level blocked by two checks counts half for each, so the figure can be a fraction.")


def _failing_link(ctx: Ctx, team: str, n: int, check: str):
    """`n` linking to the team page's failing-results table filtered on the check (drill-down)."""
    from dashboards.html import drill, link
    from dashboards.pages.teams import FAILING

    path = ctx.team_pages.get(team)
    return link(n, drill(path, FAILING, check)) if path else n


def leaderboard_min_entities(ctx: Ctx) -> int:
    from analytics.scorecards.config import LEADERBOARD_MIN_ENTITIES

    configured = ctx.inputs.leaderboard_min_entities
    return LEADERBOARD_MIN_ENTITIES if configured is None else int(configured)


def leaderboard(ctx: Ctx, doc: Doc, groups: pd.DataFrame, tracks: dict[str, str]) -> None:
    """One ranking per organisation level (`OrgGraph.levels`: teams with teams, departments with
    departments), lowest level first; groups with fewer entities than the configured minimum are
    not ranked. Ranked by the first track's share of entities at level 1 or above, then its mean
    level; every column is explained under the table."""
    from dashboards.html import drill, link
    from dashboards.pages.teams import FAILING, OWNED

    minimum = leaderboard_min_entities(ctx)
    order = sorted(groups["track_id"].unique())
    first = order[0]
    wide = groups.pivot_table(index="scope_ref", columns="track_id",
                              values=["mean_level", "certified_share", "check_pass_rate", "entities"], aggfunc="first")
    first_level = _level_names(ctx)
    depth = _track_depth(ctx)
    levels = ctx.inputs.org.levels()
    level_of = {g: lv for lv, gs in levels.items() for g in gs}
    doc.p(f"Each table compares groups of one organisation level only (from the groups' spec.type), with their "
          f"sub-teams' entities included. Groups with fewer than {minimum} entities are not ranked (set "
          "leaderboard.minEntities in config/scorecards).", "explain")
    for level in reversed(list(levels)):
        members = [g for g in wide.index if level_of.get(g) == level]
        if len(members) < 2:  # the organisation alone: nothing to compare it with
            continue
        part = wide.loc[members]
        size = part[("entities", first)].fillna(0)
        small = part[size < minimum]
        part = part[size >= minimum].sort_values([("certified_share", first), ("mean_level", first)], ascending=False)
        doc.raw(f'<h3 id="leaderboard-{_slug(level)}">{_esc(level.capitalize())}: {len(part):,} ranked</h3>')
        if not len(part):
            doc.note(f"No {level} has {minimum} or more entities with scorecard results.")
            continue
        rows = []
        for rank, (team, r) in enumerate(part.iterrows(), start=1):
            path = ctx.team_pages.get(team)
            n = int(r[("entities", first)])
            row = [rank, ctx.team_link(team), link(n, drill(path, OWNED)) if path else n]
            for t in order:
                row += [r[("certified_share", t)], r[("mean_level", t)], r[("check_pass_rate", t)]]
            row.append(link("failing checks", drill(path, FAILING)) if path else None)
            rows.append(row)
        columns = [Column("Rank", "int"), Column(level.capitalize(), "link"), Column("Entities", "int")]
        for t in order:
            name = tracks.get(t, t)
            columns += [Column(f"{name}: at {first_level.get(t, 'level 1')} or above", "pct"),
                        Column(f"{name}: mean level (0–{depth.get(t, '?')})", "num"),
                        Column(f"{name}: checks passing", "pct")]
        columns.append(Column("Drill down", "link"))
        doc.table(columns, rows, caption=f"{level.capitalize()} leaderboard (at least {minimum} entities)", page_size=25,
                  inline=2000, anchor=f"ranking-{_slug(level)}",
                  note=(f"Ranked by the share of entities at {first_level.get(first, 'level 1')} or above in "
                        f"{tracks.get(first, first)}, then by mean level. “At … or above”: share of the group's entities "
                        "certified at that level or higher. Mean level: average level of its entities (0 = not certified). "
                        "Checks passing: passed check results over all applicable results. "
                        + (f"Not ranked (fewer than {minimum} entities): {len(small):,} {level}(s)." if len(small) else "")))


def _level_names(ctx: Ctx) -> dict[str, str]:
    """track → the name of its first level (e.g. Bronze)."""
    tracks = ctx.inputs.table(SCORECARDS.tracks)
    if tracks is None or not len(tracks):
        return {}
    first = tracks[tracks["level"] == 1].drop_duplicates("track_id")
    return dict(zip(first["track_id"], first["level_name"].astype(str)))


def _track_depth(ctx: Ctx) -> dict[str, int]:
    tracks = ctx.inputs.table(SCORECARDS.tracks)
    if tracks is None or not len(tracks):
        return {}
    return tracks.groupby("track_id")["level"].max().astype(int).to_dict()


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "level"


def _esc(text: str) -> str:
    from dashboards.html import esc

    return esc(text)


def scorecards_page(ctx: Ctx) -> PageOut:
    out = ctx.page("scorecards", "Scorecards", "scorecards.html",
                   "Certification per track and level, check pass rates, the team leaderboard, what to fix next, trend.",
                   list(AREA_ASSETS[SCORECARDS]))
    level = ctx.access.level(PERMISSION)
    if level == NONE:
        return ctx.denied(out, PERMISSION)
    missing = missing_tables(ctx.inputs, NEEDED)
    if missing:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    out.data_as_of = max_time(ctx.inputs.table(SCORECARDS.evaluations), "evaluated_at")
    summary = ctx.inputs.table(SCORECARDS.rollup_summary)
    levels = ctx.inputs.table(SCORECARDS.rollup_levels)
    checks = ctx.inputs.table(SCORECARDS.rollup_checks)
    groups = summary[summary["scope_type"] == "group"]
    allowed = None if not out.partial else ctx.access.groups(PERMISSION, groups["scope_ref"])
    if out.partial:
        groups = groups[groups["scope_ref"].isin(allowed)]
    tracks, names = track_names(ctx), check_names(ctx)
    doc = Doc(stem="scorecards")
    if not out.partial:
        org_summary = summary[summary["scope_type"] == "org"]
        doc.kpis([(f"{tracks.get(r.track_id, r.track_id)} certified", f"{pct(r.certified_share)}%",
                   f"of {int(r.entities):,} entities") for r in org_summary.itertuples()]
                 + [("groups with results", groups["scope_ref"].nunique(), "teams, departments… ranked below by level")])
        doc.h2("Certification per track and level")
        org_levels = levels[levels["scope_type"] == "org"]
        if len(org_levels):
            doc.figure(certification_figure(org_levels, tracks, "Entities at each level, per track (organisation)"))
        doc.h2("Check pass rates")
        org_checks = checks[(checks["scope_type"] == "org") & (checks["applicable"] > 0)].sort_values("pass_rate")
        if len(org_checks):
            labels = [names.get(c, c) for c in org_checks["check_id"]]
            doc.figure(F.bar(labels, [pct(v) for v in org_checks["pass_rate"]], horizontal=True, percent=True,
                             title="Pass rate per check, among entities it applies to (worst first)",
                             xtitle="Pass rate (%)", ytitle="Check"))
            doc.frame_table(org_checks.assign(name=labels), [
                ("check_id", "Check", "text"), ("name", "Name", "text"), ("passed", "Passed", "int"),
                ("failed", "Failed", "int"), ("warning", "Warning", "int"), ("not_reported", "Not reported", "int"),
                ("exempted", "Exempted", "int"), ("applicable", "Applicable", "int"), ("pass_rate", "Pass rate", "pct")],
                caption="Check results across the organisation")
    else:
        doc.note("Organisation-wide figures are not included for this audience; the teams below are the ones it may see.")
    doc.h2("Team leaderboard")
    if len(groups):
        leaderboard(ctx, doc, groups, tracks)
    else:
        doc.note("No team has scorecard results.")
    fix = ctx.inputs.table(SCORECARDS.fix_next)
    doc.h2("What to fix next")
    if fix is not None and len(fix):
        fix = fix[fix["scope_ref"].str.startswith("group:")]
        if not out.partial:
            roots = {g for g in fix["scope_ref"].unique() if g not in ctx.inputs.org.parent}
            top = (fix[fix["scope_ref"].isin(roots)].groupby(["check_id", "track_id", "level"], as_index=False)
                   [["entities", "levels_unlocked"]].sum().sort_values("levels_unlocked", ascending=False).head(15))
            if len(top):
                doc.figure(F.bar([names.get(c, c) for c in top["check_id"]], top["levels_unlocked"], horizontal=True,
                                 title="Fixes that unlock the most certification levels (organisation)",
                                 xtitle="Levels unlocked (sum over entities)", ytitle="Check"))
                doc.p(LEVELS_UNLOCKED, "explain")
        else:
            fix = fix[fix["scope_ref"].isin(allowed)]
        # Each team's own page lists its top fixes; here the highest-impact ones across teams.
        fix = fix[fix["rank"] <= 5].sort_values("levels_unlocked", ascending=False)
        rows = [[ctx.team_link(r.scope_ref), int(r.rank), names.get(r.check_id, r.check_id), tracks.get(r.track_id, r.track_id),
                 int(r.level), _failing_link(ctx, r.scope_ref, int(r.entities), names.get(r.check_id, r.check_id)),
                 r.levels_unlocked] for r in fix.itertuples()]
        doc.table([Column("Team", "link"), Column("Rank", "int"), Column("Check"), Column("Track"),
                   Column("Level", "int"), Column("Failing entities", "int"), Column("Levels unlocked", "num")], rows,
                  caption="Each team's five checks whose fixing unlocks the most levels, highest impact first",
                  inline=FIX_ROWS, anchor="fix-next",
                  note="Failing entities: the team's entities (sub-teams included) this check keeps from its level; click "
                       "for the list with each check's reason. " + LEVELS_UNLOCKED)
    else:
        doc.note("No fix-next report yet (materialise scorecard_reports).")
    history = ctx.inputs.table(SCORECARDS.rollup_history)
    if not out.partial and history is not None and len(history):
        org_history = history[history["scope_type"] == "org"].sort_values("evaluated_at")
        if org_history["evaluation_id"].nunique() > 0:
            doc.h2("Trend")
            x = sorted(org_history["evaluated_at"].astype(str).unique())
            series = {}
            for t, g in org_history.groupby("track_id"):
                by_time = dict(zip(g["evaluated_at"].astype(str), g["check_pass_rate"]))
                series[f"{tracks.get(t, t)}: check pass rate"] = [pct(by_time.get(v)) for v in x]
                by_time = dict(zip(g["evaluated_at"].astype(str), g["certified_share"]))
                series[f"{tracks.get(t, t)}: certified"] = [pct(by_time.get(v)) for v in x]
            doc.figure(F.lines([v[:16] for v in x], series, percent=True, x_is_category=True,
                               title="Organisation trend over evaluations", xtitle="Evaluation (UTC)",
                               ytitle="Share (%)"))
    campaigns = ctx.inputs.table(SCORECARDS.campaign_progress)
    if not out.partial and campaigns is not None and len(campaigns) and "scope_type" in campaigns.columns:
        latest = campaigns[campaigns["scope_type"] == "org"]
        # Reports may run more than once per evaluation: the newest run's rows.
        latest = latest[latest["evaluated_at"] == latest["evaluated_at"].max()]
        if len(latest):
            doc.h2("Campaigns")
            doc.frame_table(latest, [("campaign_id", "Campaign", "text"), ("entities", "Entities", "int"),
                                     ("done", "Entities done", "int"), ("share_done", "Share done", "pct"), ("deadline", "Deadline", "text"),
                                     ("days_left", "Days left", "int"), ("status", "Status", "text")],
                            caption="Campaign progress (organisation, latest evaluation)")
    out.doc = doc
    return out
