"""The dashboards site: a static, offline HTML site built after the insight assets.

`dashboards_site` calls `catalog_pipelines.services.site.build` (which the CLI shares): it reads the
catalog, the ingestion ledger, the audit log and every insight table, and writes the site with
`dashboards.build_site` into `<output_dir>/dashboards` (the operator's full site).
Audiences listed in the run config also get a restricted copy each, under
`<output_dir>/dashboards-for/<audience>/`, containing only what the RBAC policy lets them see.

(No `from __future__ import annotations` here: Dagster resolves the `Config` parameter from the
real annotation.)
"""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS, freshness_policy
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.services.site import upstream as _upstream_names

DASHBOARDS_SITE = dg.AssetKey("dashboards_site")
SITE_SIZE_CHECK = "site_within_size_budget"
PAGES_CHECK = "every_page_built"
PEOPLE_CHECK = "people_figures_respect_k"
SIZE_BUDGET_BYTES = 30_000_000  # 30 MB (decimal, the stricter reading)

# Everything the site reads (services.site.UPSTREAM, as asset keys).
UPSTREAM = [dg.AssetKey.from_user_string(name) for name in _upstream_names()]


def latest_materializations(instance: dg.DagsterInstance, names: list[str]) -> dict[str, datetime]:
    """When each asset (by user string, `services.site.source_names`) was last materialised, as the dashboards show it."""
    out = {}
    for name in names:
        key = dg.AssetKey.from_user_string(name)
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            out[key.to_user_string()] = datetime.fromtimestamp(event.timestamp, tz=UTC)
    return out


# ---------------------------------------------------------------------------------------------
# the asset


class DashboardsSiteConfig(dg.Config):
    out_dir: str = Field(default="", description="Where the full site goes; empty = <output_dir>/dashboards.")
    audiences: list[str] = Field(
        default_factory=list,
        description="Also build a restricted copy for each of these people (entity refs such as user:default/alice), "
        "under <output_dir>/dashboards-for/<name>, with only what the RBAC policy lets them see.",
    )


@dg.asset(
    key=DASHBOARDS_SITE,
    deps=UPSTREAM,
    group_name="dashboards",
    kinds={"html", "plotly"},
    # Rebuild when any insight changes; an area that has never run only leaves its page out.
    automation_condition=EAGER_DESPITE_MISSING_DEPS,
    freshness_policy=freshness_policy("dashboards_site"),
    check_specs=[
        dg.AssetCheckSpec(PAGES_CHECK, asset=DASHBOARDS_SITE, description="Every page whose data exists was built without an error."),
        dg.AssetCheckSpec(SITE_SIZE_CHECK, asset=DASHBOARDS_SITE, description="The full site stays within 30 MB (plotly.js included)."),
        # In the asset's op, so every run of the site (automation included) evaluates it: this run
        # verified k on the survey tables it rendered, or left every survey figure out.
        dg.AssetCheckSpec(PEOPLE_CHECK, asset=DASHBOARDS_SITE, blocking=True,
                          description="The survey figures on the site (full and every audience copy) were verified against k in this run; "
                          "when they fail, the site was built without them."),
    ],
)
def dashboards_site(context: dg.AssetExecutionContext, config: DashboardsSiteConfig, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """A static, offline HTML site for analysts: catalog overview, ingestion health, scorecards,
    survey trends (suppressed cells marked), portal usage, catalog health, skills exchange, the
    audit log, and one page per team. plotly.js ships once as a local file, so the site works
    from file:// and behind any static server. Pages whose data does not exist yet are listed on
    the index as such. Restricted copies per audience follow the RBAC policy."""
    import time

    from catalog_pipelines.services import site

    started = time.perf_counter()
    engine = catalog.get_engine()
    materialized = latest_materializations(context.instance, site.source_names(engine))
    out = site.site_dir(config.out_dir)
    built = site.build(engine, out=out, audiences=config.audiences, materialized=materialized)
    report, audiences, people_violations = built["report"], built["audiences"], built["people_violations"]
    for error in report.errors:
        context.log.error(f"dashboards: {error}")
    missing = [f"{p['title']}: {p['reason']}" for p in report.unavailable]
    return dg.MaterializeResult(
        metadata={
            # A link the UI opens (the path is shown too, for a shell).
            "index": dg.MetadataValue.url((out / "index.html").resolve().as_uri()),
            "index_path": dg.MetadataValue.path(str(out / "index.html")),
            "pages": len(report.written),
            "team_pages": report.team_pages,
            "unavailable": dg.MetadataValue.md("\n".join(f"- {m}" for m in missing) or "_none_"),
            "files": report.files,
            "size_mb": round(report.bytes / 1024 / 1024, 2),
            "audiences": dg.MetadataValue.json(audiences),
            "seconds": round(time.perf_counter() - started, 2),
        },
        check_results=[
            dg.AssetCheckResult(check_name=PAGES_CHECK, passed=not report.errors, severity=dg.AssetCheckSeverity.WARN,
                                metadata={"errors": dg.MetadataValue.json(report.errors)}),
            dg.AssetCheckResult(check_name=SITE_SIZE_CHECK, passed=report.bytes <= SIZE_BUDGET_BYTES,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"bytes": report.bytes, "budget_bytes": SIZE_BUDGET_BYTES}),
            dg.AssetCheckResult(check_name=PEOPLE_CHECK, passed=not people_violations, severity=dg.AssetCheckSeverity.ERROR,
                                metadata={"violations": len(people_violations), "examples": dg.MetadataValue.json(people_violations[:20]),
                                          "survey_figures_published": not people_violations}),
        ],
    )


dashboards_assets = [dashboards_site]
