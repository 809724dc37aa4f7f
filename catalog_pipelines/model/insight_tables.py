"""Every insight table of the project, declared once.

An insight table is a whole DataFrame an insight area writes to the catalog database under the
physical name `insight_<area>_<name>` (`catalog_pipelines.storage.insights` writes and reads
them). Producers (services, assets), repositories (storage), and consumers (dashboards, CLI)
hand tables to each other by these objects, never by names typed out:
`write_frames(engine, {SCORECARDS.rollup_summary: frame})`, `inputs.table(SCORECARDS.rollup_summary)`.
`tests/storage/test_insight_tables.py` fails when a name is typed out elsewhere.

This module lives in `model/` (stdlib only) so that storage, services, analytics and dashboards may
all import it without breaking the layering contracts (`.importlinter`). The physical names are
the ones the project has always used, so existing databases keep working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True, order=True)
class InsightTable:
    """One insight table: its area and its name within the area."""

    area: str
    name: str

    def __post_init__(self) -> None:
        for part in (self.area, self.name):
            if not _NAME.match(part):
                raise ValueError(f"insight table part {part!r} must match {_NAME.pattern}")

    @property
    def sql_name(self) -> str:
        """The physical table name in the catalog database."""
        return f"insight_{self.area}_{self.name}"

    def __str__(self) -> str:
        return self.sql_name


class InsightArea:
    """The declared tables of one area, as class attributes (`SCORECARDS.rollup_summary`)."""

    area: ClassVar[str]
    _tables: ClassVar[dict[str, InsightTable]]

    def __init_subclass__(cls, area: str, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.area = area
        cls._tables = {}
        for attr, value in list(vars(cls).items()):
            if isinstance(value, _Declared):
                table = InsightTable(area, attr)
                setattr(cls, attr, table)
                cls._tables[attr] = table

    def __new__(cls, *args: object, **kwargs: object) -> InsightArea:
        raise TypeError(f"{cls.__name__} is a namespace of tables, not to be instantiated")

    @classmethod
    def tables(cls) -> tuple[InsightTable, ...]:
        return tuple(cls._tables.values())

    @classmethod
    def get(cls, name: str) -> InsightTable:
        """The declared table called `name` (for frames keyed by name, e.g. an analysis result):
        an undeclared name is an error, so nothing is written under a name declared nowhere."""
        try:
            return cls._tables[name]
        except KeyError:
            raise KeyError(f"no insight table {name!r} is declared in area {cls.area!r} "
                           f"(catalog_pipelines/model/insight_tables.py); declared: {', '.join(cls._tables)}") from None


class _Declared:
    """Marker: `name = table()` in an area class becomes `InsightTable(area, name)`."""


def table() -> InsightTable:
    return _Declared()  # type: ignore[return-value]  # replaced by an InsightTable in __init_subclass__


class SCORECARDS(InsightArea, area="scorecards"):
    # written by `scorecard_results` (services.scorecards.evaluate_scorecards)
    checks = table()
    tracks = table()
    campaigns = table()
    entities = table()
    results = table()
    levels = table()
    fix_candidates = table()
    campaign_members = table()
    result_changes = table()  # appended
    level_changes = table()  # appended
    regressions = table()  # appended
    evaluations = table()  # appended
    # written by `scorecard_reports` (services.scorecards.build_scorecard_reports)
    rollup_levels = table()
    rollup_summary = table()
    rollup_checks = table()
    fix_next = table()
    rollup_history = table()  # appended
    campaign_progress = table()  # appended
    # the exemption register (CLI `scorecards exempt` / `unexempt`)
    exemptions = table()


class SURVEYS(InsightArea, area="surveys"):
    # the published tables (`survey_trends`); every one is checked against the k-threshold
    trends = table()
    choices = table()
    comments = table()
    waves = table()


class USAGE(InsightArea, area="usage"):
    # `usage_insights` (analytics.usage.insights.compute_insights returns them by name)
    daily = table()
    weekly = table()
    cohorts = table()
    reach = table()
    top_daily = table()
    search_terms_daily = table()
    templates_daily = table()
    funnels_daily = table()
    adoption = table()
    plugin_adoption = table()
    meta = table()


class HISTORY(InsightArea, area="history"):
    # `catalog_changes` (services.history.build_change_summary)
    changes_by_cycle = table()
    ownership_changes = table()
    lost_owners = table()


class ORPHANS(InsightArea, area="orphans"):
    report = table()
    trend = table()  # appended
    removals_by_cycle = table()


class GRAPH(InsightArea, area="graph"):
    nodes = table()
    edges = table()
    cycles = table()
    most_depended_on = table()
    team_dependencies = table()
    system_dependencies = table()
    team_ownership = table()


class SKILLS(InsightArea, area="skills"):
    profiles = table()
    wishes = table()
    coverage = table()
    needs = table()
    knowledge_risks = table()
    mentor_matches = table()
    unmatched_wishes = table()
    mentor_load = table()
    gig_matches = table()
    taxonomy = table()
    members = table()  # group → member (sub-groups included), so the CLI filters by team


class FACTS(InsightArea, area="facts"):
    # the catalog's own facts (analytics.facts.sources.FACT_SOURCE_SPECS): history with retention
    # applied, and the newest row per entity (`catalog_latest`, what scorecards read). Collected
    # facts live in storage/schema.py's fact_* tables; `collected_latest` is the long frame of
    # them the site reads (services.facts.collected_latest_frame, never written as a table).
    catalog = table()
    catalog_latest = table()
    collected_latest = table()

    @classmethod
    def history(cls, source: str) -> InsightTable:
        return cls.get(source)

    @classmethod
    def latest(cls, source: str) -> InsightTable:
        return cls.get(f"{source}_latest")


class DELIVERY(InsightArea, area="delivery"):
    # `delivery_metrics` (services.delivery.compute_delivery_metrics; analytics.delivery.metrics
    # returns them by name): DORA's four keys and PR flow per entity, team and organisation
    dora_summary = table()  # teams and the organisation
    dora_weekly = table()
    dora_entities = table()  # dora_summary's rows of single entities
    dora_weekly_entities = table()
    pr_flow = table()
    pr_summary = table()
    pr_sizes = table()
    stale_prs = table()
    review_load = table()
    reviewer_load = table()
    incidents_summary = table()
    entity_facts = table()  # the scorecards' `delivery.*` facts, one row per entity
    source_control = table()  # per entity: repository, open PRs, last merge, last deployment
    meta = table()
    # what a new day reads back of the last run (services.delivery: it recomputes its days only):
    # the state row, and the day-grain facts, source control and digests as Parquet documents
    facts_state = table()
    facts_kept = table()


AREAS: tuple[type[InsightArea], ...] = (SCORECARDS, SURVEYS, USAGE, ORPHANS, GRAPH, SKILLS, FACTS, DELIVERY)


def all_tables() -> tuple[InsightTable, ...]:
    """Every declared insight table."""
    return tuple(t for area in AREAS for t in area.tables())
