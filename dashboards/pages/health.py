"""Catalog health: orphans and broken references (`ORPHANS` insight tables), the relationship graph
(`GRAPH`), and the skills exchange (`SKILLS`)."""

from __future__ import annotations

import pandas as pd

from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Column, Doc, drill, link
from catalog_pipelines.model.insight_tables import GRAPH, ORPHANS, SKILLS
from dashboards.inputs import AREA_ASSETS
from dashboards.pages.base import Ctx, PageOut, max_time, missing_tables, pct
from catalog_pipelines.model.vocabulary import label

ENTITY_READ = "catalog.entity.read"
SKILLS_READ = "skills.read"
MATRIX_TEAMS = 20  # the dependency matrix: the teams with the most cross-team dependency edges
FINDINGS_LIMIT = 2000  # rows embedded in a page; every table's full rows go to its CSV export
TEAM_ROWS = 2000
FINDINGS = "findings"  # anchors of the drill-down targets
DEPENDENCIES = "team-dependencies"


def _readable(ctx: Ctx, frame: pd.DataFrame, ref: str = "ref", kind: str = "kind", owner: str = "owner") -> pd.DataFrame:
    if ctx.access.level(ENTITY_READ) == ALL:
        return frame
    probe = pd.DataFrame({"ref": frame[ref].to_numpy(), "kind": frame[kind].to_numpy() if kind in frame else None,
                          "owner": frame[owner].to_numpy() if owner in frame else None})
    return frame[ctx.access.entity_mask(ENTITY_READ, probe)]


def _visible(ctx: Ctx, refs: pd.Series) -> pd.Series:
    """True where the group ref is empty or one this audience may see."""
    return refs.isna() | refs.isin(ctx.visible_groups) | ~refs.astype(str).str.startswith("group:")


def health_page(ctx: Ctx) -> PageOut:
    out = ctx.page("health", "Catalog health", "health.html",
                   "Orphans and broken references, dangling relation targets, dependency cycles, the team dependency graph.",
                   ["orphan_report", "relationship_graph"])
    level = ctx.access.level(ENTITY_READ)
    if level == NONE:
        return ctx.denied(out, ENTITY_READ)
    missing = missing_tables(ctx.inputs, (ORPHANS.report, GRAPH.team_dependencies))
    if len(missing) == 2:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    doc = Doc(stem="health")
    report = ctx.inputs.table(ORPHANS.report)
    if report is not None:
        out.data_as_of = max_time(ctx.inputs.table(ORPHANS.trend), "as_of")
        if out.partial:
            report = _readable(ctx, report)
            report = report[_visible(ctx, report["notify_group"]) & _visible(ctx, report["owner"]) & _visible(ctx, report["related_ref"])]
        counts = report.groupby(["category", "severity"]).size().unstack(fill_value=0) if len(report) else pd.DataFrame()
        doc.kpis([("findings", len(report), ""),
                  ("errors", int((report["severity"] == "error").sum()), "unowned, broken owner, broken dependency"),
                  ("warnings", int((report["severity"] == "warning").sum()), ""),
                  ("dangling relations", int((report["category"] == "dangling_relation").sum()), "targets not in the catalog")])
        doc.h2("Orphans and broken references")
        if len(counts):
            doc.figure(F.bars(counts.index, {s: counts[s].tolist() for s in counts.columns}, stacked=True, horizontal=True,
                              colors={"error": F.BAD, "warning": F.WARN, "info": F.PALETTE[0]},
                              title="Findings by category and severity", xtitle="Findings (count)", ytitle="Category"))
            # Drill-down: each count links to the findings behind it (the table below, filtered).
            per = report.groupby(["category", "severity"]).size().reset_index(name="n").sort_values("n", ascending=False)
            doc.table([Column("Category"), Column("Severity"), Column("Findings", "link")],
                      [[label(c), sev, link(int(n), drill("", FINDINGS, label(c)))] for c, sev, n in per.itertuples(index=False)],
                      caption="Findings per category: click a count for the entities behind it", page_size=10)
        trend = ctx.inputs.table(ORPHANS.trend)
        if not out.partial and trend is not None and trend["as_of"].nunique() > 1:
            pivot = trend.pivot_table(index="as_of", columns="category", values="count", aggfunc="sum").sort_index()
            doc.figure(F.lines(pivot.index.astype(str).str[:16], {c: pivot[c].tolist() for c in pivot.columns},
                               x_is_category=True, title="Findings over time, by category",
                               xtitle="Report time (UTC)", ytitle="Findings (count)"))
        if len(report):
            ordered = report.assign(order=report["severity"].map({"error": 0, "warning": 1}).fillna(2)).sort_values(["order", "category"])
            ordered = ordered.assign(category=ordered["category"].map(label))
            doc.frame_table(ordered, [("severity", "Severity", "text"), ("category", "Category", "text"), ("ref", "Entity", "text"),
                                      ("owner", "Owner", "text"), ("notify_group", "Notify", "text"),
                                      ("related_ref", "Related", "text"), ("detail", "Detail", "text")],
                            caption="Findings (errors first)", limit=FINDINGS_LIMIT, anchor=FINDINGS,
                            note="One row per finding of the orphan report: an unowned entity, an owner or relation "
                                 "target the catalog does not hold, with the team to notify.")
        dangling = report[report["category"] == "dangling_relation"]
        doc.h2("Dangling references")
        if len(dangling):
            targets = dangling.groupby("related_ref").agg(referrers=("ref", "nunique")).sort_values("referrers", ascending=False)
            doc.frame_table(targets.reset_index(), [("related_ref", "Missing target", "text"), ("referrers", "Referring entities", "int")],
                            caption="Relation targets that are not in the catalog", limit=TEAM_ROWS)
        else:
            doc.note("Every relation target is in the catalog.")
        removals = ctx.inputs.table(ORPHANS.removals_by_cycle)
        if not out.partial and removals is not None and len(removals):
            per = removals.pivot_table(index="cycle", columns="provider", values="removed", aggfunc="sum", fill_value=0)
            doc.figure(F.bars(per.index, {p: per[p].tolist() for p in per.columns}, stacked=True,
                              title="Entities removed from their source, per cycle", xtitle="Ingestion cycle (number)",
                              ytitle="Entities removed (count)"))
    _graph(ctx, doc, out.partial)
    out.doc = doc
    return out


def _graph(ctx: Ctx, doc: Doc, partial: bool) -> None:
    deps = ctx.inputs.table(GRAPH.team_dependencies)
    if deps is None:
        return
    doc.h2("Dependencies between teams")
    cross = deps[~deps["internal"].astype(bool)]
    if partial:
        cross = cross[cross["source_owner"].isin(ctx.visible_groups) & cross["target_owner"].isin(ctx.visible_groups)]
    if len(cross):
        matrix = dependency_matrix(cross, MATRIX_TEAMS)
        names = lambda refs: [ctx.group_name(r) for r in refs]  # noqa: E731
        fig = F.heatmap(names(matrix.columns), names(matrix.index), matrix.to_numpy().tolist(),
                        title=f"Dependency edges between the {len(matrix.index)} most connected teams (heaviest first)",
                        xtitle="Depends on team", ytitle="Team depending", colorbar="Edges (count)",
                        colorscale="Blues", reverse=True, zmin=0, text_format=".0f")
        fig["layout"]["yaxis"]["autorange"] = "reversed"  # the heaviest team at the top
        doc.figure(fig)
        doc.p(f"Each cell counts the dependency edges (dependsOn, consumesApi, providesApi, subcomponents) from entities "
              f"of the row's team to entities of the column's team; rows and columns are ordered by their total weight. "
              f"{cross['source_owner'].nunique():,} teams depend on another team; the full list is the table below.", "explain")
        rows = cross.sort_values("edges", ascending=False)
        doc.table([Column("From team", "link"), Column("Depends on team", "link"), Column("Edges", "int"),
                   Column("Entities depending", "int"), Column("Entities depended on", "int")],
                  [[ctx.team_link(r.source_owner), ctx.team_link(r.target_owner), r.edges, r.sources, r.targets]
                   for r in rows.itertuples()], caption="Team-to-team dependencies (dependsOn, consumesApi, …)",
                  inline=TEAM_ROWS, anchor=DEPENDENCIES)
    else:
        doc.note("No cross-team dependency to show.")
    most = ctx.inputs.table(GRAPH.most_depended_on)
    if most is not None and len(most):
        if partial:
            most = _readable(ctx, most)
            most = most[_visible(ctx, most["owner"])]
        if len(most):
            doc.h2("Blast radius")
            head = most.sort_values(["transitive_dependents", "direct_dependents"], ascending=False).head(20)
            doc.figure(F.bars(head["ref"], {"transitively": head["transitive_dependents"].tolist(),
                                            "directly": head["direct_dependents"].tolist()}, horizontal=True,
                              title="Most depended-on entities at runtime (blast radius)",
                              xtitle="Entities that depend on it (count)", ytitle="Entity"))
            spread = head["transitive_dependents"]
            same = int((spread == spread.max()).sum())
            doc.p("Runtime dependencies only (dependsOn, consumesApi, an API's provider), not ownership or subcomponents. "
                  "Transitively: every entity that breaks when this one is down; directly: the entities declaring the dependency. "
                  f"The top {len(head)} range from {int(spread.min()):,} to {int(spread.max()):,} transitive dependents"
                  + (f"; {same} share the largest count because they sit in one dependency cycle (see Dependency cycles), "
                     "so rank them by their direct dependents." if same > 1 else "."), "explain")
            doc.frame_table(most, [("rank", "Rank", "int"), ("ref", "Entity", "text"), ("kind", "Kind", "text"),
                                   ("owner", "Owner", "text"), ("direct_dependents", "Direct dependents", "int"),
                                   ("transitive_dependents", "Transitive dependents", "int"),
                                   ("dependent_teams", "Dependent teams", "int")], caption="Most depended-on entities",
                            note="Dependent teams: distinct owners among the transitive dependents, the teams an outage reaches.")
    cycles = ctx.inputs.table(GRAPH.cycles)
    if not partial and cycles is not None:
        doc.h2("Dependency cycles")
        if len(cycles):
            doc.frame_table(cycles.sort_values("size", ascending=False), [("cycle_id", "Cycle", "int"), ("size", "Entities", "int"),
                                                                          ("example", "Example path", "text")],
                            caption="Components that transitively need themselves", limit=TEAM_ROWS)
        else:
            doc.note("No dependency cycle.")


def dependency_matrix(cross: pd.DataFrame, n: int) -> pd.DataFrame:
    """Team × team dependency edges for the `n` teams with the most cross-team edges (in and out):
    rows (depending team) ordered by outgoing weight, columns (depended-on team) by incoming weight,
    heaviest first; 0 where no edge."""
    degree = pd.concat([cross.groupby("source_owner")["edges"].sum(), cross.groupby("target_owner")["edges"].sum()])
    top = degree.groupby(level=0).sum().sort_values(ascending=False, kind="stable").head(n).index
    keep = cross[cross["source_owner"].isin(top) & cross["target_owner"].isin(top)]
    matrix = keep.pivot_table(index="source_owner", columns="target_owner", values="edges", aggfunc="sum", fill_value=0)
    matrix = matrix.reindex(index=top, columns=top, fill_value=0)
    rows = matrix.sum(axis=1).sort_values(ascending=False, kind="stable").index
    cols = matrix.sum(axis=0).sort_values(ascending=False, kind="stable").index
    matrix = matrix.loc[rows, cols]
    return matrix.loc[matrix.sum(axis=1) > 0, matrix.sum(axis=0) > 0]


def skills_page(ctx: Ctx) -> PageOut:
    out = ctx.page("skills", "Skills exchange", "skills.html",
                   "Skills held and wanted, mentoring matches, gigs and embeds, knowledge risks per team.",
                   list(AREA_ASSETS[SKILLS]))
    level = ctx.access.level(SKILLS_READ)
    if level == NONE:
        return ctx.denied(out, SKILLS_READ)
    missing = missing_tables(ctx.inputs, (SKILLS.coverage, SKILLS.knowledge_risks))
    if missing:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    doc = Doc(stem="skills")
    risks = ctx.inputs.table(SKILLS.knowledge_risks)
    coverage = ctx.inputs.table(SKILLS.coverage)
    if out.partial:
        allowed = ctx.access.groups(SKILLS_READ, pd.concat([risks["group_ref"], coverage["group_ref"]]))
        risks, coverage = risks[risks["group_ref"].isin(allowed)], coverage[coverage["group_ref"].isin(allowed)]
        doc.note("Organisation-wide skills figures are not included for this audience; the teams below are the ones it may see.")
    else:
        profiles, wishes = ctx.inputs.table(SKILLS.profiles), ctx.inputs.table(SKILLS.wishes)
        matches, unmatched = ctx.inputs.table(SKILLS.mentor_matches), ctx.inputs.table(SKILLS.unmatched_wishes)
        gigs = ctx.inputs.table(SKILLS.gig_matches)
        doc.kpis([("people with skills", profiles["user_ref"].nunique() if profiles is not None and len(profiles) else 0, ""),
                  ("learning wishes", len(wishes) if wishes is not None else 0, ""),
                  ("mentorships", len(matches) if matches is not None else 0, "matched"),
                  ("cross-team", f"{pct(matches['cross_team'].mean()) if matches is not None and len(matches) else 0}%", "of mentorships"),
                  ("gig seats filled", int(gigs["assigned"].sum()) if gigs is not None and len(gigs) else 0, "")])
        if profiles is not None and len(profiles):
            held = profiles.groupby("skill")["user_ref"].nunique()
            wanted = wishes.groupby("skill").size() if wishes is not None and len(wishes) else pd.Series(dtype=int)
            top = held.add(wanted, fill_value=0).sort_values(ascending=False).head(20).index
            doc.h2("Skills held and wanted")
            doc.figure(F.bars(top, {"people holding it": held.reindex(top, fill_value=0).tolist(),
                                    "people wanting to learn it": wanted.reindex(top, fill_value=0).tolist()},
                              horizontal=True, title="The 20 most common skills: held vs wanted", xtitle="People (count)",
                              ytitle="Skill"))
        if matches is not None and len(matches):
            per = matches.groupby("skill").agg(mentorships=("learner", "size"), cross=("cross_team", "mean")).sort_values("mentorships", ascending=False)
            doc.h2("Mentoring")
            doc.figure(F.bar(per.index[:20], per["mentorships"][:20], horizontal=True, title="Mentorships matched per skill",
                             xtitle="Mentorships (count)", ytitle="Skill"))
        if unmatched is not None and len(unmatched):
            reasons = unmatched["reason"].value_counts()
            doc.figure(F.bar(reasons.index, reasons.values, horizontal=True, title="Why learning wishes found no mentor",
                             xtitle="Wishes (count)", ytitle="Reason"))
        if gigs is not None and len(gigs):
            doc.h2("Gigs and embeds")
            staffed = gigs.groupby(["gig_id", "title", "gig_kind", "priority", "team"]).agg(
                candidates=("user_ref", "size"), assigned=("assigned", "sum")).reset_index()
            doc.table([Column("Gig"), Column("Kind"), Column("Priority"), Column("Team", "link"), Column("Candidates", "int"),
                       Column("Seats filled", "int")],
                      [[r.title, r.gig_kind, r.priority, ctx.team_link(r.team), r.candidates, int(r.assigned)] for r in staffed.itertuples()],
                      caption="Gigs and embeds, and how many seats the matching filled")
    doc.h2("Knowledge risks per team")
    if len(risks):
        by_team = risks.groupby(["group_ref", "risk"]).size().unstack(fill_value=0)
        worst = by_team.sum(axis=1).sort_values(ascending=False).head(25).index
        doc.figure(F.bars([ctx.group_name(g) for g in worst], {r: by_team.loc[worst, r].tolist() for r in by_team.columns},
                          stacked=True, horizontal=True, title="Skills a team depends on with one holder or none (top 25 teams)",
                          xtitle="Skills at risk (count)", ytitle="Team"))
        ordered = risks.sort_values(["severity", "entities"], ascending=[True, False])
        rows = [[ctx.team_link(r.group_ref), r.skill, r.risk, r.severity, r.holders, r.entities]
                for r in ordered.itertuples()]
        doc.table([Column("Team", "link"), Column("Skill"), Column("Risk"), Column("Severity"), Column("Holders", "int"),
                   Column("Entities needing it", "int")], rows, caption="Single points of knowledge and gaps (errors first)",
                  inline=TEAM_ROWS)
    else:
        doc.note("No knowledge risk.")
    if len(coverage):
        doc.h2("Skill coverage")
        doc.frame_table(coverage.assign(team=coverage["group_ref"].map(ctx.group_name)).sort_values("share"),
                        [("team", "Team", "text"), ("skill", "Skill", "text"), ("holders", "Holders", "int"),
                         ("advanced", "Advanced", "int"), ("members", "Members", "int"), ("share", "Share holding", "pct")],
                        caption="Share of each team's members (sub-teams included) holding a skill, lowest first", limit=TEAM_ROWS)
    out.doc = doc
    return out
