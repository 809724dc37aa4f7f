"""Survey trends (tables `insight_surveys_trends`, `insight_surveys_waves`).

Cells the survey area suppressed (fewer respondents than the survey's k, or hidden against
differencing) stay suppressed here and are marked as such, in the charts (grey cells labelled
"suppressed", gaps in lines) and in the tables; the site never recomputes a suppressed figure.
"""

from __future__ import annotations

import pandas as pd

from dashboards import figures as F
from dashboards.html import SUPPRESSED, Column, Doc
from catalog_pipelines.model.insight_tables import SURVEYS
from dashboards.inputs import AREA_ASSETS
from dashboards.pages.base import Ctx, PageOut, missing_tables

ORG_PERMISSION, TEAM_PERMISSION = "surveys.read.org", "surveys.read.team"
LIKERT = (1, 5)
HEATMAP_GROUPS = 40
TABLE_GROUPS = 1000  # every team's own page has its survey trend
# What hovering a suppressed heatmap cell says (cells are hidden below k, or against differencing).
SUPPRESSED_HOVER = "suppressed for anonymity (fewer respondents than the threshold, or would let such a group be worked out)"


def allowed_survey_groups(ctx: Ctx, groups: pd.Series) -> set[str] | None:
    """None: every group; else the groups whose survey figures this audience may see."""
    if ctx.access.all(ORG_PERMISSION) or ctx.access.all(TEAM_PERMISSION):
        return None
    if ctx.access.level(TEAM_PERMISSION) == "none":
        return set()
    return ctx.access.groups(TEAM_PERMISSION, groups)


def suppressed_flags(frame: pd.DataFrame) -> pd.Series:
    return frame["suppressed"].fillna(False).astype(bool) | frame["value"].isna()


def dimension_heatmap(rows: pd.DataFrame, *, y: str, title: str, ytitle: str, labels: dict[str, str] | None = None) -> dict:
    """Heatmap of mean scores: one row per `y` value, one column per dimension; suppressed marked."""
    means = rows[rows["metric"] == "mean"]
    dims = means.drop_duplicates("dimension").sort_values("dimension_title")
    ys = list(dict.fromkeys(means[y]))
    values = means.set_index([y, "dimension"])
    z, sup = [], []
    for key in ys:
        zr, sr = [], []
        for dim in dims["dimension"]:
            if (key, dim) in values.index:
                cell = values.loc[(key, dim)]
                cell = cell.iloc[0] if isinstance(cell, pd.DataFrame) else cell
                hidden = bool(cell["suppressed"]) or pd.isna(cell["value"])
                zr.append(None if hidden else cell["value"])
                sr.append(hidden)
            else:
                zr.append(None)
                sr.append(False)
        z.append(zr)
        sup.append(sr)
    return F.heatmap(dims["dimension_title"].tolist(), [labels.get(k, k) if labels else k for k in ys], z,
                     title=title, xtitle="Dimension", ytitle=ytitle, colorbar="Mean score (1–5)", colorscale="RdBu", reverse=True,
                     zmin=LIKERT[0], zmax=LIKERT[1], suppressed=sup,
                     suppressed_label=SUPPRESSED_HOVER)


def surveys_page(ctx: Ctx) -> PageOut:
    out = ctx.page("surveys", "Survey trends", "surveys.html",
                   "Developer-experience survey scores per wave, dimension and team; suppressed cells are marked.",
                   list(AREA_ASSETS[SURVEYS]))
    org_level = ctx.access.all(ORG_PERMISSION)
    if not org_level and ctx.access.level(TEAM_PERMISSION) == "none":
        return ctx.denied(out, f"{ORG_PERMISSION} or {TEAM_PERMISSION}")
    missing = missing_tables(ctx.inputs, (SURVEYS.trends, SURVEYS.waves))
    if missing:
        return ctx.no_data(out, missing)
    trends, waves = ctx.inputs.table(SURVEYS.trends), ctx.inputs.table(SURVEYS.waves)
    allowed = allowed_survey_groups(ctx, trends["group_ref"])
    out.partial = allowed is not None
    if allowed is not None:
        trends = trends[trends["group_ref"].isin(allowed)]
        if not len(trends):
            return ctx.denied(out, f"{ORG_PERMISSION} or {TEAM_PERMISSION} for a group with survey results")
    out.data_as_of = f"latest wave closed {waves['closes'].max()}" if "closes" in waves.columns and len(waves) else None
    doc = Doc(stem="surveys")
    k_values = sorted(set(waves.get("min_group_size", pd.Series(dtype=int)).dropna().astype(int)))
    doc.note("Anonymity: a figure about fewer respondents than the survey's threshold"
             + (f" (k = {', '.join(map(str, k_values))})" if k_values else "")
             + " is suppressed at the source, and so is a figure that would let a suppressed one be worked out. "
             "Suppressed cells are grey, labelled \"suppressed\" and carry no number; they are never estimated here.")
    for survey, rows in trends.groupby("survey"):
        sw = waves[waves["survey"] == survey].sort_values("wave_order")
        title = sw["survey_title"].iloc[0] if "survey_title" in sw.columns and len(sw) else survey
        doc.h2(str(title), anchor=f"survey-{survey}")
        order = dict(zip(sw["wave"], sw["wave_title"].astype(str))) if len(sw) else {}
        wave_x = [order.get(w, w) for w in sw["wave"]] if len(sw) else sorted(rows["wave"].unique())
        if org_level and len(sw):
            doc.kpis([("waves", len(sw), ""), ("respondents", sw["respondents"].iloc[-1], f"in {wave_x[-1]}"),
                      ("response rate", f"{sw['response_rate'].iloc[-1]:.0f}%", f"in {wave_x[-1]}")])
            doc.figure(F.bar(wave_x, sw["response_rate"].tolist(), percent=True, title="Response rate per wave",
                             xtitle="Wave", ytitle="Response rate (% of invited)"))
            org_rows = rows[(rows["depth"] == rows["depth"].min()) & (rows["metric"] == "mean")]
            series = {}
            for dim, g in org_rows.groupby("dimension_title"):
                by_wave = {w: (None if s else v) for w, v, s in zip(g["wave"], g["value"], suppressed_flags(g))}
                series[str(dim)] = [by_wave.get(w) for w in sw["wave"]]
            if series:
                doc.figure(F.lines(wave_x, series, x_is_category=True, yrange=[LIKERT[0], LIKERT[1]],
                                   title="Organisation: mean score per dimension and wave", xtitle="Wave",
                                   ytitle="Mean score (Likert 1–5)"))
        latest_wave = sw["wave"].iloc[-1] if len(sw) else rows["wave"].max()
        latest = rows[rows["wave"] == latest_wave]
        shown_groups = latest.drop_duplicates("group_ref").sort_values(["depth", "group_name"])
        heat_groups = shown_groups.head(HEATMAP_GROUPS)["group_ref"]
        labels = {r.group_ref: f"{r.group_name} ({r.group_type})" for r in shown_groups.itertuples()}
        if len(heat_groups):
            doc.figure(dimension_heatmap(latest[latest["group_ref"].isin(heat_groups)], y="group_ref", labels=labels,
                                         title=f"Mean score per group and dimension, {order.get(latest_wave, latest_wave)}"
                                         + (f" (first {HEATMAP_GROUPS} groups by level)" if len(shown_groups) > HEATMAP_GROUPS else ""),
                                         ytitle="Group"))
        means = latest[latest["metric"] == "mean"]
        dims = means.drop_duplicates("dimension").sort_values("dimension_title")
        cell = {(r.group_ref, r.dimension): (SUPPRESSED if s else r.value)
                for r, s in zip(means.itertuples(), suppressed_flags(means))}
        invited = latest.groupby("group_ref")["invited"].max()
        table_rows = [[ctx.team_link(g.group_ref), g.group_type, g.depth, invited.get(g.group_ref)]
                      + [cell.get((g.group_ref, d), None) for d in dims["dimension"]]
                      for g in shown_groups.head(TABLE_GROUPS).itertuples()]
        doc.table([Column("Group", "link"), Column("Type"), Column("Level", "int"), Column("Invited", "int")]
                  + [Column(str(t), "num") for t in dims["dimension_title"]], table_rows,
                  caption=f"Mean score (1–5) per group and dimension, {order.get(latest_wave, latest_wave)} (groups by level)",
                  total=len(shown_groups))
        significant = latest[latest["significant"].fillna(False).astype(bool) & (latest["metric"] == "mean")]
        if len(significant):
            doc.frame_table(significant.sort_values("change").assign(group=significant["group_name"]),
                            [("group", "Group", "text"), ("dimension_title", "Dimension", "text"),
                             ("previous_value", "Previous", "num"), ("value", "Now", "num"), ("change", "Change", "num"),
                             ("p_value", "p", "num")],
                            caption="Significant changes since the previous wave (Welch's t-test, p < 0.05)")
    out.doc = doc
    return out
