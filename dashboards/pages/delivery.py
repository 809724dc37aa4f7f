"""Delivery (tables `insight_delivery_*`, analytics/delivery, docs/delivery.md): the team pages'
"Delivery" and "Source control" sections, and the organisation's delivery page.

- Delivery: DORA's four keys over the rolling window with their band, the previous window and a
  trend, and a text sparkline of the last weeks (weeks without deployments are zeros, weeks with
  too few events a gap); PR cycle time and its parts (median, p75, p90); the stalest open PRs
  with links. A figure on fewer events than configured says "not enough data" instead.
- Source control: the repositories the team's entities live in, default-branch protection and
  open pull requests from the GitHub / GitLab collectors' facts, the last merge and deployment
  from the delivery events.
- `delivery.html`: the organisation's four keys and weekly series, and teams compared only with
  teams at the same level of the hierarchy and only when they have at least `compare_min_entities`
  deploying entities (no four-entity team ranked first).

Permissions: the team sections follow the team page (`insights.team.read`); the org page needs
the same permission for the whole organisation, and a restricted audience sees only its teams.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from catalog_pipelines.model.insight_tables import DELIVERY, FACTS
from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Column, Doc, link
from dashboards.inputs import AREA_ASSETS, CATALOG_ASSET
from dashboards.pages.base import Ctx, PageOut, missing_tables

PERMISSION = "insights.team.read"
METRICS = {"deployment_frequency": "Deployment frequency", "lead_time": "Lead time for changes",
           "change_failure_rate": "Change failure rate", "time_to_restore": "Time to restore"}
WEEKLY = {"deployment_frequency": "deployments", "lead_time": "lead_time", "change_failure_rate": "change_failure_rate",
          "time_to_restore": "time_to_restore"}
PR_PARTS = {"cycle_time": "Cycle time (created → merged)", "time_to_first_review": "Time to first review",
            "review_to_approval": "First review → approval", "approval_to_merge": "Approval → merge", "size": "Size (lines changed)"}
TREND = {"improving": "↑ improving", "worsening": "↓ worsening", "flat": "→ flat"}
BARS = "▁▂▃▄▅▆▇█"
REPO_LIMIT = 8
STALE_SHOWN = 5


def fmt(value: Any, unit: str | None) -> str | None:
    """A figure in its unit: deployments per week, hours (as days past 48 h), a share in %."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    v = float(value)
    if unit == "per week":
        return f"{v:.2f}/week" if v < 7 else f"{v / 7:.1f}/day"
    if unit == "hours":
        return f"{v:.1f} h" if v < 48 else f"{v / 24:.1f} d"
    if unit == "share":
        return f"{100 * v:.1f}%"
    if unit == "lines":
        return f"{v:.0f}"
    return f"{v:.2f}"


def sparkline(values: list[Any]) -> str:
    """Unicode bars, one per week ("·" for a week without a figure), scaled to the series' max."""
    known = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    top = max(known) if known else 0.0
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append("·")
        else:
            out.append(BARS[0] if top <= 0 else BARS[min(len(BARS) - 1, int(float(v) / top * (len(BARS) - 1) + 0.5))])
    return "".join(out)


def _str(frame: pd.DataFrame, column: str) -> list:
    return frame[column].astype(object).where(frame[column].notna(), None).tolist()


class DeliveryData:
    """The delivery tables sliced per scope once (plain dicts), for thousands of team pages."""

    def __init__(self, ctx: Ctx, groups: list[str] | None = None):
        inputs = ctx.inputs
        self.available = inputs.has(DELIVERY.dora_summary)
        self.keys: dict[tuple[str, str], list[tuple]] = {}
        self.weekly: dict[tuple[str, str], dict[str, list]] = {}
        self.weeks: list[Any] = []
        self.flow: dict[tuple[str, str], list[tuple]] = {}
        self.summary: dict[tuple[str, str], tuple] = {}
        self.stale: dict[tuple[str, str], list[tuple]] = {}
        self.window = ""
        meta = inputs.table(DELIVERY.meta)
        self.min_entities = int(meta["compare_min_entities"].iloc[0]) if meta is not None and len(meta) and "compare_min_entities" in meta else 5
        wanted = set(groups) | {"org"} if groups is not None else None

        def scoped(frame: pd.DataFrame | None, team_only: bool = True) -> pd.DataFrame | None:
            if frame is None or not len(frame):
                return None
            types = frame["scope_type"].astype(str)
            f = frame[(types != "entity") if team_only else types.notna()]
            if wanted is not None:
                f = f[f["scope_ref"].astype(str).isin(wanted)]
            return f

        s = scoped(inputs.table(DELIVERY.dora_summary))
        if s is not None and len(s):
            self.window = f"{s['window_start'].iloc[0]} .. {s['window_end'].iloc[0]}"
            for row in zip(_str(s, "scope_type"), _str(s, "scope_ref"), _str(s, "metric"), _str(s, "value"), _str(s, "unit"),
                           _str(s, "band"), _str(s, "previous_value"), _str(s, "trend"), _str(s, "events"), _str(s, "excluded"),
                           _str(s, "reason")):
                self.keys.setdefault((row[0], row[1]), []).append(row[2:])
        w = scoped(inputs.table(DELIVERY.dora_weekly))
        if w is not None and len(w):
            self.weeks = sorted(pd.unique(w["week"]))
            position = {wk: i for i, wk in enumerate(self.weeks)}
            for t, r, m, wk, v in zip(_str(w, "scope_type"), _str(w, "scope_ref"), _str(w, "metric"), w["week"].tolist(), _str(w, "value")):
                series = self.weekly.setdefault((t, r), {}).setdefault(m, [None] * len(self.weeks))
                series[position[wk]] = v
        f = scoped(inputs.table(DELIVERY.pr_flow))
        if f is not None and len(f):
            for row in zip(_str(f, "scope_type"), _str(f, "scope_ref"), _str(f, "metric"), _str(f, "unit"), _str(f, "p50"),
                           _str(f, "p75"), _str(f, "p90"), _str(f, "events"), _str(f, "reason")):
                self.flow.setdefault((row[0], row[1]), []).append(row[2:])
        p = scoped(inputs.table(DELIVERY.pr_summary))
        if p is not None and len(p):
            for row in zip(_str(p, "scope_type"), _str(p, "scope_ref"), _str(p, "merged"), _str(p, "merged_without_review"),
                           _str(p, "share_merged_without_review"), _str(p, "open_prs"), _str(p, "stale_prs")):
                self.summary[(row[0], row[1])] = row[2:]
        st = scoped(inputs.table(DELIVERY.stale_prs))
        if st is not None and len(st):
            st = st.sort_values(["scope_ref", "rank"])
            for row in zip(_str(st, "scope_type"), _str(st, "scope_ref"), _str(st, "entity_ref"), _str(st, "url"),
                           _str(st, "number"), _str(st, "age_days"), _str(st, "draft")):
                bucket = self.stale.setdefault((row[0], row[1]), [])
                if len(bucket) < STALE_SHOWN:
                    bucket.append(row[2:])
        self.repos: dict[str, list[tuple]] = {}
        self.repo_totals: dict[str, tuple] = {}
        if groups is not None:
            self._source_control(ctx, groups)

    def _source_control(self, ctx: Ctx, groups: list[str]) -> None:
        inputs = ctx.inputs
        sc = inputs.table(DELIVERY.source_control)
        facts = inputs.table(FACTS.collected_latest)
        rows = []
        if sc is not None and len(sc):
            rows.append(sc[["entity_ref", "repository", "source", "open_prs", "last_merge_at", "last_deploy_at"]])
        frame = pd.concat(rows) if rows else pd.DataFrame(columns=["entity_ref", "repository", "source", "open_prs", "last_merge_at", "last_deploy_at"])
        if facts is not None and len(facts):
            picked = facts[facts["fact"].isin(["default_branch_protected", "open_pull_requests", "open_merge_requests"])]
            picked = picked.sort_values("observed_at", kind="stable").drop_duplicates(["entity_ref", "fact"], keep="last")
            wide = picked.pivot(index="entity_ref", columns="fact", values="value")
            frame = frame.merge(wide, left_on="entity_ref", right_index=True, how="outer") if len(wide) else frame
            if "entity_ref" not in frame.columns or frame["entity_ref"].isna().any():
                frame["entity_ref"] = frame["entity_ref"].fillna(pd.Series(frame.index, index=frame.index)) if "entity_ref" in frame else frame.index
            # the outer merge on the facts' index leaves an index named `entity_ref` beside the
            # column: the merges below would find the name twice
            frame = frame.reset_index(drop=True)
        if not len(frame):
            return
        for column in ("default_branch_protected", "open_pull_requests", "open_merge_requests"):
            if column not in frame.columns:
                frame[column] = None
        # open PRs: the collector's count when it has one, else the events'
        open_fact = pd.to_numeric(frame["open_pull_requests"], errors="coerce").fillna(pd.to_numeric(frame["open_merge_requests"], errors="coerce"))
        frame["open"] = open_fact.fillna(pd.to_numeric(frame["open_prs"], errors="coerce"))
        rollup = inputs.org.rollup_frame()
        rollup = rollup[rollup["rollup_ref"].isin(set(groups))]
        owners = inputs.entities[["ref", "owner"]].dropna()
        owned = owners.merge(rollup, left_on="owner", right_on="group_ref").merge(frame, left_on="ref", right_on="entity_ref")
        if not len(owned):
            return
        owned = owned.sort_values(["rollup_ref", "last_merge_at"], ascending=[True, False], na_position="last")
        protected = owned["default_branch_protected"].map(lambda v: None if v is None or v != v else bool(v))
        owned = owned.assign(protected=protected)
        for team, part in owned.groupby("rollup_ref", sort=False):
            known = part["protected"].dropna()
            self.repo_totals[team] = (len(part), int(known.sum()), len(known), part["open"].sum(min_count=1),
                                      part["last_merge_at"].max())
            self.repos[team] = list(zip(part["ref"].str.replace(r"^[^:]*:(?:default/)?", "", regex=True).tolist(),
                                        _str(part, "repository"), part["protected"].map({True: "yes", False: "no"}).tolist(),
                                        _str(part, "open"), [None if pd.isna(v) else str(v)[:10] for v in part["last_merge_at"]],
                                        [None if pd.isna(v) else str(v)[:10] for v in part["last_deploy_at"]]))[:REPO_LIMIT]


def _keys_table(doc: Doc, data: DeliveryData, scope: tuple[str, str], caption: str) -> bool:
    keys = data.keys.get(scope)
    if not keys:
        return False
    weekly = data.weekly.get(scope, {})
    kpis, rows = [], []
    for metric, value, unit, band, previous, trend, events, excluded, reason in sorted(keys, key=lambda k: list(METRICS).index(k[0])):
        shown = fmt(value, unit)
        kpis.append((METRICS[metric], shown if shown is not None else "not enough data", band or ""))
        note = reason or ""
        if metric == "lead_time" and excluded:
            note = (note + "; " if note else "") + f"{int(excluded)} deployment{'s' if excluded != 1 else ''} with no linked change excluded"
        if metric == "time_to_restore" and excluded:
            note = (note + "; " if note else "") + f"{int(excluded)} unresolved incident{'s' if excluded != 1 else ''} excluded"
        rows.append([METRICS[metric], shown or "not enough data", band, fmt(previous, unit), TREND.get(trend or "", trend),
                     sparkline(weekly.get(WEEKLY[metric], [])), None if events is None else int(events), note or None])
    doc.kpis(kpis)
    doc.table([Column("Metric"), Column("Value"), Column("Band"), Column("Previous window"), Column("Trend"),
               Column(f"Last {len(data.weeks)} weeks"), Column("Events", "int"), Column("Note")], rows, caption=caption, page_size=4)
    return True


def _flow_table(doc: Doc, data: DeliveryData, scope: tuple[str, str]) -> None:
    flow = data.flow.get(scope)
    if flow:
        order = list(PR_PARTS)
        rows = [[PR_PARTS.get(m, m), fmt(p50, unit) or (reason or "not enough data"), fmt(p75, unit), fmt(p90, unit),
                 None if n is None else int(n)] for m, unit, p50, p75, p90, n, reason in sorted(flow, key=lambda r: order.index(r[0]))]
        doc.table([Column("Part"), Column("Median"), Column("p75"), Column("p90"), Column("Merged PRs", "int")], rows,
                  caption="Pull-request cycle time and its parts (PRs merged in the window)", page_size=5)
    summary = data.summary.get(scope)
    if summary:
        merged, unreviewed, share, open_prs, stale = summary
        doc.kpis([("merged PRs", merged, ""), ("merged without review", unreviewed, fmt(share, "share") or ""),
                  ("open PRs", open_prs, ""), ("stale PRs", stale, "open past the stale threshold")])


def _team_keys(doc: Doc, data: DeliveryData, scope: tuple[str, str]) -> bool:
    """The four keys as headline figures: value, and under it band · trend · weekly sparkline
    (compact: thousands of team pages share the site's size budget; the tables are on
    `delivery.html` and in `catalog-pipelines delivery show`)."""
    keys = data.keys.get(scope)
    if not keys:
        return False
    weekly = data.weekly.get(scope, {})
    arrows = {"improving": "↑", "worsening": "↓", "flat": "→"}
    kpis = []
    for metric, value, unit, band, _previous, trend, _events, _excluded, _reason in sorted(keys, key=lambda k: list(METRICS).index(k[0])):
        shown = fmt(value, unit)
        hint = " · ".join(x for x in (band, arrows.get(trend or ""), sparkline(weekly.get(WEEKLY[metric], []))) if x)
        kpis.append((METRICS[metric], shown if shown is not None else "not enough data", hint))
    doc.kpis(kpis)
    return True


def team_sections(ctx: Ctx, data: DeliveryData | None, ref: str, doc: Doc) -> None:
    """The "Delivery" and "Source control" sections of one team page, kept small (about 1.5 KB)."""
    if data is None or not data.available:
        return
    doc.h2("Delivery")
    if not _team_keys(doc, data, ("team", ref)):
        doc.note("No delivery events for this team's entities.")
    else:
        flow = {m: (unit, p50, p75, p90, n, reason) for m, unit, p50, p75, p90, n, reason in data.flow.get(("team", ref), [])}
        cycle = flow.get("cycle_time")
        parts = []
        if cycle and cycle[1] is not None:
            unit, p50, p75, p90, n, _ = cycle
            split = " + ".join(f"{label} {fmt(flow[m][1], 'hours')}" for m, label in
                               (("time_to_first_review", "first review"), ("review_to_approval", "approval"), ("approval_to_merge", "merge"))
                               if m in flow and flow[m][1] is not None)
            parts.append(f"PR cycle time: median {fmt(p50, unit)} (p75 {fmt(p75, unit)}, p90 {fmt(p90, unit)}, {int(n)} merged)"
                         + (f" = {split} (medians)" if split else ""))
        elif cycle:
            parts.append(f"PR cycle time: {cycle[5] or 'not enough data'}")
        summary = data.summary.get(("team", ref))
        if summary:
            merged, unreviewed, share, open_prs, stale = summary
            parts.append(f"{unreviewed} of {merged} merged without review · {open_prs} open, {stale} stale")
        if parts:
            doc.p(" · ".join(parts))
        stale_rows = data.stale.get(("team", ref))
        if stale_rows:
            # links go through the table (rendered by the site's script: no raw external href in the page)
            doc.table([Column("Pull request", "link"), Column("Open, days", "int")],
                      [[link(f"{entity.split('/')[-1]} #{number}", url), round(float(age))] for entity, url, number, age, _ in stale_rows],
                      caption="The stalest open pull requests", page_size=STALE_SHOWN)
    totals = data.repo_totals.get(ref)
    doc.h2("Source control")
    if not totals:
        doc.note("No repository data (GitHub / GitLab collectors or delivery events) for this team's entities.")
        return
    n, protected, known, open_prs, last = totals
    doc.kpis([("repositories", n, ""), ("default branch protected", protected, f"of {known} known"),
              ("open pull requests", None if open_prs is None or open_prs != open_prs else int(open_prs), ""),
              ("last commit (merge)", None if last is None or pd.isna(last) else str(last)[:10], "")])


def delivery_page(ctx: Ctx) -> PageOut:
    out = ctx.page("delivery", "Delivery", "delivery.html",
                   "DORA's four keys and pull-request flow for the organisation; teams compared at the same level.",
                   [CATALOG_ASSET, *AREA_ASSETS[DELIVERY]])
    level = ctx.access.level(PERMISSION)
    if level == NONE:
        return ctx.denied(out, PERMISSION)
    missing = missing_tables(ctx.inputs, (DELIVERY.dora_summary,))
    if missing:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    data = DeliveryData(ctx)
    out.data_as_of = data.window or None
    doc = Doc()
    if not out.partial:
        doc.h2("Organisation")
        _keys_table(doc, data, ("org", "org"), f"DORA's four keys, {data.window}")
        series = data.weekly.get(("org", "org"), {})
        if data.weeks and series.get("deployments"):
            doc.figure(F.lines([str(w) for w in data.weeks], {"deployments": series["deployments"]},
                               title="Production deployments per ISO week", xtitle="Week (ISO, Monday)", ytitle="Deployments (count)",
                               x_is_category=True))
        if data.weeks and series.get("lead_time"):
            doc.figure(F.lines([str(w) for w in data.weeks], {"median lead time (h)": series["lead_time"]},
                               title="Median lead time for changes per ISO week", xtitle="Week (ISO, Monday)", ytitle="Lead time (hours)",
                               x_is_category=True))
        _flow_table(doc, data, ("org", "org"))
        incidents = ctx.inputs.table(DELIVERY.incidents_summary)
        if incidents is not None and len(incidents):
            i = incidents.iloc[0]
            doc.kpis([("incidents", int(i["incidents"]), "in the window"), ("with no service in the catalog", int(i["without_service"]), ""),
                      ("unresolved", int(i["unresolved"]), ""), ("deployments with no linked change", int(i["unlinked_deployments"]), ""),
                      ("rollbacks", int(i["rollbacks"]), "")])
    _comparison(ctx, data, doc)
    out.doc = doc
    return out


def _comparison(ctx: Ctx, data: DeliveryData, doc: Doc) -> None:
    """Teams side by side, one table per level of the hierarchy (depth), only teams with at least
    `min_entities` deploying entities, ordered by lead time band then deployment frequency."""
    org = ctx.inputs.org
    summary = ctx.inputs.table(DELIVERY.dora_summary)
    rows = summary[(summary["scope_type"].astype(str) == "team") & (summary["metric"].astype(str) == "deployment_frequency")]
    counts = (dict(zip(rows["scope_ref"].astype(str), rows["deploying_entities"].fillna(0).astype(int)))
              if "deploying_entities" in rows.columns else {})
    visible = set(ctx.access.groups(PERMISSION, list(org.all_groups()))) if ctx.access.level(PERMISSION) != ALL else None
    by_depth: dict[int, list[list]] = {}
    band_rank = {"elite": 0, "high": 1, "medium": 2, "low": 3}
    small = 0
    for (scope_type, ref), keys in data.keys.items():
        if scope_type != "team" or (visible is not None and ref not in visible):
            continue
        n = counts.get(ref, 0)
        if n < data.min_entities:
            small += 1
            continue
        k = {m: (v, u, b) for m, v, u, b, *_ in keys}
        depth = len(org.ancestors(ref))
        row = [ctx.team_link(ref), n]
        for metric in METRICS:
            v, u, b = k.get(metric, (None, None, None))
            row += [fmt(v, u) or "not enough data", b]
        row.append(sparkline(data.weekly.get(("team", ref), {}).get("deployments", [])))
        sort_key = (band_rank.get(k.get("lead_time", (0, 0, None))[2], 4), -(k.get("deployment_frequency", (0, 0, 0))[0] or 0))
        by_depth.setdefault(depth, []).append((sort_key, row))
    doc.h2("Teams compared")
    doc.note(f"Teams are compared only with teams at the same level of the hierarchy, and only when at least {data.min_entities} "
             f"of their entities deploy ({small} smaller teams are not ranked).")
    columns = [Column("Team", "link"), Column("Deploying entities", "int")]
    for title in METRICS.values():
        columns += [Column(title), Column(f"{title}: band")]
    columns.append(Column("Deployments, weekly"))
    for depth in sorted(by_depth):
        rows = [r for _, r in sorted(by_depth[depth], key=lambda x: x[0])]
        doc.table(columns, rows, caption=f"Level {depth} of the hierarchy ({'top' if depth == 0 else f'{depth} below the top'})",
                  page_size=25)
    if not by_depth:
        doc.note("No team is large enough to compare.")
