"""Catalog health: the orphan report, the relationship graph and the skills exchange.

Each asset makes one call to `catalog_pipelines.services.catalog_health` (which reads the catalog,
calls the Dagster-free functions in `analytics/` (orphans, graph, skills) and stores the results as insight tables (`insight_orphans_*`,
`insight_graph_*`, `insight_skills_*`)), which the CLI (`catalog deps`, `catalog orphans`,
`skills …`) and the dashboards read. All three run after every catalog snapshot.

(No `from __future__ import annotations` here: Dagster resolves the `Config` parameter from the
real annotation, and fails on the string one.)
"""

import time

import dagster as dg
from pydantic import Field

from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.automation import freshness_policy
from catalog_pipelines.resources import CatalogDatabase

GROUP = "catalog_health"

ORPHAN_ERRORS_CHECK = "no_error_findings"
CYCLES_CHECK = "no_dependency_cycles"
DANGLING_CHECK = "dependency_targets_resolve"
CAPACITY_CHECK = "mentor_capacity_respected"
GAPS_CHECK = "no_knowledge_gaps"

# The snapshot is unpartitioned, so plain eager() is right here (the any-deps-missing caveat in
# ARCHITECTURE.md §6 is about the dynamically partitioned chunk assets upstream of it).
REFRESH = dg.AutomationCondition.eager()


def _preview(frame, columns: list[str], rows: int = 10) -> dg.MetadataValue:
    if frame is None or len(frame) == 0:
        return dg.MetadataValue.md("_none_")
    return dg.MetadataValue.md(frame[columns].head(rows).to_markdown(index=False))


# ---------------------------------------------------------------------------------------------
# Orphan report
# ---------------------------------------------------------------------------------------------


class OrphanReportConfig(dg.Config):
    admin_group: str = Field(
        default="group:default/catalog-admins",
        description="Group notified when no owner, system owner or domain owner can be found.",
    )
    removal_cycles: int = Field(
        default=1, description="List each provider's removals from this many latest cycles (older ones only while still referenced)."
    )


@dg.asset(
    deps=[CATALOG_SNAPSHOT],
    group_name=GROUP,
    kinds={"pandas"},
    automation_condition=REFRESH,
    freshness_policy=freshness_policy("orphan_report"),
    check_specs=[dg.AssetCheckSpec(ORPHAN_ERRORS_CHECK, asset="orphan_report", description="No error-severity finding (unowned, broken owner, broken dependency).")],
)
def orphan_report(config: OrphanReportConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Orphans and broken references: entities removed from their source (when, which cycle, which
    provider), owners that do not resolve, dangling relation targets, components in no system,
    groups with no members, users in no group and entities with no owner. Each row carries a
    severity and the group to notify. A count per category is appended to a trend table on every
    run; removals are also counted per provider and ingestion cycle.
    """
    from catalog_pipelines.services.catalog_health import build_orphan_report

    started = time.perf_counter()
    built = build_orphan_report(catalog.get_engine(), admin_group=config.admin_group or None, removal_cycles=config.removal_cycles)
    report, removals, counts = built["report"], built["removals"], built["summary"]
    errors = int((report["severity"] == "error").sum()) if len(report) else 0
    latest = (
        removals.groupby("provider")["cycle"].max().astype(int).to_dict() if len(removals) else {}
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(report),
            "errors": errors,
            "warnings": int((report["severity"] == "warning").sum()) if len(report) else 0,
            "by_category": dg.MetadataValue.json(
                {c: int(n) for c, n in report["category"].value_counts().sort_index().items()} if len(report) else {}
            ),
            "latest_removal_cycle": dg.MetadataValue.json(latest),
            "preview": _preview(report, ["severity", "category", "ref", "notify_group", "detail"]),
            "seconds": round(time.perf_counter() - started, 2),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ORPHAN_ERRORS_CHECK,
                passed=errors == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"errors": errors, "summary": _preview(counts, ["category", "severity", "count"], 20)},
            )
        ],
    )


# ---------------------------------------------------------------------------------------------
# Relationship graph
# ---------------------------------------------------------------------------------------------


def _cross_team_edges(team_dependencies) -> int:
    if len(team_dependencies) == 0:
        return 0
    return int(team_dependencies.loc[~team_dependencies["internal"].astype(bool), "edges"].sum())


class RelationshipGraphConfig(dg.Config):
    top: int = Field(default=50, description="How many most-depended-on entities to keep.")


@dg.asset(
    deps=[CATALOG_SNAPSHOT],
    group_name=GROUP,
    kinds={"pandas", "scipy"},
    automation_condition=REFRESH,
    freshness_policy=freshness_policy("relationship_graph"),
    check_specs=[
        dg.AssetCheckSpec(CYCLES_CHECK, asset="relationship_graph", description="No dependency cycle (components that transitively need themselves)."),
        dg.AssetCheckSpec(DANGLING_CHECK, asset="relationship_graph", description="Every dependency points at an entity in the catalog."),
    ],
)
def relationship_graph(config: RelationshipGraphConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """The ownership and dependency graph of the catalog: one node per entity (owner, effective
    system, in-degree, cycle), one "needs" edge per dependsOn / consumesApi / provided-by /
    subcomponent relation, dependency cycles with an example path, the most depended-on entities
    by blast radius, and the graph contracted per team and per system. `catalog-pipelines catalog
    deps REF` answers impact questions from these tables.
    """
    from catalog_pipelines.services.catalog_health import build_relationship_graph

    started = time.perf_counter()
    built = build_relationship_graph(catalog.get_engine(), top=config.top)
    result, analysed = built["result"], built["analysis_seconds"]
    dangling = int((~result.nodes["in_catalog"]).sum())
    cycles = len(result.cycles)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.nodes),
            "nodes": len(result.nodes),
            "edges": len(result.edges),
            "cycles": cycles,
            "entities_in_cycles": int(result.cycles["size"].sum()) if cycles else 0,
            "dangling_targets": dangling,
            "cross_team_edges": _cross_team_edges(result.team_dependencies),
            "most_depended_on": _preview(result.most_depended_on, ["rank", "ref", "owner", "direct_dependents", "transitive_dependents", "dependent_teams"]),
            "analysis_seconds": round(analysed, 2),
            "seconds": round(time.perf_counter() - started, 2),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CYCLES_CHECK,
                passed=cycles == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"cycles": cycles, "largest": _preview(result.cycles, ["cycle_id", "size", "example"], 5)},
            ),
            dg.AssetCheckResult(
                check_name=DANGLING_CHECK,
                passed=dangling == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"dangling_targets": dangling},
            ),
        ],
    )


# ---------------------------------------------------------------------------------------------
# Skills exchange
# ---------------------------------------------------------------------------------------------


class SkillsExchangeConfig(dg.Config):
    config_dir: str = Field(
        default="",
        description="Folder with skills.yaml (taxonomy, required), profiles.csv and gigs.yaml (both optional); empty = config/skills.",
    )
    synthetic_profiles: bool = Field(
        default=False,
        description="Demo only: make up seeded profiles for people who have none (e.g. the synthetic org).",
    )


@dg.asset(
    deps=[CATALOG_SNAPSHOT],
    group_name=GROUP,
    kinds={"pandas", "scipy"},
    automation_condition=REFRESH,
    freshness_policy=freshness_policy("skills_exchange"),
    check_specs=[
        dg.AssetCheckSpec(CAPACITY_CHECK, asset="skills_exchange", description="No mentor has more mentees than their capacity."),
        dg.AssetCheckSpec(GAPS_CHECK, asset="skills_exchange", description="Every skill a team depends on is held by at least one member."),
    ],
)
def skills_exchange(config: SkillsExchangeConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Who knows what and who wants to learn it: skill profiles from User annotations and the
    skills CSV, learning wishes matched to mentors (cross-team first, within capacity), gigs and
    embeds staffed from the people with the skills, skill coverage per team (rolled up the
    hierarchy) and single points of knowledge: skills a team depends on that one member, or
    nobody, has.
    """
    from catalog_pipelines.model.insight_tables import SKILLS
    from catalog_pipelines.services.catalog_health import build_skills_exchange

    started = time.perf_counter()
    built = build_skills_exchange(catalog.get_engine(), config_dir=config.config_dir, synthetic_profiles=config.synthetic_profiles)
    tables, profiles, mentoring, gig_matches, risks = (built[k] for k in ("tables", "profiles", "mentoring", "gig_matches", "risks"))
    over = mentoring.load[mentoring.load["assigned"] > mentoring.load["capacity"]]
    gaps = risks[risks["risk"] == "gap"] if len(risks) else risks
    singles = int((risks["risk"] == "single_point").sum()) if len(risks) else 0
    matches = mentoring.matches
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(tables[SKILLS.profiles]),
            "people_with_skills": int(profiles.skills["user_ref"].nunique()) if len(profiles.skills) else 0,
            "learning_wishes": len(profiles.wishes),
            "mentorships": len(matches),
            "cross_team_share": round(float(matches["cross_team"].mean()), 3) if len(matches) else 0.0,
            "unmatched_wishes": len(mentoring.unmatched),
            "gig_seats_filled": int(gig_matches["assigned"].sum()) if len(gig_matches) else 0,
            "single_points_of_knowledge": singles,
            "knowledge_gaps": len(gaps),
            "risks": _preview(risks, ["group_ref", "skill", "risk", "holder"]),
            "seconds": round(time.perf_counter() - started, 2),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CAPACITY_CHECK,
                passed=over.empty,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"over_capacity": len(over)},
            ),
            dg.AssetCheckResult(
                check_name=GAPS_CHECK,
                passed=gaps.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"gaps": len(gaps), "single_points": singles},
            ),
        ],
    )


catalog_health_assets = [orphan_report, relationship_graph, skills_exchange]
