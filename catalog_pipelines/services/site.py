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


# ------------------------------------------------------------------------------------ export

EXPORT_FORMATS = ("pdf", "png")
# A4 at 96 CSS px per inch, less the print stylesheet's 10 mm margins: 190 × 277 mm.
A4_CONTENT_PX = (718, 1046)
PNG_WIDTH = 1200


class ExportError(RuntimeError):
    """The page could not be exported (no site, unknown team, no browser)."""


def team_page(site: Path, team: str) -> Path:
    """The page of `team` in the built site: by group ref, name (`payments`, `group:payments`),
    page file name or title, case-insensitive; LookupError (with near matches) when unknown."""
    import orjson

    from catalog_pipelines.services.catalog import UnknownRef, near_refs

    manifest = Path(site) / "manifest.json"
    if not manifest.exists():
        raise ExportError(f"no site in {site}: run `catalog-pipelines dashboards build` first")
    teams = orjson.loads(manifest.read_bytes()).get("teams", [])
    wanted = team.strip().lower()
    for entry in teams:
        ref = str(entry.get("ref") or "").lower()
        names = {ref, ref.split("/", 1)[-1], ref.replace("default/", ""), Path(entry["path"]).stem.lower(),
                 str(entry.get("title", "")).lower()}
        if wanted in names:
            return Path(site) / entry["path"]
    near = near_refs([str(e.get("ref") or e["path"]) for e in teams], team)
    raise UnknownRef(f"no team page for {team} in {site}" + (f"; did you mean {' or '.join(near)}?" if near else ""))


def pdf_page_count(data: bytes) -> int:
    """Pages in a PDF Chromium wrote (page objects are plain dictionaries there): `/Type /Page`."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def export_team(site: Path, team: str, fmt: str, out: Path, *, timeout_ms: int = 60_000) -> dict[str, Any]:
    """One team's page as a one-page A4 PDF (the print stylesheet, scaled down until it fits) or a
    full-page PNG, rendered by headless Chromium through Playwright. Returns what was written."""
    import shutil

    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    page_path = team_page(site, team)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise ExportError("exporting needs Chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ExportError("exporting needs playwright (pip install playwright)") from exc
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import os

    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        try:
            width = A4_CONTENT_PX[0] if fmt == "pdf" else PNG_WIDTH
            tab = browser.new_page(viewport={"width": width, "height": A4_CONTENT_PX[1]})
            tab.goto(page_path.as_uri())
            tab.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
            if fmt == "png":
                tab.screenshot(path=str(out), full_page=True, type="png")
                return {"team_page": str(page_path), "format": fmt, "out": str(out), "bytes": out.stat().st_size}
            tab.emulate_media(media="print")
            height = tab.evaluate("() => document.documentElement.scrollHeight")
            scale = min(1.0, A4_CONTENT_PX[1] / max(height, 1))
            for _ in range(8):  # Chromium reflows at the new scale: shrink until it is one page
                data = tab.pdf(format="A4", scale=max(scale, 0.1), print_background=True, prefer_css_page_size=True)
                if pdf_page_count(data) <= 1 or scale <= 0.1:
                    break
                scale *= 0.9
            out.write_bytes(data)
            return {"team_page": str(page_path), "format": fmt, "out": str(out), "bytes": len(data),
                    "pages": pdf_page_count(data), "scale": round(max(scale, 0.1), 3)}
        finally:
            browser.close()
