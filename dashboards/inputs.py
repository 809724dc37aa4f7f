"""What the site is built from: plain DataFrames, loaded elsewhere (the Dagster asset and the CLI
read them from the catalog database), so this package never touches storage or Dagster.

Insight tables are keyed `"<area>/<name>"` as the insight store names them (`insight_<area>_<name>`);
a table that was never written is simply absent, and the pages that need it say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from analytics.org import OrgGraph

# Every insight table a page reads, by area. The loader reads exactly these.
TABLES: dict[str, tuple[str, ...]] = {
    "scorecards": ("rollup_summary", "rollup_levels", "rollup_checks", "rollup_history", "fix_next", "checks",
                   "tracks", "evaluations", "campaign_progress"),
    "surveys": ("trends", "waves"),
    "usage": ("daily", "weekly", "cohorts", "reach", "top_daily", "templates_daily", "adoption", "meta",
              "plugin_adoption"),
    "orphans": ("report", "trend", "removals_by_cycle"),
    "graph": ("team_dependencies", "most_depended_on", "cycles"),
    "skills": ("coverage", "knowledge_risks", "mentor_matches", "unmatched_wishes", "gig_matches", "wishes",
               "profiles"),
    "facts": ("vulnerabilities_latest", "ci_latest", "tickets_latest"),
}

# The Dagster asset that writes each area's tables (shown on every page as its source).
AREA_ASSETS: dict[str, tuple[str, ...]] = {
    "scorecards": ("scorecard_results", "scorecard_reports"),
    "surveys": ("survey_trends",),
    "usage": ("usage_insights",),
    "orphans": ("orphan_report",),
    "graph": ("relationship_graph",),
    "skills": ("skills_exchange",),
    "facts": ("vulnerabilities_facts", "ci_facts", "tickets_facts"),
}
CATALOG_ASSET = "catalog_snapshot"


def table_keys() -> list[tuple[str, str]]:
    return [(area, name) for area, names in TABLES.items() for name in names]


@dataclass
class SiteInputs:
    """Everything a build reads. Frames are `None` when their source has never run.

    - `entities`: one row per entity: ref, kind, namespace, name, type, owner, system, lifecycle,
      provider (catalog_pipelines.storage.frames.entities_frame without the body);
    - `ingestions`, `marks`, `rejections`, `removals`: the ingestion ledger (storage/schema.py);
    - `audit`: audit rows (at, actor, action, target, outcome, details) of admin and exemption actions;
    - `tables`: insight tables by `"area/name"`;
    - `materialized`: asset key (user string) → when it was last materialised, if known.
    """

    org: OrgGraph
    entities: pd.DataFrame
    ingestions: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None
    rejections: pd.DataFrame | None = None
    removals: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    materialized: dict[str, datetime] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def table(self, area: str, name: str) -> pd.DataFrame | None:
        frame = self.tables.get(f"{area}/{name}")
        return frame if frame is not None else None

    def has(self, area: str, name: str) -> bool:
        return f"{area}/{name}" in self.tables
