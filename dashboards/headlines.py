"""The index's headline numbers, and what changed since the previous build.

Each headline is an organisation-wide figure, so it is shown only to an audience allowed the
whole of its source (`Access.all`): entities, owned share, teams at the target level, open
critical vulnerabilities (collected facts), survey response rate, MAU (usage; suppressed below k).
The numbers are stored in the site's manifest (`headline`); the next build reads the previous
manifest and shows each number's change since then, with the latest ingestion cycle's churn from
the catalog history tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from catalog_pipelines.model.insight_tables import FACTS, HISTORY, SCORECARDS, SURVEYS, USAGE
from catalog_pipelines.model.vocabulary import SUPPRESSED, level_label
from dashboards.html import clean, esc
from dashboards.pages.base import Ctx

# A team is "at the target level" when its mean certification level reaches this in every track
# it has results for (level 2 is the middle of the shipped tracks: Silver / No critical).
TARGET_LEVEL = 2
ENTITY_READ, SCORECARD_READ = "catalog.entity.read", "scorecard.read"
SURVEYS_ORG, USAGE_READ = "surveys.read.org", "insights.usage.read"


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    value: float | int | str | None  # a number, SUPPRESSED, or None (no data)
    hint: str = ""
    unit: str = ""  # "%" for shares (value 0..100)
    href: str = ""


def headlines(ctx: Ctx) -> list[Headline]:
    """The headline numbers this audience may see (an org-wide figure needs the whole source)."""
    out: list[Headline] = []
    access, inputs = ctx.access, ctx.inputs
    entities = inputs.entities
    if access.all(ENTITY_READ) and len(entities):
        from dashboards.pages.catalog import OWNED_KINDS

        out.append(Headline("entities", "entities", len(entities), "in the catalog", href="catalog.html"))
        owned = entities[entities["kind"].isin(OWNED_KINDS)]
        if len(owned):
            share = round(100 * float(owned["owner"].notna().mean()), 1)
            out.append(Headline("owned_share", "owned", share, "of components, APIs, resources, systems… have an owner",
                                unit="%", href="catalog.html"))
        vulns = _open_critical(ctx)
        if vulns is not None:
            out.append(Headline("open_critical", "open critical vulnerabilities", vulns, "from the collected facts",
                                href="teams.html"))
    if access.all(SCORECARD_READ):
        at_target = _teams_at_target(ctx)
        if at_target is not None:
            n, teams, name = at_target
            out.append(Headline("teams_at_target", "teams at target level", n,
                                f"of {teams:,} teams: mean level ≥ {name} in every track", href="scorecards.html"))
    if access.all(SURVEYS_ORG):
        rate = _response_rate(ctx)
        if rate is not None:
            out.append(Headline("survey_response_rate", "survey response rate", rate[0], rate[1], unit="%", href="surveys.html"))
    if access.all(USAGE_READ):
        mau = _mau(ctx)
        if mau is not None:
            out.append(Headline("mau", "MAU", mau[0], mau[1], href="usage.html"))
    return out


def _open_critical(ctx: Ctx) -> int | None:
    """Open critical findings over every entity: each entity's latest `vulnerabilities_by_severity`
    (as the team pages count them; one pass over the one fact, not the team pages' three frames)."""
    long = ctx.inputs.table(FACTS.collected_latest)
    if long is None or not len(long):
        return None
    sev = long[long["fact"] == "vulnerabilities_by_severity"]
    if not len(sev):
        return None
    if "observed_at" in sev.columns:
        sev = sev.sort_values("observed_at", kind="stable")
    latest = sev.drop_duplicates("entity_ref", keep="last")["value"]
    return sum(int(v.get("critical") or 0) for v in latest if isinstance(v, dict))


def _teams_at_target(ctx: Ctx) -> tuple[int, int, str] | None:
    summary = ctx.inputs.table(SCORECARDS.rollup_summary)
    if summary is None or not len(summary) or "mean_level" not in summary.columns:
        return None
    groups = ctx.inputs.org.groups
    teams = summary[(summary["scope_type"] == "group")
                    & summary["scope_ref"].map(lambda g: (groups.get(g) or {}).get("type") == "team")]
    if not len(teams):
        return None
    reached = teams.assign(ok=teams["mean_level"] >= TARGET_LEVEL).groupby("scope_ref")["ok"].all()
    names = ctx.inputs.table(SCORECARDS.rollup_levels)
    level_names = []
    if names is not None and "level_name" in names.columns:
        level_names = names.loc[names["level"] == TARGET_LEVEL, "level_name"].astype(str).unique().tolist()
    return int(reached.sum()), len(reached), level_label(TARGET_LEVEL, level_names)


def _response_rate(ctx: Ctx) -> tuple[float, str] | None:
    waves = ctx.inputs.table(SURVEYS.waves)
    if waves is None or not len(waves) or "response_rate" not in waves.columns:
        return None
    order = [c for c in ("closes", "wave_order") if c in waves.columns]
    latest = waves.sort_values(order).iloc[-1] if order else waves.iloc[-1]
    if pd.isna(latest["response_rate"]):
        return None
    title = latest.get("survey_title", latest.get("survey", ""))
    return round(float(latest["response_rate"]), 1), f"{title}, {latest.get('wave_title', latest.get('wave', ''))}"


def _mau(ctx: Ctx) -> tuple[int | str, str] | None:
    from dashboards.pages.usage import people_k

    daily = ctx.inputs.table(USAGE.daily)
    if daily is None or not len(daily) or "mau" not in daily.columns:
        return None
    last = daily.sort_values("day").iloc[-1]
    k = people_k(ctx)
    value = last["mau"]
    shown = SUPPRESSED if pd.isna(value) or value < k else int(value)
    return shown, f"people active in the 28 days to {str(last['day'])[:10]}"


def latest_cycle_churn(ctx: Ctx) -> dict[str, int] | None:
    """Added / changed / removed / rejected in each provider's latest ingestion cycle, summed
    (the catalog history tables; None without them or for an audience not allowed every entity)."""
    counts = ctx.inputs.table(HISTORY.changes_by_cycle)
    if counts is None or not len(counts) or not ctx.access.all(ENTITY_READ):
        return None
    latest = counts[counts["cycle"] == counts.groupby("provider")["cycle"].transform("max")]
    return {c: int(latest[c].sum()) for c in ("added", "changed", "removed", "rejected") if c in latest.columns}


def as_manifest(items: list[Headline]) -> dict[str, Any]:
    return {h.key: clean(h.value) for h in items}


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _delta(now: Any, before: Any, unit: str) -> str:
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)) or isinstance(now, bool):
        return ""
    diff = now - before
    if abs(diff) < 1e-9:
        return "no change"
    sign = "+" if diff > 0 else "−"
    amount = f"{abs(diff):.1f} points" if unit == "%" else (f"{abs(diff):,}" if isinstance(diff, int) else f"{abs(diff):,.1f}")
    return f"{sign}{amount}"


def headline_html(items: list[Headline], previous: dict[str, Any] | None, previous_at: str | None,
                  churn: dict[str, int] | None) -> str:
    """The index's opening: the headline numbers (each a link to its page, with its change since
    the previous build), and what the latest ingestion cycle changed."""
    if not items and not churn:
        return ""
    cells = []
    for h in items:
        change = _delta(h.value, (previous or {}).get(h.key), h.unit) if previous else ""
        cells.append(
            f'<a class="kpi" href="{esc(h.href)}"><b>{esc(_fmt(h.value, h.unit))}</b>{esc(h.label)}'
            + (f"<small>{esc(h.hint)}</small>" if h.hint else "")
            + (f'<small class="change">{esc(change)} since the previous build</small>' if change else "")
            + "</a>")
    parts = ['<section aria-labelledby="headline"><h2 id="headline">Headline numbers</h2>']
    if cells:
        parts.append(f'<div class="kpis">{"".join(cells)}</div>')
    changed = []
    if previous_at:
        changed.append(f"Changes are against the previous build ({esc(previous_at)}).")
    else:
        changed.append("This is the first build in this folder: changes appear from the next build on.")
    if churn:
        changed.append("The latest ingestion cycle: " + ", ".join(f"{n:,} {what}" for what, n in churn.items()) + " entities"
                       + ' (<a href="changes.html">catalog changes</a>).')
    parts.append('<p class="what-changed">' + " ".join(changed) + "</p></section>")
    return "".join(parts)
