"""One page per team, and the teams index.

A team's figures cover what it owns directly and through its sub-groups (rolled up the hierarchy
with `OrgGraph.rollup_frame()`, as every per-team insight does). Everything is prepared with one
vectorised pass per source and then sliced per team, so a 4,000-group org costs seconds, not
minutes; tables are capped so that thousands of pages stay within the site's size budget.

Sections and the permission each needs on the team (a group resource):
what it owns, vulnerabilities, pipelines, tickets: `insights.team.read` (which also decides whether
the page exists); scorecards: `scorecard.read`; survey trend: `surveys.read.org` or
`surveys.read.team`; usage of its entities: `insights.usage.read`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

import pandas as pd

from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Column, Doc, drill, esc, link
from catalog_pipelines.model.insight_tables import FACTS, SCORECARDS, SURVEYS, USAGE, InsightTable
from dashboards.inputs import AREA_ASSETS, CATALOG_ASSET
from dashboards.pages.base import TEAM_SOURCES_ANCHOR, Ctx, PageOut, pct
from dashboards.pages.scorecards import certification_bars, check_names, track_names
from dashboards.pages.surveys import SUPPRESSED_HOVER
from catalog_pipelines.model.vocabulary import label, plural

TEAM_READ = "insights.team.read"
SCORECARD_READ = "scorecard.read"
SURVEYS_ORG, SURVEYS_TEAM = "surveys.read.org", "surveys.read.team"
USAGE_READ = "insights.usage.read"
ROOT = "../"
# Thousands of team pages share the 30 MB budget (~7 KB of body each, ~2 KB packed): a table embeds at most
# TEAM_INLINE rows and says "showing N of M"; its full rows go to a CSV file next to the page.
TEAM_INLINE = 8
LIST_LIMIT = 8  # rows per page of a table (the rest of the embedded rows page in the browser)
TOP_LIMIT = 3
ATTENTION_LIMIT = 5
# Drill-down anchors on a team page (scorecards, teams index and health pages link to them).
OWNED, ATTENTION, FAILING = "owned", "attention", "failing"
USAGE_TOP = 5
SURVEY_WAVES = 4
USAGE_WINDOW = 28
# The reason shown for a check without a failedMessage.
DEFAULT_REASON = "the check's rule is not met"
# Groups with sub-teams list their first rows and point to the sub-teams' pages, where each
# entity is listed in full (and exported), rather than exporting every entity again per level.
SUB_TEAMS_LIST = "Each sub-team's page lists its own in full."
FAILING_NAMES = 3  # entities named per failing check on a team page (all of them in its CSV)
VULN_LEVELS = [("open_critical", "critical"), ("open_high", "high"), ("open_medium", "medium"), ("open_low", "low")]


def team_slugs(groups: Iterable[str]) -> dict[str, str]:
    """Group ref → page path (`teams/<name>.html`, `teams/<namespace>--<name>.html` outside the
    default namespace); distinct refs always get distinct file names."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for ref in sorted(groups):
        _, _, rest = ref.partition(":")
        namespace, _, name = rest.partition("/")
        base = name if namespace == "default" else f"{namespace}--{name}"
        slug = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-.") or "team"
        candidate, n = slug, 1
        while candidate in used:
            n += 1
            candidate = f"{slug}-{n}"
        used.add(candidate)
        out[ref] = f"teams/{candidate}.html"
    return out


def page_groups(ctx: Ctx) -> list[str]:
    """The groups that get a page for this audience (every group on the operator's site)."""
    groups = sorted(ctx.inputs.org.all_groups())
    level = ctx.access.level(TEAM_READ)
    if level == ALL:
        return groups
    if level == NONE:
        return []
    return sorted(ctx.access.groups(TEAM_READ, groups))


def _records(frame: pd.DataFrame | None, key: str, columns: list[str], limit: int | None = None) -> dict[str, list[tuple]]:
    """`{key value: [row tuples of columns]}` in the frame's order, at most `limit` per key.

    One pass over plain lists: the per-team pages then never touch pandas, which is what keeps
    thousands of them fast."""
    out: dict[str, list[tuple]] = {}
    if frame is None or not len(frame):
        return out
    keys = frame[key].tolist()
    values = list(zip(*(frame[c].tolist() for c in columns)))
    for k, row in zip(keys, values):
        bucket = out.setdefault(k, [])
        if limit is None or len(bucket) < limit:
            bucket.append(row)
    return out


# What the team pages show, from the collected facts by fact name (any collector instance that
# emits it; docs/facts.md): scanners' vulnerabilities, CI (GitHub Actions or GitLab pipelines),
# Jira issues and PagerDuty incidents.
CI_STATUS_FACTS = ("last_workflow_conclusion", "last_pipeline_status")
CI_RATE_FACTS = ("workflow_success_rate", "pipeline_success_rate")
TICKET_FACTS = {"open_issues": "open_tickets", "open_incidents": "open_incidents", "incidents": "incidents_30d",
                "oldest_open_issue_days": "oldest_open_ticket_days"}


def collected_frames(long: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    """The long frame of collected facts (collector, entity_ref, observed_at, fact, value) as the
    three frames the pages read, one row per entity: vulnerabilities (open_critical ... open_low),
    CI (last_status, default_branch_success_rate), tickets (open_tickets, open_incidents,
    incidents_30d, oldest_open_ticket_days). None where no collector reports them."""
    if long is None or not len(long):
        return None, None, None
    long = long.sort_values("observed_at", kind="stable") if "observed_at" in long.columns else long

    def pick(names) -> pd.DataFrame:
        rows = long[long["fact"].isin(names)]
        return rows.drop_duplicates(["entity_ref", "fact"], keep="last")

    sev = pick(["vulnerabilities_by_severity"])
    vulns = None
    if len(sev):
        counts = [v if isinstance(v, dict) else {} for v in sev["value"]]
        vulns = pd.DataFrame({"entity_ref": sev["entity_ref"].to_numpy(),
                              **{col: [int(c.get(level) or 0) for c in counts] for col, level in VULN_LEVELS}})
        vulns = vulns.groupby("entity_ref", as_index=False).sum()
    status, rate = pick(CI_STATUS_FACTS), pick(CI_RATE_FACTS)
    ci = None
    if len(status):
        ci = pd.DataFrame({"entity_ref": status["entity_ref"].to_numpy(), "last_status": status["value"].astype(str).to_numpy()})
        ci = ci.drop_duplicates("entity_ref", keep="last")
        ci["default_branch_success_rate"] = ci["entity_ref"].map(rate.drop_duplicates("entity_ref", keep="last").set_index("entity_ref")["value"]).astype(float)
    rows = pick(list(TICKET_FACTS))
    tickets = None
    if len(rows):
        tickets = rows.pivot(index="entity_ref", columns="fact", values="value").rename(columns=TICKET_FACTS)
        tickets = tickets.reindex(columns=list(TICKET_FACTS.values())).apply(pd.to_numeric, errors="coerce").reset_index()
    return vulns, ci, tickets


def _sums(frame: pd.DataFrame | None, key: str, columns: list[str]) -> dict[str, tuple]:
    if frame is None or not len(frame):
        return {}
    summed = frame.groupby(key)[columns].sum()
    return dict(zip(summed.index, zip(*(summed[c].tolist() for c in columns))))


class TeamData:
    """Every source prepared once for all teams (rolled up), as plain Python lists and dicts."""

    def __init__(self, ctx: Ctx, groups: list[str]):
        self.ctx = ctx
        inputs = ctx.inputs
        wanted = set(groups)
        access = ctx.access
        self.allowed = {p: (wanted if access.level(p) == ALL else access.groups(p, groups) if access.level(p) != NONE else set())
                        for p in (SCORECARD_READ, SURVEYS_TEAM, USAGE_READ)}
        if access.all(SURVEYS_ORG):
            self.allowed[SURVEYS_TEAM] = wanted
        rollup = inputs.org.rollup_frame()
        rollup = rollup[rollup["rollup_ref"].isin(wanted)]
        entities = inputs.entities[["ref", "kind", "type", "lifecycle", "owner"]]
        entities = entities.assign(label=_short_refs(entities["ref"]))  # once per entity, not per roll-up row
        owned = entities[entities["owner"].notna()].merge(rollup, left_on="owner", right_on="group_ref")
        owned = owned.drop(columns="group_ref").rename(columns={"rollup_ref": "team"})
        # Sub-teams the audience may not see: their entities still count in the totals of a group
        # it may see (that group's own figure), but are not listed one by one.
        owned["listable"] = owned["owner"].isin(ctx.visible_groups) if access.restricted else True
        self.n_owned = owned.groupby("team").size().to_dict()
        kinds = owned.groupby(["team", "kind"]).size().reset_index(name="n").sort_values(["team", "n"], ascending=[True, False])
        self.kinds = _records(kinds, "team", ["kind", "n"])
        listed = owned[owned["listable"]].sort_values(["team", "kind", "ref"])
        names = {g: ctx.group_name(g) for g in listed["owner"].unique()}
        listed = listed.assign(owner_name=listed["owner"].map(names))
        self.n_listable = listed.groupby("team").size().to_dict()
        self.listed = _records(listed, "team", ["label", "kind", "type", "lifecycle", "owner_name"])
        base = owned[["ref", "label", "owner", "team", "listable"]]

        vulns, ci, tickets = (self._facts(base, frame) for frame in collected_frames(inputs.table(FACTS.collected_latest)))
        levels = [c for c, _ in VULN_LEVELS]
        self.vuln_totals = _sums(vulns, "team", levels) if vulns is not None else {}
        self.ci_status: dict[str, tuple[int, int, float]] = {}
        if ci is not None:
            ci = ci.assign(ok=(ci["last_status"].astype(str) == "success").astype(int))
            grouped = ci.groupby("team").agg(ok=("ok", "sum"), n=("ok", "size"), rate=("default_branch_success_rate", "mean"))
            self.ci_status = {t: (int(r.ok), int(r.n - r.ok), r.rate) for t, r in grouped.iterrows()}
        ticket_cols = ["open_tickets", "open_incidents", "incidents_30d"]
        if tickets is not None:
            self.ticket_totals = _sums(tickets.fillna({c: 0 for c in ticket_cols}), "team", ticket_cols)
            self.ticket_oldest = tickets.groupby("team")["oldest_open_ticket_days"].max().to_dict()
        else:
            self.ticket_totals, self.ticket_oldest = {}, {}
        self.attention, self.n_attention = self._attention(base, vulns, ci, tickets)

        self.tracks, self.check_names = track_names(ctx), check_names(ctx)
        info = inputs.table(SCORECARDS.checks)
        has = lambda c: info is not None and c in info.columns  # noqa: E731
        self.reasons = dict(zip(info["check_id"], info["failed_message"].fillna(""))) if has("failed_message") else {}
        self.hints = dict(zip(info["check_id"], info["fix_hint"].fillna(""))) if has("fix_hint") else {}
        track_levels = inputs.table(SCORECARDS.tracks)
        self.check_level: dict[str, tuple[str, int]] = (
            {c: (self.tracks.get(t, t), int(lv)) for c, t, lv in zip(track_levels["check_id"], track_levels["track_id"], track_levels["level"])}
            if track_levels is not None and len(track_levels) else {})
        sc = lambda table: _scope(inputs.table(table), self.allowed[SCORECARD_READ])
        self.levels: dict[str, dict[str, dict[int, tuple[float, str]]]] = {}
        levels_frame = sc(SCORECARDS.rollup_levels)
        if levels_frame is not None:
            for team, track, level, share, name in zip(levels_frame["scope_ref"].tolist(), levels_frame["track_id"].tolist(),
                                                       levels_frame["level"].tolist(), levels_frame["share"].tolist(),
                                                       levels_frame["level_name"].astype(str).tolist()):
                self.levels.setdefault(team, {}).setdefault(self.tracks.get(track, track), {})[int(level)] = (float(share), name)
        summary = sc(SCORECARDS.rollup_summary)
        self.mean_level = summary.groupby("scope_ref")["mean_level"].mean().to_dict() if summary is not None else {}
        fix = inputs.table(SCORECARDS.fix_next)
        if fix is not None and len(fix):
            fix = fix[fix["scope_ref"].isin(self.allowed[SCORECARD_READ]) & (fix["rank"] <= TOP_LIMIT)].sort_values(["scope_ref", "rank"])
        self.fix = _records(fix, "scope_ref", ["rank", "check_id", "track_id", "level", "entities", "levels_unlocked"])
        self.failing, self.n_failing = self._failing(entities)
        # Per group and check, its entities (sub-teams included) whose result is not passed: the
        # rows that lead from a department's page to each sub-team's failing entities.
        checks_frame = sc(SCORECARDS.rollup_checks)
        self.not_passed: dict[str, list[tuple[str, int]]] = {}
        if checks_frame is not None and len(checks_frame):
            states = [c for c in ("failed", "warning", "not_reported", "error") if c in checks_frame.columns]
            n = checks_frame[states].fillna(0).sum(axis=1).astype(int)
            for team, check, count in zip(checks_frame["scope_ref"].tolist(), checks_frame["check_id"].tolist(), n.tolist()):
                if count > 0:
                    self.not_passed.setdefault(team, []).append((check, count))

        trends = inputs.table(SURVEYS.trends)
        waves = inputs.table(SURVEYS.waves)
        self.surveys: dict[str, dict[tuple[str, str], tuple[object, bool]]] = {}
        self.survey_waves: list[str] = []
        self.wave_title: dict[str, str] = {}
        self.dimensions: dict[str, str] = {}
        if trends is not None and len(trends):
            trends = trends[(trends["metric"] == "mean") & trends["group_ref"].isin(self.allowed[SURVEYS_TEAM])]
            hidden = (trends["suppressed"].fillna(False).astype(bool) | trends["value"].isna()).tolist()
            for team, dim, wave, value, sup in zip(trends["group_ref"].tolist(), trends["dimension"].tolist(),
                                                   trends["wave"].tolist(), trends["value"].tolist(), hidden):
                self.surveys.setdefault(team, {})[(dim, wave)] = (None if sup else value, sup)
            self.dimensions = dict(sorted(zip(trends["dimension"], trends["dimension_title"].astype(str)), key=lambda d: d[1]))
            if waves is not None and len(waves):
                ordered = waves.sort_values("wave_order")
                self.survey_waves = ordered["wave"].tolist()
                self.wave_title = dict(zip(ordered["wave"], ordered["wave_title"].astype(str)))
            else:
                self.survey_waves = sorted(trends["wave"].unique())

        self.usage = self._usage(base)
        adoption = inputs.table(USAGE.adoption)
        self.adoption = {}
        if adoption is not None and len(adoption):
            adoption = adoption[adoption["group_ref"].isin(self.allowed[USAGE_READ])]
            window = adoption["window_days"] if "window_days" in adoption.columns else pd.Series(USAGE_WINDOW, index=adoption.index)
            self.adoption = {g: (bool(s), a, sh, int(w)) for g, s, a, sh, w in zip(
                adoption["group_ref"], adoption["suppressed"].fillna(False), adoption["active_members"], adoption["share"], window)}

        from dashboards.pages.delivery import DeliveryData

        self.delivery = DeliveryData(ctx, groups)  # the "Delivery" and "Source control" sections
        self.members_direct = {g: len(m) for g, m in inputs.org.direct_members.items()}
        children: dict[str, list[str]] = {}
        for child, parent in inputs.org.parent.items():
            children.setdefault(parent, []).append(child)
        self.children = children
        memberships = inputs.org.membership_frame()
        self.rollup_members = (rollup.merge(memberships, on="group_ref").groupby("rollup_ref")["user_ref"].nunique().to_dict()
                               if len(memberships) else {})

    def _facts(self, base: pd.DataFrame, facts: pd.DataFrame | None) -> pd.DataFrame | None:
        if facts is None or not len(facts):
            return None
        # "Latest" means one row per entity; if a table holds more (two collections stamped apart),
        # keep the newest so that no entity is counted twice.
        if "collected_at" in facts.columns:
            facts = facts.sort_values("collected_at", kind="stable")
        facts = facts.drop_duplicates("entity_ref", keep="last").drop(columns=["collected_at"], errors="ignore")
        return base.merge(facts, left_on="ref", right_on="entity_ref")

    def _attention(self, base: pd.DataFrame, vulns, ci, tickets) -> tuple[dict[str, list[tuple]], dict[str, int]]:
        """Per team, its listable entities with open critical/high findings, a failing pipeline or
        open tickets, worst first."""
        frame = base[base["listable"]][["ref", "label", "team"]]
        for facts, columns in ((vulns, ["open_critical", "open_high"]), (ci, ["last_status"]), (tickets, ["open_tickets"])):
            if facts is not None and set(columns) <= set(facts.columns):
                frame = frame.merge(facts[["ref", "team", *columns]], on=["ref", "team"], how="left")
            else:
                for column in columns:
                    frame[column] = None
        failing = frame["last_status"].notna() & (frame["last_status"].astype(str) != "success")
        frame = frame.assign(failing=failing.astype(int))
        worry = (frame["open_critical"].fillna(0) + frame["open_high"].fillna(0) > 0) | failing | (frame["open_tickets"].fillna(0) > 0)
        frame = frame[worry].sort_values(["team", "open_critical", "open_high", "failing", "open_tickets"],
                                         ascending=[True, False, False, False, False], na_position="last")
        return (_records(frame, "team", ["label", "open_critical", "open_high", "last_status", "open_tickets"]),
                frame.groupby("team").size().to_dict())

    def _failing(self, entities: pd.DataFrame) -> tuple[dict[str, dict[str, list[str]]], dict[str, int]]:
        """Per group and check, the entities it owns *directly* whose result is not passed (failed,
        warning, not reported, error; a state other than failed is named after the entity).
        Sub-teams' entities are listed on their own pages: every failing result is listed once."""
        results = self.ctx.inputs.table(SCORECARDS.results)
        if results is None or not len(results):
            return {}, {}
        owners = entities[["ref", "label", "owner"]]
        owners = owners[owners["owner"].isin(self.allowed[SCORECARD_READ])]
        if self.ctx.access.restricted:
            owners = owners[owners["owner"].isin(self.ctx.visible_groups)]
        frame = results[["entity_ref", "check_id", "state"]].merge(owners, left_on="entity_ref", right_on="ref")
        if not len(frame):
            return {}, {}
        state = frame["state"].astype(str)
        label = frame["label"].where(state == "failed", frame["label"] + " (" + state.str.replace("_", " ") + ")")
        frame = frame.assign(label=label, check_id=frame["check_id"].astype(str)).sort_values(["owner", "check_id", "label"])
        out: dict[str, dict[str, list[str]]] = {}
        for owner, check, name in zip(frame["owner"].tolist(), frame["check_id"].tolist(), frame["label"].tolist()):
            out.setdefault(owner, {}).setdefault(check, []).append(name)
        return out, frame.groupby("owner").size().to_dict()

    def _usage(self, base: pd.DataFrame) -> dict[str, list[tuple]]:
        reach = self.ctx.inputs.table(USAGE.reach)
        meta = self.ctx.inputs.table(USAGE.meta)
        if reach is None or not len(reach) or meta is None or not len(meta):
            return {}
        end = pd.Timestamp(meta["as_of"].iloc[0])
        rows = reach[reach["dimension"] == "entity"]
        seen = pd.to_datetime(rows["last_seen"])
        rows = rows[(seen > end - timedelta(days=USAGE_WINDOW)) & (seen <= end)]
        users = rows.groupby("key", as_index=False)["users"].sum()
        joined = base[base["team"].isin(self.allowed[USAGE_READ]) & base["listable"]].merge(users, left_on="ref", right_on="key")
        joined = joined.sort_values(["team", "users"], ascending=[True, False])
        return _records(joined, "team", ["label", "users"], USAGE_TOP)


def _short_refs(refs: pd.Series) -> pd.Series:
    """`component:default/payments` → `payments` (the kind has its own column); other namespaces kept."""
    return refs.str.replace(r"^[^:]*:(?:default/)?", "", regex=True)


def _scope(frame: pd.DataFrame | None, wanted: set[str]) -> pd.DataFrame | None:
    if frame is None or not len(frame) or "scope_type" not in frame.columns:
        return None
    return frame[(frame["scope_type"] == "group") & frame["scope_ref"].isin(wanted)]


def team_pages(ctx: Ctx) -> tuple[list[PageOut], TeamData | None]:
    groups = page_groups(ctx)
    if not groups:
        return [], None
    data = TeamData(ctx, groups)
    sources = [CATALOG_ASSET, *AREA_ASSETS[FACTS], *AREA_ASSETS[SCORECARDS], *AREA_ASSETS[SURVEYS], *AREA_ASSETS[USAGE]]
    freshness = ctx.materialized(sources)
    fresh = ctx.freshness_of(sources)
    pages = []
    for ref in groups:
        name = ctx.group_name(ref)
        out = PageOut(f"team:{ref}", name, ctx.team_pages[ref], f"What {name} owns and how it is doing.",
                      sources=sources, freshness=freshness, fresh=fresh)
        out.partial = ctx.access.restricted
        out.doc = team_doc(ctx, data, ref)
        info = ctx.inputs.org.groups.get(ref, {})
        out.subtitle = f"{info.get('type') or 'group'} · {ref}"
        pages.append(out)
    return pages, data


def team_doc(ctx: Ctx, data: TeamData, ref: str) -> Doc:
    doc = Doc(layouts=ctx.layouts, stem=ctx.team_pages[ref].rsplit("/", 1)[-1].removesuffix(".html"))
    parent = ctx.inputs.org.parent.get(ref)
    vulns, tickets, ci = data.vuln_totals.get(ref), data.ticket_totals.get(ref), data.ci_status.get(ref)
    kinds = data.kinds.get(ref) or []
    doc.kpis([("members", data.rollup_members.get(ref, 0), f"{data.members_direct.get(ref, 0)} direct"),
              ("entities owned", data.n_owned.get(ref, 0), "with sub-teams" if ref in data.children else "")]
             + [(plural(label(kind)), n, "") for kind, n in kinds[:5]])
    parts = []
    if parent and parent in ctx.team_pages:
        parts.append(f'Part of: <a href="{esc(ROOT + ctx.team_pages[parent])}">{esc(ctx.group_name(parent))}</a>')
    subs = [c for c in sorted(data.children.get(ref, [])) if c in ctx.team_pages]
    if subs:
        parts.append("Teams: " + ", ".join(f'<a href="{esc(ROOT + ctx.team_pages[c])}">{esc(ctx.group_name(c))}</a>' for c in subs))
    if parts:
        doc.raw('<p class="related">' + " · ".join(parts) + "</p>")
    jumps = [(OWNED, "entities")] if kinds else []
    if data.n_failing.get(ref) or data.children.get(ref):
        jumps.append((FAILING, "failing checks"))
    if data.n_attention.get(ref):
        jumps.append((ATTENTION, "needing attention"))
    if jumps:
        doc.raw('<p class="related">Jump to: ' + " · ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in jumps) + "</p>")

    doc.h2("What it owns")
    if kinds:
        rows = data.listed.get(ref, [])
        columns = [Column("Entity"), Column("Kind", shared=True), Column("Type", shared=True), Column("Lifecycle", shared=True)]
        if ref in data.children:  # a group with sub-teams: say which one owns each entity
            columns.append(Column("Owner"))
        else:
            rows = [r[:4] for r in rows]
        doc.table(columns, rows, caption="Entities owned" + (" (by the group or its sub-teams)" if ref in data.children else ""),
                  total=data.n_listable.get(ref, 0), page_size=LIST_LIMIT, inline=TEAM_INLINE, anchor=OWNED,
                  export=False if ref in data.children else "entities", more=SUB_TEAMS_LIST)
    else:
        doc.note("Owns no entity in the catalog.")
    _scorecards(ctx, data, ref, doc)

    doc.h2("Open vulnerabilities")
    if vulns is not None:
        doc.kpis([(label, n, "") for (_, label), n in zip(VULN_LEVELS, vulns)])
    else:
        doc.note("No vulnerability scan covers this team's entities.")
    doc.h2("Pipelines")
    if ci is not None:
        doc.kpis([("last run succeeded", ci[0], ""), ("last run did not", ci[1], ""), ("success rate, 30 days", f"{pct(ci[2])}%", "")])
    else:
        doc.note("No CI data for this team's entities.")
    doc.h2("Tickets and incidents")
    if tickets is not None:
        doc.kpis([("open Jira issues", tickets[0], ""), ("open incidents", tickets[1], ""), ("incidents, look-back window", tickets[2], ""),
                  ("oldest open issue, days", data.ticket_oldest.get(ref), "")])
    else:
        doc.note("No ticket data for this team's entities.")
    attention = data.attention.get(ref)
    if attention:
        doc.table([Column("Entity"), Column("Critical", "int"), Column("High", "int"), Column("Last CI run"), Column("Open tickets", "int")],
                  attention, caption="Entities with critical or high vulnerabilities, failing CI or open tickets, worst first",
                  total=data.n_attention.get(ref, 0), page_size=ATTENTION_LIMIT, inline=ATTENTION_LIMIT, anchor=ATTENTION,
                  export=False if ref in data.children else "attention", more=SUB_TEAMS_LIST)
    from dashboards.pages.delivery import team_sections

    team_sections(ctx, data.delivery, ref, doc)
    _survey(data, ref, doc)
    _usage(data, ref, doc)
    return doc


def _scorecards(ctx: Ctx, data: TeamData, ref: str, doc: Doc) -> None:
    if ref not in data.allowed[SCORECARD_READ]:
        return
    doc.h2("Scorecards")
    levels = data.levels.get(ref)
    if not levels:
        doc.note("No scorecard results for this team's entities.")
        return
    doc.figure(certification_bars(levels, "Entities at each certification level, per track", names=False), shared=True)
    fix = data.fix.get(ref)
    if fix:
        rows = [[rank, data.check_names.get(c, c), data.tracks.get(t, t), level,
                 link(entities, drill("", FAILING, data.check_names.get(c, c))), unlocked]
                for rank, c, t, level, entities, unlocked in fix]
        doc.table([Column("Rank", "int"), Column("Check", shared=True), Column("Track", shared=True), Column("Level", "int"), Column("Failing entities", "int"),
                   Column("Levels unlocked", "num")], rows, caption="What to fix next", page_size=TOP_LIMIT,
                  note=LEVELS_UNLOCKED_NOTE)
    own = data.failing.get(ref) or {}
    subs = [c for c in sorted(data.children.get(ref, [])) if c in ctx.team_pages and c in data.allowed[SCORECARD_READ]]
    via: dict[str, list] = {}
    for child in subs:  # per check, each sub-team with failing entities, linking to its list
        for check, count in data.not_passed.get(child, []):
            via.setdefault(check, []).append(
                link(f"{ctx.group_name(child)} ({count:,})", drill(ROOT + ctx.team_pages[child], FAILING, data.check_names.get(check, check))))
    checks = sorted(set(own) | set(via), key=lambda c: (*data.check_level.get(c, ("", 0)), data.check_names.get(c, c)))
    if checks:
        # A page names at most FAILING_NAMES entities per check (4,000 pages share the size budget);
        # the full list, one row per entity and check with its reason, is a CSV next to the page.
        csv = None
        if any(len(own.get(c, [])) > FAILING_NAMES for c in checks):
            # Entity and check only: the reason and the fix are the check's, on its row of the page.
            csv = doc.export("failing", [Column("Entity"), Column("Check")],
                             [(e, data.check_names.get(c, c)) for c in checks for e in own.get(c, [])])

        def names(c: str) -> str | None:
            listed = own.get(c, [])
            more = len(listed) - FAILING_NAMES
            return (", ".join(listed[:FAILING_NAMES]) + (f" … and {more:,} more (CSV)" if more > 0 else "")) or None

        rows = [[data.check_names.get(c, c), data.check_level.get(c, ("", None))[1], data.reasons.get(c) or DEFAULT_REASON, data.hints.get(c, ""),
                 names(c), via.get(c) or None] for c in checks]
        columns = [Column("Check", shared=True), Column("Level", "int"), Column("Reason", shared=True), Column("How to fix", shared=True),
                   Column("Its failing entities")]
        if subs:
            columns.append(Column("Sub-teams' failing entities"))
        else:
            rows = [r[:5] for r in rows]
        doc.table(columns, rows, caption="Failing scorecard checks and the entities behind them", page_size=LIST_LIMIT,
                  anchor=FAILING,
                  note="Checks its entities did not pass in the latest evaluation." + (" Click a sub-team for its list." if subs else ""))
        if csv:
            doc.raw(f'<p class="explain"><a class="export" href="{esc(csv)}" download>All {data.n_failing.get(ref, 0):,} '
                    "failing results of its own entities (CSV, gzip: entity, check)</a></p>")


LEVELS_UNLOCKED_NOTE = "Levels unlocked: summed over its entities; a level two checks block counts half for each."


def _survey(data: TeamData, ref: str, doc: Doc) -> None:
    cells = data.surveys.get(ref)
    if not cells:
        return
    doc.h2("Survey trend")
    waves = [w for w in data.survey_waves if any((d, w) in cells for d in data.dimensions)][-SURVEY_WAVES:]
    z, sup = [], []
    for dim in data.dimensions:
        row = [cells.get((dim, w)) for w in waves]
        z.append([None if c is None else c[0] for c in row])
        sup.append([bool(c is not None and c[1]) for c in row])
    if not any(v is not None for r in z for v in r):
        doc.note("Every survey figure for this team is suppressed (fewer respondents than the anonymity threshold).")
        return
    doc.figure(F.heatmap([data.wave_title.get(w, w) for w in waves], list(data.dimensions.values()), z,
                         title=f"Mean survey score per dimension, last {len(waves)} waves", xtitle="Wave", ytitle="Dimension",
                         colorbar="Mean score (1–5)", colorscale="RdBu", reverse=True, zmin=1, zmax=5, suppressed=sup,
                         suppressed_label=SUPPRESSED_HOVER, digits=2), shared=True)


def _usage(data: TeamData, ref: str, doc: Doc) -> None:
    if ref not in data.allowed[USAGE_READ]:
        return
    top, adoption = data.usage.get(ref), data.adoption.get(ref)
    if not top and adoption is None:
        return
    doc.h2("Usage of its entities")
    if adoption is not None:
        hidden, active, share, window = adoption
        doc.kpis([(f"members active, {window} days", "suppressed" if hidden else active, ""),
                  ("share active", "suppressed" if hidden else f"{pct(share)}%", "")])
    if top:
        doc.table([Column("Entity"), Column(f"People, last {USAGE_WINDOW} days", "int")], top,
                  caption="Its most used entities in the portal", page_size=USAGE_TOP)


def teams_index(ctx: Ctx, pages: list[PageOut], data: TeamData | None) -> PageOut:
    out = ctx.page("teams", "Teams", "teams.html", "One page per team: what it owns, scorecards, vulnerabilities, "
                   "pipelines, tickets, survey trend, usage of its entities.", [CATALOG_ASSET])
    if not pages or data is None:
        if ctx.access.level(TEAM_READ) == NONE or ctx.inputs.org.all_groups():
            return ctx.denied(out, TEAM_READ)
        return ctx.no_data(out, ["Group entities"])
    out.partial = ctx.access.restricted and ctx.access.level(TEAM_READ) != ALL
    doc = Doc(stem="teams")
    rows = []
    for page in pages:
        ref = page.key.split(":", 1)[1]
        info = ctx.inputs.org.groups.get(ref, {})
        vulns, tickets = data.vuln_totals.get(ref), data.ticket_totals.get(ref)
        parent = ctx.inputs.org.parent.get(ref)
        rows.append([link(page.title, page.path), info.get("type"), ctx.group_name(parent) if parent in ctx.team_pages else None,
                     data.rollup_members.get(ref, 0), link(data.n_owned.get(ref, 0), drill(page.path, OWNED)), data.mean_level.get(ref),
                     None if vulns is None else vulns[0] + vulns[1], None if tickets is None else tickets[0]])
    doc.table([Column("Team", "link"), Column("Type"), Column("Part of"), Column("Members", "int"), Column("Entities", "int"),
               Column("Mean level", "num"), Column("Critical + high vulns", "int"), Column("Open tickets", "int")], rows,
              caption="Teams (figures include sub-teams)", page_size=50,
              note="Entities: owned by the team or its sub-teams (click for the list). Mean level: the average "
                   "certification level of those entities over every scorecard track (0 = not certified). Critical + "
                   "high vulns and open tickets: from the latest collected facts of those entities.")
    # The team pages name their sources by a link here (one list, not 4,000 copies).
    sources = list(dict.fromkeys(a for page in pages for a in page.sources))
    doc.raw(f'<p class="explain" id="{TEAM_SOURCES_ANCHOR}">Every team page is built from: '
            + ", ".join(f"<code>{esc(a)}</code>" for a in sources) + "; each page gives their freshness.</p>")
    out.doc = doc
    return out
