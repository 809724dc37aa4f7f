"""The dashboards site: a static, offline HTML site built after the insight assets.

`dashboards_site` reads the catalog, the ingestion ledger, the audit log and every insight table
through the `catalog` resource (`load_site_inputs`, a plain function the CLI shares), and writes
the site with `dashboards.build_site` into `<output_dir>/dashboards` (the operator's full site).
Audiences listed in the run config also get a restricted copy each, under
`<output_dir>/dashboards-for/<audience>/`, containing only what the RBAC policy lets them see.

(No `from __future__ import annotations` here: Dagster resolves the `Config` parameter from the
real annotation.)
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS
from catalog_pipelines.resources import CatalogDatabase

if TYPE_CHECKING:
    import pandas as pd

    from dashboards import SiteInputs, SiteReport

DASHBOARDS_SITE = dg.AssetKey("dashboards_site")
SITE_SIZE_CHECK = "site_within_size_budget"
PAGES_CHECK = "every_page_built"
PEOPLE_CHECK = "people_figures_respect_k"
SIZE_BUDGET_BYTES = 30_000_000  # 30 MB (decimal, the stricter reading)
AUDIT_PREFIXES = ("ingestion.", "scorecard.exemption.")
AUDIT_LIMIT = 5000

# Everything the site reads. Keys, not imports: the dashboards do not need the insight modules,
# and a typo here is caught by the test that loads the full Definitions with no external asset.
UPSTREAM = [
    dg.AssetKey("catalog_snapshot"),
    dg.AssetKey("scorecard_reports"),
    dg.AssetKey("survey_trends"),
    dg.AssetKey("usage_insights"),
    dg.AssetKey("orphan_report"),
    dg.AssetKey("relationship_graph"),
    dg.AssetKey("skills_exchange"),
    dg.AssetKey("vulnerabilities_facts"),
    dg.AssetKey("ci_facts"),
    dg.AssetKey("tickets_facts"),
]


def site_dir(out_dir: str = "") -> Path:
    from catalog_pipelines.settings import Settings

    return Path(out_dir) if out_dir else Settings.from_env().output_dir / "dashboards"


def audience_dir(audience: str, base: Path | None = None) -> Path:
    """`<output_dir>/dashboards-for/<user>` for `user:default/<user>` (namespace kept otherwise)."""
    from catalog_pipelines.permissions import normalize_actor
    from catalog_pipelines.settings import Settings

    kind, _, rest = normalize_actor(audience).partition(":")
    namespace, _, name = rest.partition("/")
    slug = name if (kind, namespace) == ("user", "default") else f"{kind}-{namespace}-{name}"
    return (base or Settings.from_env().output_dir / "dashboards-for") / slug


# ---------------------------------------------------------------------------------------------
# plain functions (no Dagster): the asset, the CLI and the tests share them


def _ledger_frames(engine: Any) -> dict[str, "pd.DataFrame | None"]:
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.storage import schema as s

    frames: dict[str, pd.DataFrame | None] = {}
    i, m, r = s.ingestions, s.ingestion_marks, s.rejections
    queries = {
        "ingestions": sa.select(i.c.id, i.c.provider, i.c.cycle, i.c.status, i.c.next_action, i.c.next_action_at, i.c.attempts,
                                i.c.last_error, i.c.created_at, i.c.ingestion_completed_at, i.c.rest_completed_at,
                                i.c.entities_seen, i.c.removed, i.c.sweep_outcome),
        "marks": sa.select(m.c.ingestion_id, m.c.sequence, m.c.entity_count, m.c.added, m.c.changed, m.c.unchanged,
                           m.c.rejected, m.c.duration_ms, m.c.created_at),
        "rejections": sa.select(r.c.provider, r.c.ingestion_id, r.c.rule, r.c.field),
    }
    with engine.connect() as conn:
        for name, query in queries.items():
            try:
                result = conn.execute(query)
                frames[name] = pd.DataFrame(result.all(), columns=list(result.keys()))
            except sa.exc.DBAPIError:  # a database without the ledger yet
                frames[name] = None
    return frames


def _audit_frame(engine: Any) -> "pd.DataFrame":
    import pandas as pd

    from catalog_pipelines.storage.audit import entries

    rows = [e for prefix in AUDIT_PREFIXES for e in entries(engine, action_prefix=prefix, limit=AUDIT_LIMIT)]
    return pd.DataFrame([{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "outcome": e.outcome,
                          "details": e.details} for e in rows], columns=["at", "actor", "action", "target", "outcome", "details"])


def load_site_inputs(catalog: CatalogDatabase, materialized: dict[str, datetime] | None = None) -> "SiteInputs":
    """Everything the site is built from, read from the catalog database."""
    from analytics.org import OrgGraph
    from catalog_pipelines.storage.insights import read_frame
    from dashboards.inputs import SiteInputs, table_keys

    engine = catalog.get_engine()
    # Bodies are most of the memory and the site needs none: spec fields come from SQL, and only
    # the people (User/Group bodies) are read for the org.
    entities = catalog.entities_frame(with_body=False)
    org = OrgGraph.from_entities(catalog.store().iter_entities(kinds=["User", "Group"]))
    ledger = _ledger_frames(engine)
    tables = {}
    for area, name in table_keys():
        frame = read_frame(engine, area, name)
        if frame is not None:
            tables[f"{area}/{name}"] = frame
    return SiteInputs(
        org=org,
        entities=entities,
        ingestions=ledger["ingestions"],
        marks=ledger["marks"],
        rejections=ledger["rejections"],
        removals=catalog.removals_frame(),
        audit=_audit_frame(engine),
        tables=tables,
        materialized=materialized or {},
        generated_at=datetime.now(UTC),
    )


def latest_materializations(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> dict[str, datetime]:
    """When each asset was last materialised, as the dashboards show it."""
    out = {}
    for key in keys:
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            out[key.to_user_string()] = datetime.fromtimestamp(event.timestamp, tz=UTC)
    return out


def source_keys(inputs: "SiteInputs | None" = None, providers: list[str] | None = None) -> list[dg.AssetKey]:
    """The upstream keys plus each provider's chunk and sweep assets (the ingestion page's sources)."""
    names = providers if providers is not None else (
        sorted(inputs.ingestions["provider"].unique()) if inputs is not None and inputs.ingestions is not None else [])
    return [*UPSTREAM, *(dg.AssetKey([p, part]) for p in names for part in ("entity_chunk", "removal_sweep"))]


def build_for_audience(inputs: "SiteInputs", audience: str, out: Path, policy_path: Path | None = None) -> "SiteReport":
    """A restricted copy of the site: only what `audience` may see under the RBAC policy."""
    from analytics.rbac import Policy
    from catalog_pipelines.permissions import normalize_actor
    from catalog_pipelines.permissions import policy_path as default_policy
    from dashboards import Access, build_site

    path = policy_path or default_policy()
    policy = Policy.from_file(path)
    access = Access.for_audience(policy, inputs.org, normalize_actor(audience))
    return build_site(inputs, out, access, policy_source=policy.source + (f" @ {policy.digest}" if policy.digest else ""))


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

    from dashboards import build_site

    started = time.perf_counter()
    keys = source_keys(providers=catalog.ledger().providers())
    inputs = load_site_inputs(catalog, latest_materializations(context.instance, keys))
    out = site_dir(config.out_dir)
    report = build_site(inputs, out)
    audiences = {}
    people_violations = list(report.people_violations)
    for audience in config.audiences:
        restricted = build_for_audience(inputs, audience, audience_dir(audience))
        audiences[audience] = {"pages": len(restricted.written), "team_pages": restricted.team_pages, "path": str(restricted.out_dir)}
        people_violations += [v for v in restricted.people_violations if v not in people_violations]
    for error in report.errors:
        context.log.error(f"dashboards: {error}")
    missing = [f"{p['title']}: {p['reason']}" for p in report.unavailable]
    return dg.MaterializeResult(
        metadata={
            "index": dg.MetadataValue.path(str(out / "index.html")),
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
