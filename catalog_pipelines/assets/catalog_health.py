"""Catalog health: the orphan report, the relationship graph and the skills exchange.

Each asset reads the catalog through the `catalog` resource, calls the Dagster-free functions in
`analytics/` (orphans, graph, skills) and stores the results as insight tables (`insight_orphans_*`,
`insight_graph_*`, `insight_skills_*`), which the CLI (`catalog deps`, `catalog orphans`,
`skills …`) and the dashboards read. All three run after every catalog snapshot.

(No `from __future__ import annotations` here: Dagster resolves the `Config` parameter from the
real annotation, and fails on the string one.)
"""

import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase

GROUP = "catalog_health"
ORPHANS_AREA, GRAPH_AREA, SKILLS_AREA = "orphans", "graph", "skills"

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
    check_specs=[dg.AssetCheckSpec(ORPHAN_ERRORS_CHECK, asset="orphan_report", description="No error-severity finding (unowned, broken owner, broken dependency).")],
)
def orphan_report(config: OrphanReportConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Orphans and broken references: entities removed from their source (when, which cycle, which
    provider), owners that do not resolve, dangling relation targets, components in no system,
    groups with no members, users in no group and entities with no owner. Each row carries a
    severity and the group to notify. A count per category is appended to a trend table on every
    run; removals are also counted per provider and ingestion cycle.
    """
    from analytics.health.orphans import orphan_report as build_report
    from analytics.health.orphans import removal_trend, summary, trend_snapshot
    from catalog_pipelines.storage.insights import write_frames

    started = time.perf_counter()
    removals = catalog.removals_frame()
    report = build_report(
        catalog.entities_frame(),
        catalog.relations_frame(),
        removals,
        catalog.org_graph(),
        admin_group=config.admin_group or None,
        removal_cycles=config.removal_cycles,
    )
    engine = catalog.get_engine()
    write_frames(engine, ORPHANS_AREA, {"report": report, "trend": trend_snapshot(report, datetime.now(UTC)),
                                        "removals_by_cycle": removal_trend(removals)}, append={"trend"})
    counts = summary(report)
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


def _index_graph_tables(engine) -> None:
    """Indexes for `catalog deps`, which walks the stored graph one hop per query.

    `write_frames` replaces the tables, dropping their indexes, so they are made again each run.
    """
    import sqlalchemy as sa

    from catalog_pipelines.storage.insights import table_name

    nodes, edges = table_name(GRAPH_AREA, "nodes"), table_name(GRAPH_AREA, "edges")
    with engine.begin() as conn:
        for table, column in ((nodes, "ref"), (nodes, "node_id"), (edges, "source_id"), (edges, "target_id")):
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} ({column})"))


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
    from analytics.health.graph import analyse
    from catalog_pipelines.storage.insights import write_frames

    started = time.perf_counter()
    # The graph folds every relation to its forward direction itself: the stored rows (each pair
    # once) are enough, and skip building and deduplicating 2 million inverse rows at 200k.
    result = analyse(catalog.entities_frame(), catalog.relations_frame(both_directions=False), catalog.org_graph(),
                     top=config.top)
    analysed = time.perf_counter() - started
    engine = catalog.get_engine()
    tables = {
        "nodes": result.nodes,
        # By node id (nodes.node_id): a third of the bytes of refs, for 700,000 rows at 200k entities.
        "edges": result.edge_ids,
        "cycles": result.cycles,
        "most_depended_on": result.most_depended_on,
        "team_dependencies": result.team_dependencies,
        "system_dependencies": result.system_dependencies,
        "team_ownership": result.team_ownership,
    }
    write_frames(engine, GRAPH_AREA, tables)
    _index_graph_tables(engine)
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
    from analytics.health import skills as sk
    from catalog_pipelines.settings import PROJECT_ROOT
    from catalog_pipelines.storage.insights import write_frames

    started = time.perf_counter()
    folder = Path(config.config_dir) if config.config_dir else PROJECT_ROOT / "config" / "skills"
    taxonomy = sk.Taxonomy.load(folder / "skills.yaml")
    entities = catalog.entities_frame()
    org = catalog.org_graph()
    sources = [sk.profiles_from_entities(entities, taxonomy)]
    if (folder / "profiles.csv").exists():
        sources.append(sk.profiles_from_csv(folder / "profiles.csv", taxonomy))
    profiles = sk.merge_profiles(*sources)
    if config.synthetic_profiles:
        from analytics.health.synthetic import synthetic_profiles

        made_up = synthetic_profiles(org, taxonomy)
        known = set(profiles.skills["user_ref"]) | set(profiles.wishes["user_ref"])
        keep = lambda f: f[~f["user_ref"].isin(known)]
        profiles = sk.merge_profiles(profiles, sk.SkillProfiles(keep(made_up.skills), keep(made_up.wishes), keep(made_up.people)))
    holder_level = int(taxonomy.setting("holder_min_level", sk.DEFAULT_LEVEL))
    mentoring = sk.match_mentors(
        profiles,
        org,
        min_level=int(taxonomy.setting("mentor_min_level", 3)),
        default_capacity=int(taxonomy.setting("default_mentor_capacity", 1)),
        candidates_per_wish=int(taxonomy.setting("candidates_per_wish", 10)),
    )
    gigs = sk.load_gigs(folder / "gigs.yaml") if (folder / "gigs.yaml").exists() else []
    gig_matches = sk.match_gigs(
        gigs,
        profiles,
        org,
        taxonomy,
        shortlist=int(taxonomy.setting("gig_shortlist", 5)),
        gigs_per_person=int(taxonomy.setting("gigs_per_person", 1)),
    )
    needs = sk.group_needs(entities, org, taxonomy)
    risks = sk.knowledge_risks(needs, profiles.skills, org, holder_min_level=holder_level)
    tables = {
        "profiles": sk.profiles_with_teams(profiles, org, taxonomy),
        "wishes": profiles.wishes,
        "coverage": sk.coverage(profiles.skills, org, holder_min_level=holder_level),
        "needs": needs,
        "knowledge_risks": risks,
        "mentor_matches": mentoring.matches,
        "unmatched_wishes": mentoring.unmatched,
        "mentor_load": mentoring.load,
        "gig_matches": gig_matches,
        "taxonomy": taxonomy.frame(),
        # Group → member (sub-groups included), so the CLI can filter by team without the catalog.
        "members": sk.rolled_members(org),
    }
    engine = catalog.get_engine()
    write_frames(engine, SKILLS_AREA, tables)
    over = mentoring.load[mentoring.load["assigned"] > mentoring.load["capacity"]]
    gaps = risks[risks["risk"] == "gap"] if len(risks) else risks
    singles = int((risks["risk"] == "single_point").sum()) if len(risks) else 0
    matches = mentoring.matches
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(tables["profiles"]),
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
