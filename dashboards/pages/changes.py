"""Catalog changes: what each ingestion cycle changed (`HISTORY` insight tables, written by the
`catalog_changes` asset from the catalog history): churn by provider over cycles, ownership
changes, entities that lost their owner."""

from __future__ import annotations

from catalog_pipelines.model.insight_tables import HISTORY
from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Doc
from dashboards.pages.base import Ctx, PageOut, max_time, missing_tables
from dashboards.pages.health import ENTITY_READ, _readable, _visible

ROWS = 1000
CHANGES = ("added", "changed", "removed", "rejected")
COLORS = {"added": F.OK, "changed": F.PALETTE[0], "removed": F.BAD, "rejected": F.WARN}


def changes_page(ctx: Ctx) -> PageOut:
    out = ctx.page("changes", "Catalog changes", "changes.html",
                   "What each ingestion cycle changed: churn by provider, ownership changes, entities that lost their owner.",
                   ["catalog_changes"])
    level = ctx.access.level(ENTITY_READ)
    if level == NONE:
        return ctx.denied(out, ENTITY_READ)
    missing = missing_tables(ctx.inputs, (HISTORY.changes_by_cycle,))
    if missing:
        return ctx.no_data(out, missing)
    out.partial = level != ALL
    counts = ctx.inputs.table(HISTORY.changes_by_cycle)
    ownership = ctx.inputs.table(HISTORY.ownership_changes)
    lost = ctx.inputs.table(HISTORY.lost_owners)
    if out.partial:
        # Only entities this audience may read, and only groups it may see named.
        if ownership is not None:
            ownership = _readable(ctx, ownership, owner="to_owner")
            ownership = ownership[_visible(ctx, ownership["from_owner"]) & _visible(ctx, ownership["to_owner"])]
        if lost is not None:
            lost = _readable(ctx, lost)
            lost = lost[_visible(ctx, lost["owner"])]
    out.data_as_of = max_time(ownership, "at") if ownership is not None and len(ownership) else None
    doc = Doc(stem="changes")
    cycles = counts[["provider", "cycle"]].drop_duplicates()
    total = counts[list(CHANGES)].sum()
    doc.kpis([("cycles", len(cycles), "with history, all providers"), ("changed", int(total["changed"]), "entity versions"),
              ("ownership changes", 0 if ownership is None else len(ownership), ""),
              ("lost their owner", 0 if lost is None else len(lost), "owner removed or no longer named")])
    doc.h2("Churn by provider over cycles")
    if cycles.groupby("provider").size().max() < 2:
        doc.note("Not enough history yet: one cycle so far. Churn over cycles appears after the next cycle.")
    else:
        later = counts[counts["cycle"] > counts.groupby("provider")["cycle"].transform("min")]  # the first cycle adds everything
        churn = later.assign(churn=later[["added", "changed", "removed"]].sum(axis=1)).pivot_table(
            index="cycle", columns="provider", values="churn", aggfunc="sum", fill_value=0).sort_index()
        doc.figure(F.lines(churn.index.astype(str), {p: churn[p].tolist() for p in churn.columns}, x_is_category=True,
                           title="Entities added, changed or removed per cycle (after the first), by provider",
                           xtitle="Cycle", ytitle="Entities (count)"))
        per_change = later.groupby("cycle")[list(CHANGES)].sum().sort_index()
        doc.figure(F.bars(per_change.index.astype(str), {c: per_change[c].tolist() for c in CHANGES}, stacked=True, colors=COLORS,
                          title="Changes per cycle, by change", xtitle="Cycle", ytitle="Versions (count)"))
    doc.h2("Ownership changes")
    if ownership is None or not len(ownership):
        doc.p("No entity changed owner in the kept history.")
    else:
        doc.frame_table(ownership.sort_values("cycle", ascending=False),
                        [("cycle", "Cycle", "int"), ("provider", "Provider", "text"), ("ref", "Entity", "text"),
                         ("from_owner", "From", "text"), ("to_owner", "To", "text"), ("at", "When (UTC)", "date")],
                        caption="Ownership changes, newest first", limit=ROWS)
    doc.h2("Entities that lost their owner")
    if lost is None or not len(lost):
        doc.p("No entity lost its owner in the kept history.")
    else:
        doc.frame_table(lost.sort_values("cycle", ascending=False),
                        [("cycle", "Cycle", "int"), ("ref", "Entity", "text"), ("owner", "Owner it lost", "text"),
                         ("reason", "Why", "text"), ("at", "When (UTC)", "date")],
                        caption="Entities whose owner was removed or is no longer named, newest first", limit=ROWS)
    out.doc = doc
    return out
