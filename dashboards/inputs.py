"""What the site is built from: plain DataFrames, loaded elsewhere (the Dagster asset and the CLI
read them from the catalog database), so this package never touches storage or Dagster.

Insight tables are keyed by their declarations (`catalog_pipelines.model.insight_tables`,
e.g. `SCORECARDS.rollup_summary`); a table that was never written is simply absent, and the pages
that need it say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from catalog_pipelines.model.insight_tables import (
    DELIVERY,
    FACTS,
    GRAPH,
    HISTORY,
    ORPHANS,
    SCORECARDS,
    SKILLS,
    SURVEYS,
    USAGE,
    InsightArea,
    InsightTable,
)

if TYPE_CHECKING:
    import pandas as pd

    from analytics.org import OrgGraph

# Every insight table a page reads. The loader reads exactly these.
TABLES: tuple[InsightTable, ...] = (
    SCORECARDS.rollup_summary, SCORECARDS.rollup_levels, SCORECARDS.rollup_checks, SCORECARDS.rollup_history,
    SCORECARDS.fix_next, SCORECARDS.checks, SCORECARDS.tracks, SCORECARDS.evaluations, SCORECARDS.campaign_progress,
    SCORECARDS.results,  # only the results that are not passed (the drill-down to failing entities)
    SURVEYS.trends, SURVEYS.waves,
    USAGE.daily, USAGE.weekly, USAGE.cohorts, USAGE.reach, USAGE.top_daily, USAGE.templates_daily, USAGE.adoption,
    USAGE.meta, USAGE.plugin_adoption,
    ORPHANS.report, ORPHANS.trend, ORPHANS.removals_by_cycle,
    GRAPH.team_dependencies, GRAPH.most_depended_on, GRAPH.cycles,
    SKILLS.coverage, SKILLS.knowledge_risks, SKILLS.mentor_matches, SKILLS.unmatched_wishes, SKILLS.gig_matches,
    SKILLS.wishes, SKILLS.profiles,
    FACTS.collected_latest,  # not a stored table: the site loader reads it from the fact store
    HISTORY.changes_by_cycle, HISTORY.ownership_changes, HISTORY.lost_owners,
    DELIVERY.dora_summary, DELIVERY.dora_weekly, DELIVERY.pr_flow, DELIVERY.pr_summary, DELIVERY.stale_prs,
    DELIVERY.incidents_summary, DELIVERY.source_control, DELIVERY.meta,
)

# The Dagster asset that writes each area's tables (shown on every page as its source).
AREA_ASSETS: dict[type[InsightArea], tuple[str, ...]] = {
    SCORECARDS: ("scorecard_results", "scorecard_reports"),
    SURVEYS: ("survey_trends",),
    USAGE: ("usage_insights",),
    ORPHANS: ("orphan_report",),
    GRAPH: ("relationship_graph",),
    SKILLS: ("skills_exchange",),
    FACTS: ("security_facts", "github_facts", "gitlab_facts", "jira_facts", "pagerduty_facts"),
    HISTORY: ("catalog_changes",),
    DELIVERY: ("delivery_metrics",),
}
CATALOG_ASSET = "catalog_snapshot"


@dataclass
class SiteInputs:
    """Everything a build reads. Frames are `None` when their source has never run.

    - `entities`: one row per entity: ref, kind, namespace, name, type, owner, system, lifecycle,
      provider (catalog_pipelines.storage.frames.entities_frame without the body);
    - `ingestions`, `marks`, `rejections`, `removals`: the ingestion ledger (storage/schema.py);
    - `audit`: audit rows (at, actor, action, target, outcome, details) of admin and exemption actions;
    - `tables`: insight tables by their declaration (`InsightTable`);
    - `materialized`: asset key (user string) → when it was last materialised, if known;
    - `leaderboard_min_entities`: the scorecard configuration's minimum size of a ranked group.
    """

    org: OrgGraph
    entities: pd.DataFrame
    ingestions: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None
    rejections: pd.DataFrame | None = None
    removals: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    tables: dict[InsightTable, pd.DataFrame] = field(default_factory=dict)
    materialized: dict[str, datetime] = field(default_factory=dict)
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # `leaderboard.minEntities` of the scorecard configuration (None: its default)
    leaderboard_min_entities: int | None = None

    def table(self, table: InsightTable) -> pd.DataFrame | None:
        return self.tables.get(table)

    def has(self, table: InsightTable) -> bool:
        return table in self.tables
