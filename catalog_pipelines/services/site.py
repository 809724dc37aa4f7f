"""The dashboards site: read everything it is built from, build it (full and per audience).

The `dashboards_site` asset and `catalog-pipelines dashboards build` call these functions; the
asset adds the Dagster materialisation times (`materialized`), which the CLI reads too when an
instance is there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from dashboards import SiteInputs, SiteReport

AUDIT_PREFIXES = ("ingestion.", "scorecard.exemption.")
# Scorecard results the team pages list (failing entities and why); passed and not applicable
# results are counted by the roll-ups and never listed one by one.
FAILING_STATES = ("failed", "warning", "not_reported", "error")
AUDIT_LIMIT = 5000

# Everything the site reads, as asset keys in their user-string form. Keys, not imports: the
# dashboards do not need the insight modules, and a typo here is caught by the test that loads the
# full Definitions with no external asset.
UPSTREAM = [
    "catalog_snapshot",
    "scorecard_reports",
    "survey_trends",
    "usage_insights",
    "orphan_report",
    "relationship_graph",
    "skills_exchange",
    "catalog_changes",
    # + one `<collector>_facts` asset per collector in collectors.yaml (`upstream()`)
]


def upstream() -> list[str]:
    """UPSTREAM and the configured collectors' fact assets (the team pages read their facts)."""
    from catalog_pipelines.services.facts import collectors_file

    return [*UPSTREAM, *(f"{e.name}_facts" for e in collectors_file().collectors)]


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


def source_names(engine: "sa.Engine") -> list[str]:
    """The upstream asset keys plus each provider's chunk and sweep assets (the ingestion page's
    sources), as user strings (`<provider>_entity_chunk`)."""
    from catalog_pipelines.model.asset_names import ingestion_asset_names
    from catalog_pipelines.storage.ledger import Ledger

    return [*upstream(), *(name for p in Ledger(engine).providers() for name in ingestion_asset_names(p))]


def _audit_frame(engine: "sa.Engine") -> "pd.DataFrame":
    import pandas as pd

    from catalog_pipelines.storage.audit import entries

    rows = [e for prefix in AUDIT_PREFIXES for e in entries(engine, action_prefix=prefix, limit=AUDIT_LIMIT)]
    return pd.DataFrame([{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "outcome": e.outcome,
                          "details": e.details} for e in rows], columns=["at", "actor", "action", "target", "outcome", "details"])


def load_site_inputs(engine: "sa.Engine", materialized: dict[str, datetime] | None = None) -> "SiteInputs":
    """Everything the site is built from, read from the catalog database."""
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.frames import entities_frame, ledger_frames, removals_frame
    from catalog_pipelines.storage.insights import read_frame
    from dashboards.inputs import TABLES, SiteInputs

    # Bodies are most of the memory and the site needs none: spec fields come from SQL, and only
    # the people (User/Group bodies) are read for the org.
    entities = entities_frame(engine, with_body=False)
    org = org_graph(engine)
    ledger = ledger_frames(engine)
    tables = {}
    from catalog_pipelines.model.insight_tables import FACTS
    from catalog_pipelines.services.facts import collected_latest_frame

    from catalog_pipelines.model.insight_tables import SCORECARDS
    from catalog_pipelines.storage.scorecards import select_rows

    for table in TABLES:
        if table is FACTS.collected_latest:
            frame = collected_latest_frame(engine)
        elif table is SCORECARDS.results:  # 25 rows per entity: only the ones the drill-down lists
            frame = select_rows(engine, table, state=list(FAILING_STATES))
        else:
            frame = read_frame(engine, table)
        if frame is not None:
            tables[table] = frame
    return SiteInputs(
        org=org,
        entities=entities,
        ingestions=ledger["ingestions"],
        marks=ledger["marks"],
        rejections=ledger["rejections"],
        removals=removals_frame(engine),
        audit=_audit_frame(engine),
        tables=tables,
        materialized=materialized or {},
        generated_at=datetime.now(UTC),
        leaderboard_min_entities=leaderboard_min_entities(),
    )


def leaderboard_min_entities() -> int | None:
    """`leaderboard.minEntities` of the scorecard configuration; None (the default applies) when
    the configuration cannot be read: a broken scorecard file must not stop the dashboards."""
    from analytics.scorecards.config import ScorecardConfigError, load_config
    from catalog_pipelines.services.facts import fact_catalog
    from catalog_pipelines.services.scorecards import scorecards_config_dir

    try:
        return load_config(scorecards_config_dir(), facts=fact_catalog()).leaderboard_min_entities
    except (ScorecardConfigError, OSError):
        return None


def build_for_audience(inputs: "SiteInputs", audience: str, out: Path, policy_path: Path | None = None) -> "SiteReport":
    """A restricted copy of the site: only what `audience` may see under the RBAC policy."""
    from analytics.rbac import Policy
    from catalog_pipelines.permissions import normalize_actor
    from catalog_pipelines.permissions import policy_path as default_policy
    from dashboards import Access, build_site

    from catalog_pipelines.services.catalog import unknown_ref

    actor = normalize_actor(audience)
    if actor not in inputs.org.users and actor not in inputs.org.all_groups():
        # A site for nobody would be built silently (everything denied): refuse, with near matches.
        raise unknown_ref(actor, [*inputs.org.users, *inputs.org.all_groups()], what="user or group")
    path = policy_path or default_policy()
    policy = Policy.from_file(path)
    access = Access.for_audience(policy, inputs.org, actor)
    return build_site(inputs, out, access, policy_source=policy.source + (f" @ {policy.digest}" if policy.digest else ""))


def build(engine: "sa.Engine", *, out: Path, audiences: list[str] = (), materialized: dict[str, datetime] | None = None) -> dict[str, Any]:
    """The full site into `out` and a restricted copy per audience (under `audience_dir`).

    Returns the full site's `report`, per audience its pages/team pages/path, and every
    `people_violations` entry (full site and copies, each once).
    """
    from dashboards import build_site

    inputs = load_site_inputs(engine, materialized)
    report = build_site(inputs, out)
    built: dict[str, Any] = {}
    people_violations = list(report.people_violations)
    for audience in audiences:
        restricted = build_for_audience(inputs, audience, audience_dir(audience))
        built[audience] = {"pages": len(restricted.written), "team_pages": restricted.team_pages, "path": str(restricted.out_dir)}
        people_violations += [v for v in restricted.people_violations if v not in people_violations]
    return {"report": report, "audiences": built, "people_violations": people_violations}
