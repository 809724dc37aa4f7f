"""Catalog overview and ingestion health: from the catalog's entities and the ingestion ledger."""

from __future__ import annotations

import pandas as pd

from catalog_pipelines.model.asset_names import chunk_asset_name, sweep_asset_name
from dashboards import figures as F
from dashboards.access import ALL, NONE
from dashboards.html import Doc, fmt_time
from dashboards.inputs import CATALOG_ASSET
from dashboards.pages.base import Ctx, PageOut, as_time
from catalog_pipelines.model.vocabulary import label

ENTITY_READ = "catalog.entity.read"
INGESTION_READ = "catalog.ingestion.read"
TOP_TYPES = 20
OWNER_ROWS = 1000  # rows embedded; the rest in the table's CSV export
# Kinds that have a spec.owner in Backstage's model (as analytics.facts.collect.OWNED_KINDS).
OWNED_KINDS = ("component", "api", "resource", "system", "domain", "template")


def readable_entities(ctx: Ctx) -> pd.DataFrame:
    """The entities this audience may read (all of them on the operator's site)."""
    entities = ctx.inputs.entities
    if ctx.access.level(ENTITY_READ) == ALL:
        return entities
    return entities[ctx.access.entity_mask(ENTITY_READ, entities)]


def _completed(ingestions: pd.DataFrame) -> pd.DataFrame:
    done = ingestions[ingestions["ingestion_completed_at"].notna()].copy()
    done["completed"] = pd.to_datetime(done["ingestion_completed_at"], utc=True, errors="coerce")
    return done.sort_values(["provider", "cycle"])


def catalog_page(ctx: Ctx) -> PageOut:
    out = ctx.page("catalog", "Catalog overview", "catalog.html",
                   "What the catalog holds: counts by kind, type and lifecycle, owners, growth over ingestion cycles.",
                   [CATALOG_ASSET])
    level = ctx.access.level(ENTITY_READ)
    if level == NONE:
        return ctx.denied(out, ENTITY_READ)
    entities = readable_entities(ctx)
    if not len(ctx.inputs.entities):
        return ctx.no_data(out, ["entities"])
    out.partial = level != ALL
    ingestions = ctx.inputs.ingestions
    if ingestions is not None and len(ingestions) and ingestions["ingestion_completed_at"].notna().any():
        last = pd.to_datetime(ingestions["ingestion_completed_at"], utc=True, errors="coerce").max()
        out.data_as_of = f"last completed cycle {fmt_time(last.to_pydatetime())}"
    doc = Doc(stem="catalog")
    owners = entities["owner"].dropna()
    doc.kpis([
        ("entities", len(entities), "in the catalog" if not out.partial else "you may see"),
        ("kinds", entities["kind"].nunique(), ""),
        ("owners", owners.nunique(), "groups or users owning something"),
        ("providers", entities["provider"].nunique(), "sources feeding the catalog"),
        ("without owner", int((entities["owner"].isna() & entities["kind"].isin(OWNED_KINDS)).sum()),
         "components, APIs, resources, systems, domains, templates"),
    ])
    by_kind = entities["kind"].value_counts()
    doc.h2("Entities by kind")
    doc.figure(F.bar([label(k) for k in by_kind.index], by_kind.values, title="Entities by kind", xtitle="Entities (count)",
                     ytitle="Kind", horizontal=True, color=[F.series_colour(k) or F.PALETTE[0] for k in by_kind.index]))
    typed = entities[entities["type"].notna()]
    if len(typed):
        combos = (typed["kind"] + " / " + typed["type"].astype(str)).value_counts()
        doc.h2("Entities by kind and type")
        doc.figure(F.bar(combos.index[:TOP_TYPES], combos.values[:TOP_TYPES],
                         title=f"Entities by kind and spec.type (top {min(TOP_TYPES, len(combos))} of {len(combos)})",
                         xtitle="Entities (count)", ytitle="Kind / type", horizontal=True))
    with_lifecycle = entities[entities["lifecycle"].notna()]
    if len(with_lifecycle):
        table = pd.crosstab(with_lifecycle["lifecycle"], with_lifecycle["kind"])
        table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
        doc.h2("Lifecycle")
        doc.figure(F.bars(table.index, {k: table[k].tolist() for k in table.columns}, stacked=True,
                          title="Entities by lifecycle and kind", xtitle="Lifecycle (spec.lifecycle)",
                          ytitle="Entities (count)"))
    if not out.partial and ingestions is not None and len(ingestions):
        done = _completed(ingestions)
        if len(done):
            doc.h2("Growth over ingestion cycles")
            traces = [(p, g["cycle"].tolist(), g["entities_seen"].tolist()) for p, g in done.groupby("provider")]
            doc.figure(F.xy_lines(traces, title="Entities seen per completed cycle, by provider",
                                  xtitle="Ingestion cycle (number)", ytitle="Entities seen (count)", integer_x=True))
            removed = done[["provider", "cycle", "removed"]].fillna({"removed": 0})
            if removed["removed"].sum() > 0:
                doc.figure(F.xy_lines([(p, g["cycle"].tolist(), g["removed"].tolist()) for p, g in removed.groupby("provider")],
                                      title="Entities removed by each cycle's sweep, by provider",
                                      xtitle="Ingestion cycle (number)", ytitle="Entities removed (count)", integer_x=True))
    by_provider = entities.groupby(["provider", "kind"]).size().unstack(fill_value=0)
    doc.h2("Per provider")
    doc.figure(F.bars(by_provider.index, {k: by_provider[k].tolist() for k in by_provider.columns}, stacked=True,
                      title="Entities by provider and kind", xtitle="Provider", ytitle="Entities (count)"))
    doc.h2("Owners")
    owned = entities[entities["owner"].notna()]
    if len(owned):
        per_owner = owned.groupby("owner").agg(entities=("ref", "size"), kinds=("kind", "nunique"),
                                               systems=("system", "nunique")).sort_values("entities", ascending=False)
        rows = [[ctx.team_link(o), o, int(r.entities), int(r.kinds), int(r.systems)] for o, r in per_owner.iterrows()]
        from dashboards.html import Column

        doc.table([Column("Owner", "link"), Column("Ref"), Column("Entities", "int"), Column("Kinds", "int"),
                   Column("Systems", "int")], rows, caption="Entities per owner (spec.owner), most first", inline=OWNER_ROWS)
    else:
        doc.note("No entity has an owner.")
    out.doc = doc
    return out


def ingestion_page(ctx: Ctx) -> PageOut:
    out = ctx.page("ingestion", "Ingestion health", "ingestion.html",
                   "Ingestion cycles per provider: state, durations of cycles and chunks, failures, rejections, removals.",
                   [CATALOG_ASSET])
    level = ctx.access.level(INGESTION_READ)
    if level == NONE:
        return ctx.denied(out, INGESTION_READ)
    ingestions = ctx.inputs.ingestions
    if ingestions is None or not len(ingestions):
        return ctx.no_data(out, ["ingestions (ingestion ledger)"])
    providers = sorted(ingestions["provider"].unique())
    allowed = ctx.access.providers(INGESTION_READ, providers)
    out.partial = level != ALL
    if not allowed:
        return ctx.denied(out, INGESTION_READ)
    ingestions = ingestions[ingestions["provider"].isin(allowed)]
    out.sources = [chunk_asset_name(p) for p in sorted(allowed)] + [sweep_asset_name(p) for p in sorted(allowed)]
    out.freshness = ctx.materialized(out.sources)
    out.fresh = ctx.freshness_of(out.sources)
    created = pd.to_datetime(ingestions["created_at"], utc=True, errors="coerce")
    out.data_as_of = f"latest cycle started {fmt_time(as_time(created.max()))}"
    marks = ctx.inputs.marks
    if marks is not None and len(marks):
        marks = marks.merge(ingestions[["id", "provider", "cycle"]].rename(columns={"id": "ingestion_id"}), on="ingestion_id")
    doc = Doc(stem="ingestion")
    latest = ingestions.sort_values("id").groupby("provider").tail(1).set_index("provider")
    entities_per_provider = ctx.inputs.entities.groupby("provider").size()
    rejections = ctx.inputs.rejections
    if rejections is not None and len(rejections):
        rejections = rejections[rejections["provider"].isin(allowed)]
    rejected = rejections.groupby("provider").size() if rejections is not None and len(rejections) else pd.Series(dtype=int)
    done = _completed(ingestions)
    doc.kpis([
        ("providers", len(allowed), ""),
        ("completed cycles", len(done), ""),
        ("backing off", int((latest["status"] == "backing off").sum()), "providers failing now"),
        ("rejected", int(rejected.sum()), "entities in the latest cycles"),
        ("removed", int(ingestions["removed"].fillna(0).sum()), "entities swept, all cycles"),
    ])
    doc.h2("Providers")
    from dashboards.html import Column

    rows = []
    for provider, row in latest.iterrows():
        rows.append([provider, row["status"], int(row["cycle"]), int(row["attempts"] or 0), row.get("last_error"),
                     as_time(row["ingestion_completed_at"]), int(entities_per_provider.get(provider, 0)),
                     int(rejected.get(provider, 0)), row.get("sweep_outcome")])
    doc.table([Column("Provider"), Column("State"), Column("Cycle", "int"), Column("Attempts", "int"),
               Column("Last error"), Column("Last cycle completed", "date"), Column("Entities", "int"),
               Column("Rejected", "int"), Column("Sweep")], rows, caption="Current state per provider")
    doc.h2("Cycles")
    if len(done):
        seconds = (done["completed"] - pd.to_datetime(done["created_at"], utc=True)).dt.total_seconds()
        unit, factor = F.duration_unit(seconds.tolist())  # 0.6 s reads as seconds, not 0.01 min
        done = done.assign(duration=(seconds / factor).round(2))
        doc.figure(F.xy_lines([(p, g["cycle"].tolist(), g["duration"].tolist()) for p, g in done.groupby("provider")],
                              title="Cycle duration, start to last chunk", xtitle="Ingestion cycle (number)",
                              ytitle=f"Duration ({unit})", integer_x=True))
    else:
        doc.note("No cycle has completed yet.")
    if marks is not None and len(marks):
        doc.h2("Chunks")
        doc.figure(F.box({p: (g["duration_ms"] / 1000).tolist() for p, g in marks.groupby("provider")},
                         title="Chunk durations by provider", xtitle="Provider", ytitle="Chunk duration (seconds)"))
        per_cycle = marks.groupby(["provider", "cycle"])[["added", "changed", "unchanged", "rejected"]].sum().tail(30)
        labels = [f"{p} #{c}" for p, c in per_cycle.index]
        doc.figure(F.bars(labels, {k: per_cycle[k].tolist() for k in per_cycle.columns}, stacked=True,
                          title="What each cycle's chunks did (latest 30 cycles)", xtitle="Provider and cycle",
                          ytitle="Entities (count)"))
    doc.h2("Failures")
    failed = ingestions[(ingestions["attempts"].fillna(0) > 0) | ingestions["last_error"].notna()]
    if len(failed):
        doc.frame_table(failed.sort_values("id", ascending=False),
                        [("provider", "Provider", "text"), ("cycle", "Cycle", "int"), ("status", "State", "text"),
                         ("attempts", "Attempts", "int"), ("last_error", "Last error", "text"),
                         ("next_action_at", "Next attempt", "date")],
                        caption="Cycles that failed at least once (backoff)", limit=200)
    else:
        doc.note("No cycle has failed.")
    if rejections is not None and len(rejections):
        by_rule = rejections.assign(rule=rejections["rule"].fillna("other")).groupby(["rule", "provider"]).size().unstack(fill_value=0)
        doc.figure(F.bars(by_rule.index, {p: by_rule[p].tolist() for p in by_rule.columns}, stacked=True, horizontal=True,
                          title="Rejected entities in the latest cycle, by validation rule", xtitle="Entities (count)",
                          ytitle="Rule"))
    doc.h2("Removals")
    removals = ctx.inputs.removals
    if removals is not None and len(removals):
        removals = removals[removals["provider"].isin(allowed)]
    if removals is not None and len(removals):
        per = removals.groupby(["cycle", "provider"]).size().unstack(fill_value=0)
        doc.figure(F.bars(per.index, {p: per[p].tolist() for p in per.columns}, stacked=True,
                          title="Entities removed per cycle, by provider", xtitle="Ingestion cycle (number)",
                          ytitle="Entities removed (count)"))
    else:
        doc.note("No entity has been removed by a sweep.")
    out.doc = doc
    return out
