"""What every page builder shares: the build context, the page result, freshness and helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboards.access import Access
from dashboards.html import Doc, SharedLayouts, esc, fmt_time
from catalog_pipelines.model.freshness import FreshnessStatus, combined, statuses
from catalog_pipelines.model.insight_tables import InsightTable
from dashboards.inputs import SiteInputs

OK, NO_DATA, DENIED = "ok", "no-data", "denied"


@dataclass
class PageOut:
    key: str
    title: str
    path: str
    description: str
    status: str = OK
    reason: str = ""
    doc: Doc | None = None
    sources: list[str] = field(default_factory=list)
    freshness: datetime | None = None
    # the declared policies (model/freshness.py) of its sources at build time: fresh / stale since
    fresh: FreshnessStatus | None = None
    data_as_of: str | None = None
    partial: bool = False  # restricted: shows only the teams / entities the audience may see
    subtitle: str = ""

    @property
    def available(self) -> bool:
        return self.status == OK


@dataclass
class Ctx:
    inputs: SiteInputs
    access: Access
    team_pages: dict[str, str]  # group ref -> path from the site root, for teams that have a page
    # Groups this audience may see named (every group on the operator's site): the ones some
    # group permission allows, and the owners of the entities it may read.
    visible_groups: set[str] = field(default_factory=set)
    layouts: SharedLayouts = field(default_factory=SharedLayouts)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    # ------------------------------------------------------------------------- names, links

    def group_name(self, ref: str) -> str:
        info = self.inputs.org.groups.get(ref)
        if info and info.get("display_name"):
            return str(info["display_name"])
        return ref.split("/", 1)[-1] if isinstance(ref, str) else str(ref)

    def team_link(self, ref: str, root: str = "") -> Any:
        """A link cell to the team's page when it has one, else its name."""
        from dashboards.html import link

        path = self.team_pages.get(ref)
        name = self.group_name(ref)
        return link(name, root + path) if path else name

    # ---------------------------------------------------------------------------- freshness

    def materialized(self, assets: Iterable[str]) -> datetime | None:
        times = [self.inputs.materialized[a] for a in assets if a in self.inputs.materialized]
        return max(times) if times else None

    def freshness_of(self, assets: Iterable[str]) -> FreshnessStatus | None:
        """The page's freshness under its sources' declared policies (`model.freshness`), from the
        asset materialisation times the build read (None when no source declares one)."""
        return combined(statuses(self.inputs.materialized, self.now, assets))

    def page(self, key: str, title: str, path: str, description: str, sources: list[str]) -> PageOut:
        return PageOut(key, title, path, description, sources=sources, freshness=self.materialized(sources),
                       fresh=self.freshness_of(sources))

    def no_data(self, out: PageOut, missing: Iterable[str]) -> PageOut:
        names = ", ".join(sorted(missing))
        assets = ", ".join(out.sources) or "its source asset"
        out.status, out.reason = NO_DATA, f"no data yet: {names} not found (materialise {assets})"
        return out

    def denied(self, out: PageOut, permission: str) -> PageOut:
        out.status, out.reason = DENIED, f"not included for this audience (needs {permission})"
        return out


TEAM_SOURCES_ANCHOR = "sources"  # the teams index's list of the team pages' source assets


def sources_line(out: PageOut, compact: bool = False) -> str:
    """The freshness line under a page title: source assets, when they ran, the data's own date.
    `compact` (the thousands of team pages, which share one list of sources) names them by a link
    to that list on the teams index (`TEAM_SOURCES_ANCHOR`); their freshness stays on each page."""
    if compact and out.sources:
        assets = f'{len(out.sources)} assets, <a href="../teams.html#{TEAM_SOURCES_ANCHOR}">listed on the teams index</a>'
    else:
        assets = ", ".join(f"<code>{esc(a)}</code>" for a in out.sources) or "–"
    parts = [f"Source: {assets}"]
    parts.append(f"materialised {esc(fmt_time(out.freshness))}" if out.freshness else "materialisation time unknown")
    if out.fresh is not None and out.fresh.last is not None:
        label = esc(out.fresh.label(fmt_time))
        parts.append(f'<strong class="stale">{label}</strong>' if out.fresh.state == "stale" else label)
    if out.data_as_of:
        parts.append(f"data as of {esc(out.data_as_of)}")
    if out.partial:
        parts.append("showing only what this audience may see")
    return " · ".join(parts)


def missing_tables(inputs: SiteInputs, tables: Iterable[InsightTable]) -> list[str]:
    return [t.sql_name for t in tables if not inputs.has(t)]


def require_columns(frame: pd.DataFrame | None, columns: Iterable[str]) -> bool:
    return frame is not None and set(columns) <= set(frame.columns)


def as_time(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if pd.isna(stamp):
        return None
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def max_time(frame: pd.DataFrame | None, column: str) -> str | None:
    if frame is None or column not in frame.columns or not len(frame):
        return None
    values = pd.to_datetime(frame[column], errors="coerce", utc=True, format="mixed").dropna()
    return fmt_time(values.max().to_pydatetime()) if len(values) else None


def pct(value: Any) -> float | None:
    """A 0..1 share as a percentage number (for axes with a % suffix)."""
    if value is None or pd.isna(value):
        return None
    return round(float(value) * 100, 1)


def group_rows(frame: pd.DataFrame, column: str, allowed: set[str] | None) -> pd.DataFrame:
    """Rows whose `column` is an allowed group (all rows when `allowed` is None)."""
    if allowed is None:
        return frame
    return frame[frame[column].isin(allowed)]


Builder = Callable[[Ctx], PageOut]
