"""Portal usage (tables `insight_usage_*`): active users, retention, top plugins / entities /
searches, template time saved, adoption by team. People are pseudonymised at the source; teams
under the minimum size are suppressed there and marked here. No count of fewer than k people is
drawn: the tables hide them (`analytics.usage.privacy.protect_people_figures`), this page
re-verifies them (`people_figure_violations`) and leaves the organisation's figures out when they
fail, draws hidden days as gaps, and lists no key fewer than k people used."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import SUPPRESSED, Column, Doc
from catalog_pipelines.model.insight_tables import USAGE
from dashboards.inputs import AREA_ASSETS
from dashboards.pages.base import Ctx, PageOut, missing_tables, pct
from catalog_pipelines.model.vocabulary import SUPPRESSED as VOCAB_SUPPRESSED, plural

PERMISSION = "insights.usage.read"
SUPPRESSED_TEXT = VOCAB_SUPPRESSED
ENTITY_READ = "catalog.entity.read"
WINDOW_DAYS = 28
TOP = 15
ADOPTION_ROWS = 1000  # rows embedded; the rest in the table's CSV export
MIN_COHORT = 10  # a retention share of fewer people than this says nothing (1 of 2 is 50 %)
DIMENSIONS = {"plugin": "Plugin", "entity": "Entity", "search_term": "Search term", "page": "Page"}


def as_of(ctx: Ctx) -> date | None:
    meta = ctx.inputs.table(USAGE.meta)
    if meta is not None and len(meta) and "as_of" in meta.columns:
        return pd.Timestamp(meta["as_of"].iloc[0]).date()
    daily = ctx.inputs.table(USAGE.daily)
    if daily is not None and len(daily):
        return pd.Timestamp(daily["day"].max()).date()
    return None


def window_reach(reach: pd.DataFrame, dimension: str, end: date, days: int = WINDOW_DAYS) -> pd.Series:
    """Distinct users per key over the window: `reach` counts people by the day they were last
    active, so the sum over last-seen days inside the window counts each person once."""
    rows = reach[reach["dimension"] == dimension]
    seen = pd.to_datetime(rows["last_seen"]).dt.date
    start = end - timedelta(days=days - 1)
    inside = rows[(seen >= start) & (seen <= end)]
    return inside.groupby("key")["users"].sum().sort_values(ascending=False)


def window_events(top_daily: pd.DataFrame | None, dimension: str, end: date, days: int = WINDOW_DAYS) -> pd.Series:
    if top_daily is None or not len(top_daily):
        return pd.Series(dtype=float)
    rows = top_daily[top_daily["dimension"] == dimension]
    day = pd.to_datetime(rows["day"]).dt.date
    start = end - timedelta(days=days - 1)
    return rows[(day >= start) & (day <= end)].groupby("key")["events"].sum()


def readable_entity_keys(ctx: Ctx, keys: pd.Index) -> pd.Index:
    """Entity refs this audience may read (unknown refs count as unreadable when restricted)."""
    if ctx.access.level(ENTITY_READ) == ALL:
        return keys
    entities = ctx.inputs.entities.set_index("ref")
    frame = pd.DataFrame({"ref": keys}).assign(kind=lambda f: f["ref"].str.split(":").str[0],
                                               owner=lambda f: f["ref"].map(entities["owner"]))
    return keys[ctx.access.entity_mask(ENTITY_READ, frame)]


def usage_page(ctx: Ctx) -> PageOut:
    out = ctx.page("usage", "Portal usage", "usage.html",
                   "Active users, retention, top plugins / entities / searches, template time saved, adoption by team.",
                   list(AREA_ASSETS[USAGE]))
    level = ctx.access.level(PERMISSION)
    if level == NONE:
        return ctx.denied(out, PERMISSION)
    missing = missing_tables(ctx.inputs, (USAGE.daily,))
    if missing:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    end = as_of(ctx)
    out.data_as_of = f"{end.isoformat()} (last complete day)" if end else None
    doc = Doc(stem="usage")
    k = people_k(ctx)
    problems = _people_problems(ctx, k)
    if out.partial:
        doc.note("Organisation-wide usage is not included for this audience: only the adoption of the teams it may see.")
    elif problems:
        doc.note(f"Organisation-wide usage is left out: the stored figures show counts of fewer than {k} people "
                 f"({problems[0]}); re-materialise usage_insights.")
    else:
        _org_usage(ctx, doc, end, k)
    adoption = ctx.inputs.table(USAGE.adoption)
    doc.h2("Adoption by team")
    if adoption is not None and len(adoption):
        if out.partial:
            adoption = adoption[adoption["group_ref"].isin(ctx.access.groups(PERMISSION, adoption["group_ref"]))]
        adoption = adoption.sort_values(["suppressed", "share"], ascending=[True, False])
        window = int(adoption["window_days"].iloc[0]) if "window_days" in adoption.columns and len(adoption) else WINDOW_DAYS
        rows = []
        for r in adoption.itertuples():
            hidden = bool(r.suppressed)
            rows.append([ctx.team_link(r.group_ref), r.type, r.members, SUPPRESSED if hidden else r.active_members,
                         SUPPRESSED if hidden else r.share])
        doc.table([Column("Team", "link"), Column("Type"), Column("Members", "int"), Column("Active members", "int"),
                   Column("Share active", "pct")], rows, inline=ADOPTION_ROWS,
                  caption=f"Members active in the last {window} days, highest share first (suppressed: teams below the minimum size, and teams whose active or inactive members are fewer than k)")
    else:
        doc.note("No adoption figures yet (they need the catalog's teams and users).")
    out.doc = doc
    return out


def people_k(ctx: Ctx) -> int:
    """k for usage figures: the tables' own `min_people`, never below the floor."""
    from analytics.usage.privacy import MIN_PEOPLE_FLOOR

    meta = ctx.inputs.table(USAGE.meta)
    stored = meta["min_people"].iloc[0] if meta is not None and len(meta) and "min_people" in meta.columns else None
    return max(int(stored) if stored is not None and stored == stored else 5, MIN_PEOPLE_FLOOR)


def _people_problems(ctx: Ctx, k: int) -> list[str]:
    from analytics.usage.privacy import people_figure_violations

    tables = {t.name: ctx.inputs.table(t) for t in (USAGE.daily, USAGE.weekly, USAGE.cohorts, USAGE.plugin_adoption, USAGE.meta)}
    meta = tables["meta"]
    if meta is not None and len(meta) and "min_people" not in meta.columns:
        return ["tables from before the k rule"]
    return people_figure_violations({n: f for n, f in tables.items() if f is not None}, k)


def _people(values: pd.Series, k: int) -> list:
    """A series of people counts for a chart: hidden (missing) or below k become gaps."""
    return [None if pd.isna(v) or v < k else int(v) for v in values]


def _org_usage(ctx: Ctx, doc: Doc, end: date | None, k: int) -> None:
    daily = ctx.inputs.table(USAGE.daily).sort_values("day")
    last = daily.iloc[-1]
    meta = ctx.inputs.table(USAGE.meta)
    m = meta.iloc[0] if meta is not None and len(meta) else {}

    def kpi(value):
        return SUPPRESSED_TEXT if value is None or pd.isna(value) or value < k else int(value)

    stickiness = last.get("stickiness")
    doc.kpis([("DAU", kpi(last.get("dau")), f"on {last['day']}"), ("WAU", kpi(last.get("wau")), "7 days"),
              ("MAU", kpi(last.get("mau")), "28 days"),
              ("stickiness", SUPPRESSED_TEXT if stickiness is None or pd.isna(stickiness) else f"{pct(stickiness) or 0}%", "DAU / MAU"),
              ("catalog users active", kpi(m.get("active_catalog_users")) if len(m) else None,
               f"of {m.get('catalog_users')}" if len(m) else "")])
    doc.h2("Active users")
    days = daily["day"].astype(str).tolist()
    doc.figure(F.lines(days, {"DAU": _people(daily["dau"], k), "WAU (7 days)": _people(daily["wau"], k),
                              "MAU (28 days)": _people(daily["mau"], k)}, markers=False,
                       title=f"Active users per day (rolling windows; gaps: fewer than {k} people)", xtitle="Day (UTC)",
                       ytitle="Active users (people)"))
    weekly = ctx.inputs.table(USAGE.weekly)
    if weekly is not None and len(weekly):
        returning = [None if a is None or n is None else a - n for a, n in zip(_people(weekly["active_users"], k), _people(weekly["new_users"], k))]
        doc.figure(F.bars(weekly["week"].astype(str), {"returning": returning,
                                                       "new": _people(weekly["new_users"], k)}, stacked=True,
                          title="Weekly active users, new and returning", xtitle="ISO week (starting)",
                          ytitle="Active users (people)"))
    cohorts = ctx.inputs.table(USAGE.cohorts)
    if cohorts is not None and len(cohorts):
        doc.h2("Retention")
        # A cell published without a figure (fewer than k people: analytics.usage.privacy) is drawn
        # grey as "suppressed"; a cell the table has no row for (a week not yet reached) stays empty.
        hidden = cohorts.assign(_hidden=cohorts["retention"].isna().astype(float)).pivot_table(
            index="cohort_week", columns="weeks_since", values="_hidden", aggfunc="max", dropna=False)
        grid = cohorts.pivot_table(index="cohort_week", columns="weeks_since", values="retention", dropna=False)
        grid = grid.reindex(index=hidden.index, columns=hidden.columns)
        # Each cohort is labelled with its size; a cohort smaller than MIN_COHORT (or k) is marked
        # as too small in every cell, never drawn as 0 % or 100 % of a handful of people.
        sizes = (cohorts.groupby("cohort_week")["cohort_users"].max() if "cohort_users" in cohorts.columns
                 else pd.Series(dtype=float)).reindex(grid.index)
        minimum = max(k, MIN_COHORT)
        tiny = [pd.isna(n) or n < minimum for n in sizes]
        marked = [[bool(h) or t for h in row] for row, t in zip((hidden == 1).values.tolist(), tiny)]
        names = [f"{i} (n = {int(n):,})" if pd.notna(n) and n >= minimum else f"{i} (n < {minimum})" for i, n in zip(grid.index, sizes)]
        doc.figure(F.heatmap([f"+{int(c)}" for c in grid.columns], names,
                             (grid * 100).round(1).values.tolist(), title="Weekly retention by cohort (first active week, cohort size)",
                             xtitle="Weeks since first active", ytitle="Cohort (first active week)",
                             colorbar="Retained (%)", zmin=0, zmax=100, text_format=".0f",
                             suppressed=marked, suppressed_label=f"fewer than {k} people, or a cohort under {minimum} people"))
        if any(tiny):
            doc.note(f"{sum(tiny)} of {len(tiny)} cohorts have fewer than {minimum} people: their cells are marked "
                     f"{VOCAB_SUPPRESSED}, not drawn as a share of a handful of people.")
    reach = ctx.inputs.table(USAGE.reach)
    if reach is not None and len(reach) and end is not None:
        doc.h2(f"Top plugins, entities, searches and pages (last {WINDOW_DAYS} days)")
        top_daily = ctx.inputs.table(USAGE.top_daily)
        for dimension, label in DIMENSIONS.items():
            users = window_reach(reach, dimension, end)
            users = users[users >= k]  # a key fewer than k people used is not drawn
            if dimension == "entity":
                users = users[users.index.isin(readable_entity_keys(ctx, users.index))]
            users = users.head(TOP)
            if not len(users):
                continue
            events = window_events(top_daily, dimension, end).reindex(users.index)
            fig = F.bar(users.index, users.values, horizontal=True, title=f"Top {plural(label.lower())} by people using them",
                        xtitle=f"People (distinct, last {WINDOW_DAYS} days)", ytitle=label,
                        hover="%{y}: %{x} people<br>%{customdata} events<extra></extra>")
            fig["data"][0]["customdata"] = [None if pd.isna(v) else int(v) for v in events]
            doc.figure(fig)
    if {"zero_result_rate", "click_through_rate"} <= set(daily.columns) and daily["searches"].sum() > 0:
        doc.h2("Search")
        doc.figure(F.lines(days, {"zero results": [pct(v) for v in daily["zero_result_rate"]],
                                  "clicked through": [pct(v) for v in daily["click_through_rate"]]}, markers=False,
                           percent=True, title="Search quality per day", xtitle="Day (UTC)", ytitle="Share of searches (%)"))
    templates = ctx.inputs.table(USAGE.templates_daily)
    if templates is not None and len(templates):
        doc.h2("Templates: time saved")
        per = templates.groupby("template")[["creates", "minutes_saved"]].sum().sort_values("minutes_saved", ascending=False)
        doc.figure(F.bar(per.index, (per["minutes_saved"] / 60).round(1), horizontal=True,
                         title="Time saved by software templates, whole period", xtitle="Time saved (hours)",
                         ytitle="Template"))
        per_day = templates.groupby("day")["minutes_saved"].sum().sort_index().cumsum() / 60
        doc.figure(F.lines(per_day.index.astype(str), {"time saved": per_day.round(1).tolist()}, markers=False,
                           title="Cumulative time saved by templates", xtitle="Day (UTC)", ytitle="Time saved (hours)"))
        doc.frame_table(per.reset_index().assign(hours=lambda f: (f["minutes_saved"] / 60).round(1)),
                        [("template", "Template", "text"), ("creates", "Runs", "int"), ("hours", "Hours saved", "num")],
                        caption="Template runs and time saved")
    plugins = ctx.inputs.table(USAGE.plugin_adoption)
    if plugins is not None and len(plugins):
        top = plugins.groupby("plugin")["cumulative_users"].max().sort_values(ascending=False).head(8).index
        weeks = sorted(plugins["week"].astype(str).unique())
        series = {}
        for plugin in top:
            g = plugins[plugins["plugin"] == plugin]
            by_week = dict(zip(g["week"].astype(str), _people(g["cumulative_users"], k)))
            series[plugin] = [by_week.get(w) for w in weeks]
        doc.figure(F.lines(weeks, series, x_is_category=True, title="Plugin adoption: people who ever used each plugin",
                           xtitle="ISO week (starting)", ytitle="Cumulative users (people)"))
