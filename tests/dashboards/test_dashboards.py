"""The dashboards site (dashboards/*), its asset and its CLI.

Protects: a page per area whose data exists and none (with the index saying so) for the rest;
one page per team; plotly.js shipped once, locally (no CDN); every figure valid plotly with a
title, axis titles and units; sortable tables embedded as data; freshness and source on every page;
suppressed survey cells marked and never shown; a restricted audience's site holding none of the
restricted teams' names or figures (every file searched); an empty policy showing nothing; the
leak guard, atomic replacement, and the Dagster asset and CLI end to end.
"""

from __future__ import annotations

import copy
import functools
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.rbac import Policy
from catalog_pipelines.settings import PROJECT_ROOT
from dashboards import Access, SiteLeakError, build_site
from dashboards.html import expand_figure, expand_table
from dashboards.sample import entities_frame_from, example_entities, sample_inputs
from dashboards.site import plotly_js, read_site_file
from catalog_pipelines.model.insight_tables import FACTS, SCORECARDS, SURVEYS, USAGE

ENTITIES = example_entities()
ORG = OrgGraph.from_entities(ENTITIES)
DANA = "user:default/dana"
SHIPPED_POLICY = Policy.from_file(PROJECT_ROOT / "config" / "permissions.yaml")
# Figures planted on the restricted team (zulu) and its department; none may reach dana's site.
SENTINELS = {"37591", "48213", "4.1234", "29231", "2.7183", "3.1415"}
ORG_WIDE = ["Catalog overview", "Ingestion health", "Scorecards", "Survey trends", "Portal usage", "Delivery", "Catalog health",
            "Catalog changes", "Skills exchange", "Audit log", "Teams"]
JSON_BLOB = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.DOTALL)


def inputs_with_sentinels():
    return copy.deepcopy(_inputs_with_sentinels())


@functools.lru_cache(maxsize=1)
def _inputs_with_sentinels():
    inputs = sample_inputs(ORG, entities_frame_from(ENTITIES), seed=3)
    t = inputs.tables
    facts = t[FACTS.collected_latest]
    sev = (facts["entity_ref"] == "component:default/zulu-ledger") & (facts["fact"] == "vulnerabilities_by_severity")
    facts.loc[sev, "value"] = [{**facts.loc[sev, "value"].iloc[0], "critical": 37591}]
    facts.loc[(facts["entity_ref"] == "component:default/zulu-vault") & (facts["fact"] == "open_issues"), "value"] = 48213
    trends = t[SURVEYS.trends]
    trends.loc[(trends["group_ref"] == "group:default/zulu") & (trends["metric"] == "mean") & ~trends["suppressed"], "value"] = 4.1234
    adoption = t[USAGE.adoption]
    adoption.loc[adoption["group_ref"] == "group:default/zulu", "active_members"] = 29231
    summary = t[SCORECARDS.rollup_summary]
    summary.loc[summary["scope_ref"] == "group:default/platform", "mean_level"] = 2.7183
    return inputs


@pytest.fixture(scope="module")
def full_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    inputs = inputs_with_sentinels()
    inputs.materialized = {"catalog_snapshot": datetime(2025, 6, 2, 7, 30, tzinfo=UTC),
                           "usage_insights": datetime(2025, 6, 2, 6, 0, tzinfo=UTC)}
    report = build_site(inputs, out)
    return out, report


@pytest.fixture(scope="module")
def dana_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("dana") / "site"
    report = build_site(inputs_with_sentinels(), out, Access.for_audience(SHIPPED_POLICY, ORG, DANA), policy_source="shipped")
    return out, report


def texts(root: Path) -> dict[str, str]:
    """Every file of the site as a reader gets it (packed team pages inflated, exports
    decompressed), except plotly.js, which must be the package's own copy."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            text = read_site_file(path)
            if path.name == "plotly.min.js":
                assert text == plotly_js()
                continue
            out[str(path.relative_to(root))] = text
    return out


def shared_layouts(root: Path) -> dict[str, dict]:
    path = root / "assets" / "layouts.js"
    if not path.exists():
        return {}
    text = path.read_text().splitlines()[0]  # the second line: the team pages' packing dictionary
    assert text.startswith("window.SITE_LAYOUTS=")
    return orjson.loads(text.removeprefix("window.SITE_LAYOUTS=").rstrip().rstrip(";").replace("<\\/", "</"))


def blobs(html: str) -> list[dict]:
    return [orjson.loads(body.replace("<\\/", "</")) for _, body in JSON_BLOB.findall(html)]


# ------------------------------------------------------------------------------------ the site


def test_the_site_has_an_index_a_page_per_area_and_one_page_per_team(full_site):
    out, report = full_site
    assert report.errors == []
    assert [p["title"] for p in report.written] == ORG_WIDE
    assert sorted(p.name for p in (out / "teams").glob("*.html")) == sorted(f"{g}.html" for g in ("acme", "platform", "product", "alpha", "zulu", "bravo"))
    index = (out / "index.html").read_text()
    for page in report.written:
        assert f'href="{page["path"]}"' in index
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert len(manifest["teams"]) == 6 and manifest["audience"] is None


def test_plotly_ships_once_as_a_local_file_and_nothing_loads_from_the_network(full_site):
    out, _ = full_site
    assert (out / "assets" / "plotly.min.js").read_text() == plotly_js()
    assert len(list(out.rglob("plotly*.js"))) == 1
    for name, text in texts(out).items():
        if name.endswith(".html"):
            assert not re.search(r'(src|href)="(https?:)?//', text), name
            root = "../" if name.startswith("teams/") else ""
            loads_plotly = f'<script src="{root}assets/plotly.min.js" defer></script>' in text
            assert loads_plotly == ('class="plot"' in text), name


@pytest.mark.parametrize("which", ["full_site", "dana_site"])
def test_every_figure_is_valid_plotly_with_a_title_axis_titles_and_units(which, request):
    import plotly.graph_objects as go

    out, _ = request.getfixturevalue(which)
    shared = shared_layouts(out)
    count = 0
    for name, text in texts(out).items():
        for blob in blobs(text):
            if "data" not in blob:
                continue
            count += 1
            if "layoutRef" in blob:  # team pages share their layouts (and trace styles) through assets/layouts.js
                blob = expand_figure(blob, shared)
            assert set(blob) == {"data", "layout"}, name
            go.Figure(blob)  # raises on any property plotly does not know
            layout = blob["layout"]
            assert layout["title"]["text"], name
            if layout.get("xaxis", {}).get("showticklabels") is False:  # the network diagram: no axes
                continue
            axes = [layout[a]["title"]["text"] for a in ("xaxis", "yaxis")]
            assert all(axes), (name, layout["title"])
            bars = [t.get("colorbar", {}).get("title", {}).get("text", "") for t in blob["data"]]
            assert any("(" in label for label in [*axes, *bars]), (name, layout["title"], axes)
    assert count > (40 if which == "full_site" else 5)


@pytest.mark.parametrize("which", ["full_site", "dana_site"])
def test_tables_are_embedded_as_sortable_data_with_consistent_rows(which, request):
    out, _ = request.getfixturevalue(which)
    shared = shared_layouts(out)  # team pages share their tables' schemas and texts (assets/layouts.js)
    tables = [expand_table(b, shared) for text in texts(out).values() for b in blobs(text) if "columns" in b or "schema" in b]
    assert len(tables) > (20 if which == "full_site" else 8)
    for table in tables:
        assert table["caption"] and table["rows"] is not None
        assert all(len(r) == len(table["columns"]) for r in table["rows"])
        assert {t for _, t in table["columns"]} <= {"text", "int", "num", "pct", "date", "link"}
    site_js = (out / "assets" / "site.js").read_text()
    assert "aria-sort" in site_js and 'type = "search"' in site_js


def test_every_page_names_its_source_asset_and_freshness(full_site):
    out, report = full_site
    for page in report.written:
        html = (out / page["path"]).read_text()
        freshness = re.search(r'<p class="freshness">(.*?)</p>', html).group(1)
        assert "Source:" in freshness
        for asset in page["sources"]:
            assert asset.split(" ")[0] in freshness
    usage = (out / "usage.html").read_text()
    assert "materialised 2025-06-02 06:00 UTC" in usage and "data as of 2025-06-01" in usage
    assert "materialisation time unknown" in (out / "skills.html").read_text()


def test_every_team_page_names_its_sources_by_a_link_to_the_teams_index_list_and_its_freshness(full_site):
    out, _ = full_site
    listed = re.search(r'<p class="explain" id="sources">(.*?)</p>', (out / "teams.html").read_text()).group(1)
    for asset in ("catalog_snapshot", "security_facts", "scorecard_results", "survey_trends", "usage_insights"):
        assert f"<code>{asset}</code>" in listed
    team_pages = sorted((out / "teams").glob("*.html"))
    assert team_pages
    for path in team_pages:
        freshness = re.search(r'<p class="freshness">(.*?)</p>', path.read_text()).group(1)
        assert freshness.startswith("Source: ") and 'href="../teams.html#sources"' in freshness, path.name
        assert "materialis" in freshness, path.name  # "materialised <when>" or "materialisation time unknown"


def test_suppressed_survey_cells_are_marked_and_their_values_never_shown(full_site):
    out, _ = full_site
    surveys = (out / "surveys.html").read_text()
    table = next(b for b in blobs(surveys) if "columns" in b)
    bravo = next(r for r in table["rows"] if isinstance(r[0], dict) and r[0]["t"] == "Bravo Team")
    assert bravo[4:] == [{"sup": 1}] * (len(bravo) - 4)
    heatmap = next(b for b in blobs(surveys) if b.get("data") and b["data"][0]["type"] == "heatmap")
    values, marks = heatmap["data"]
    bravo_row = values["y"].index("Bravo Team (team)")
    assert values["z"][bravo_row] == [None] * len(values["x"])  # no value drawn for a suppressed cell
    assert values["text"][bravo_row] == [""] * len(values["x"])
    # The placeholder is per cell: on the suppressed cells only, never over another cell's value.
    assert marks["z"][bravo_row] == [1] * len(values["x"]) and marks["text"][bravo_row] == ["suppressed"] * len(values["x"])
    for z_row, text_row, mark_row in zip(values["z"], marks["text"], marks["z"]):
        assert all((t == "suppressed") == (m == 1) and (t == "") == (z is not None or m is None) for z, t, m in zip(z_row, text_row, mark_row))
    assert marks["texttemplate"] == values["texttemplate"] == "%{text}" and not marks["hoverongaps"] and not values["hoverongaps"]
    assert marks["name"] == "suppressed" and "suppressed for anonymity" in marks["hovertemplate"]
    assert "Every survey figure for this team is suppressed" in read_site_file(out / "teams" / "bravo.html")


@pytest.mark.parametrize("tamper", ["suppressed cell carrying a value", "cell below k shown", "empty cell shown", "no k"])
def test_a_build_leaves_out_every_survey_figure_when_the_tables_break_k(tmp_path, tamper):
    inputs = inputs_with_sentinels()
    trends = inputs.tables[SURVEYS.trends]
    bravo = (trends["group_ref"] == "group:default/bravo") & (trends["metric"] == "mean")
    if tamper == "suppressed cell carrying a value":
        trends.loc[bravo, "value"] = 3.1415
    elif tamper == "cell below k shown":
        trends.loc[bravo, ["suppressed", "respondents", "value"]] = [False, 3, 3.1415]
    elif tamper == "empty cell shown":
        trends.loc[bravo, ["suppressed", "respondents", "value"]] = [False, 0, 3.1415]
    else:
        del inputs.tables[SURVEYS.waves]
    report = build_site(inputs, tmp_path / "site")
    assert not report.people_figures_verified and report.people_violations
    assert any(e.startswith("surveys: every survey figure left out") for e in report.errors)
    site = texts(tmp_path / "site")
    assert not any("3.1415" in t or "4.1234" in t for t in site.values())  # neither the tampered nor any other survey figure
    assert "Survey trend" not in read_site_file(tmp_path / "site" / "teams" / "zulu.html")
    restricted = build_site(inputs, tmp_path / "dana", Access.for_audience(SHIPPED_POLICY, ORG, DANA))
    assert restricted.people_violations == report.people_violations
    assert not any("3.1415" in t or "4.1234" in t for t in texts(tmp_path / "dana").values())


def test_a_page_appears_only_when_its_data_exists(tmp_path):
    inputs = sample_inputs(ORG, entities_frame_from(ENTITIES))
    inputs.tables = {k: v for k, v in inputs.tables.items() if k.area not in (USAGE.area, SURVEYS.area)}
    inputs.audit = None
    report = build_site(inputs, tmp_path / "site")
    status = {p["key"]: (p["status"], p["reason"]) for p in report.pages}
    assert status["usage"] == ("no-data", "no data yet: insight_usage_daily not found (materialise usage_insights)")
    assert status["surveys"][0] == "no-data" and "insight_surveys_trends" in status["surveys"][1]
    assert status["audit"][0] == "no-data"
    assert not (tmp_path / "site" / "usage.html").exists() and not (tmp_path / "site" / "surveys.html").exists()
    index = (tmp_path / "site" / "index.html").read_text()
    assert "no data yet: insight_usage_daily not found" in index and 'href="usage.html"' not in index
    alpha = read_site_file(tmp_path / "site" / "teams" / "alpha.html")
    assert "Survey trend" not in alpha and "Usage of its entities" not in alpha and "Open vulnerabilities" in alpha
    # only the catalog: every insight page says so
    bare = build_site(sample_inputs(ORG, entities_frame_from(ENTITIES)).__class__(org=ORG, entities=entities_frame_from(ENTITIES)),
                      tmp_path / "bare")
    assert {p["key"] for p in bare.written} == {"catalog", "teams"}


def test_the_changes_page_shows_churn_ownership_changes_and_lost_owners_and_waits_for_a_second_cycle(full_site, tmp_path):
    from catalog_pipelines.model.insight_tables import HISTORY

    out, _ = full_site
    html = (out / "changes.html").read_text()
    assert "Churn by provider over cycles" in html and "Ownership changes" in html and "owner removed from the catalog" in html
    assert 'href="changes.html"' in (out / "index.html").read_text()
    inputs = sample_inputs(ORG, entities_frame_from(ENTITIES))
    counts = inputs.tables[HISTORY.changes_by_cycle]
    inputs.tables[HISTORY.changes_by_cycle] = counts[counts["cycle"] == 1]
    build_site(inputs, tmp_path / "one")
    one = (tmp_path / "one" / "changes.html").read_text()
    assert "Not enough history yet" in one and "Entities added, changed or removed per cycle" not in one


def test_team_pages_sum_each_entity_once_even_when_the_collected_facts_repeat_one(tmp_path):
    inputs = inputs_with_sentinels()
    facts = inputs.tables[FACTS.collected_latest]
    sev = facts[facts["fact"] == "vulnerabilities_by_severity"]
    older = sev.assign(observed_at=sev["observed_at"] - pd.Timedelta(hours=1), value=[{"critical": 1000}] * len(sev))
    inputs.tables[FACTS.collected_latest] = pd.concat([older, facts], ignore_index=True)
    build_site(inputs, tmp_path / "site")
    alpha = read_site_file(tmp_path / "site" / "teams" / "alpha.html")
    shown = re.search(r'<h2>Open vulnerabilities</h2>\s*<div class="kpis"><div class="kpi"><b>([\d,]+)</b>critical', alpha).group(1)
    expected = sum(v["critical"] for r, v in zip(sev["entity_ref"], sev["value"]) if r.startswith("component:default/alpha-"))
    assert int(shown.replace(",", "")) == expected


# ----------------------------------------------------------------------------- access control


def restricted_names() -> dict[str, list[str]]:
    """Every way the site could name the groups dana may not see (her team is alpha)."""
    out = {}
    for ref in ("zulu", "bravo", "platform", "product", "acme"):
        info = ORG.groups[f"group:default/{ref}"]
        out[ref] = [f"group:default/{ref}", rf"\b{ref}\b", rf"\b{re.escape(info['display_name'])}\b"]
    out["zulu people"] = [r"\bquinn\b", r"\brosa\b", r"\bvera\b"]
    return out


def test_a_restricted_audience_site_holds_no_restricted_team_names_or_figures(dana_site, full_site):
    out, report = dana_site
    files = texts(out)
    for group, patterns in restricted_names().items():
        for pattern in patterns:
            hits = [name for name, text in files.items() if re.search(pattern, text, re.IGNORECASE)]
            assert not hits, f"{group} ({pattern}) in {hits}"
    for sentinel in SENTINELS:
        assert not [n for n, t in files.items() if sentinel in t], sentinel
    # what she may see is there: the test would catch an empty site
    assert sorted(p.name for p in (out / "teams").glob("*.html")) == ["alpha.html"]
    alpha = files["teams/alpha.html"]
    assert "Alpha Team" in alpha and '"alpha-api"' in alpha and "Survey trend" in alpha
    assert {p["key"] for p in report.written} == {"catalog", "ingestion", "scorecards", "surveys", "usage", "delivery", "health", "changes", "skills", "teams"}
    assert {p["key"]: p["status"] for p in report.pages}["audit"] == "denied"
    assert all(p["partial"] for p in report.written if p["key"] != "ingestion")
    # and the same sentinels are on the operator's site, so their absence above means something
    full = "".join(texts(full_site[0]).values())
    assert {"37591", "48213", "29231", "2.7183"} <= {s for s in SENTINELS if s in full}


def test_an_empty_policy_site_shows_no_data_at_all(tmp_path):
    report = build_site(inputs_with_sentinels(), tmp_path / "site", Access.for_audience(Policy.from_dict({}), ORG, DANA))
    assert report.written == [] and report.team_pages == 0
    assert {p["status"] for p in report.pages} == {"denied"}
    files = texts(tmp_path / "site")
    assert sorted(files) == ["assets/site.css", "assets/site.js", "index.html", "manifest.json"]  # no layouts.js: no team page
    everything = "".join(files.values())
    assert not re.search(r"group:|component:|\balpha\b|\bzulu\b", everything, re.IGNORECASE)


def test_the_leak_guard_refuses_a_site_naming_a_group_its_audience_may_not_see(tmp_path, monkeypatch):
    from dashboards import site
    from dashboards.html import Doc
    from dashboards.pages.base import PageOut

    build_site(inputs_with_sentinels(), tmp_path / "site", Access.for_audience(SHIPPED_POLICY, ORG, DANA))
    before = (tmp_path / "site" / "index.html").read_text()

    def leaky(ctx):
        doc = Doc()
        doc.p("owned by group:default/zulu")
        return PageOut("leaky", "Leaky", "leaky.html", "", doc=doc)

    monkeypatch.setattr(site, "PAGES", [*site.PAGES, ("leaky", leaky)])
    with pytest.raises(SiteLeakError, match="group:default/zulu in leaky.html"):
        build_site(inputs_with_sentinels(), tmp_path / "site", Access.for_audience(SHIPPED_POLICY, ORG, DANA))
    assert (tmp_path / "site" / "index.html").read_text() == before  # the previous site stays
    assert not list(tmp_path.glob(".site.building-*"))


def test_the_leak_guard_reads_inside_the_compressed_exports(tmp_path, monkeypatch):
    from dashboards import site
    from dashboards.html import Column, Doc
    from dashboards.pages.base import PageOut

    def leaky_export(ctx):
        doc = Doc(stem="leaky")
        doc.table([Column("Owner")], [["group:default/alpha"], ["group:default/zulu"]], caption="Owners", inline=1)
        return PageOut("leaky", "Leaky", "leaky.html", "", doc=doc)

    monkeypatch.setattr(site, "PAGES", [*site.PAGES, ("leaky", leaky_export)])
    with pytest.raises(SiteLeakError, match=r"group:default/zulu in leaky-owners\.csv\.gz"):
        build_site(inputs_with_sentinels(), tmp_path / "site", Access.for_audience(SHIPPED_POLICY, ORG, DANA))
    assert not (tmp_path / "site").exists()


def test_a_failing_page_is_reported_and_the_rest_of_the_site_is_built(tmp_path, monkeypatch):
    from dashboards import site

    def broken(ctx):
        raise KeyError("a column the usage area renamed")

    monkeypatch.setattr(site, "PAGES", [(k, broken if k == "usage" else b) for k, b in site.PAGES])
    report = build_site(inputs_with_sentinels(), tmp_path / "site")
    assert report.errors == ["usage: KeyError: 'a column the usage area renamed'"]
    assert {p["key"]: p["status"] for p in report.pages}["usage"] == "error"
    assert (tmp_path / "site" / "catalog.html").exists()
    assert "Build problems" in (tmp_path / "site" / "index.html").read_text()


def test_the_build_replaces_a_previous_site_but_never_a_foreign_directory(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a dashboards site"):
        build_site(inputs_with_sentinels(), tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"
    first = build_site(inputs_with_sentinels(), tmp_path / "site")
    (tmp_path / "site" / "stale.html").write_text("old")
    build_site(inputs_with_sentinels(), tmp_path / "site")
    assert not (tmp_path / "site" / "stale.html").exists() and first.files == len([p for p in (tmp_path / "site").rglob("*") if p.is_file()])


# ---------------------------------------------------------------------- the asset and the CLI


@pytest.fixture
def seeded(data_env, monkeypatch):
    """A catalog database with the example org, sample insight tables and an audit row."""
    from helpers import seed_catalog

    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage import audit
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import write_frame

    monkeypatch.delenv("CATALOG_PIPELINES_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("CATALOG_PIPELINES_PERMISSIONS", raising=False)
    url = Settings.from_env().catalog_database_url
    seed_catalog(url, ENTITIES)
    engine = get_engine(url)
    from catalog_pipelines.services.facts import store_collected_frame

    for table, frame in inputs_with_sentinels().tables.items():
        if table == FACTS.collected_latest:  # collected facts live in the fact store, not an insight table
            store_collected_frame(engine, frame, datetime(2025, 6, 2, 8, tzinfo=UTC))
            continue
        write_frame(engine, table, frame)
    audit.record(engine, actor="user:default/admin", action="ingestion.pause", target="ingestion-provider:seed",
                 details={"channel": "cli"})
    return url


def test_the_dashboards_asset_writes_the_site_and_a_restricted_copy_per_audience(seeded, dagster_instance):
    import dagster as dg

    from catalog_pipelines.assets.dashboards import DASHBOARDS_SITE, dashboards_site
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.settings import Settings

    instance = dagster_instance
    result = dg.materialize([dashboards_site], instance=instance, resources={"catalog": CatalogDatabase(url=seeded)},
                            run_config={"ops": {"dashboards_site": {"config": {"audiences": [DANA]}}}})
    assert result.success
    metadata = instance.get_latest_materialization_event(DASHBOARDS_SITE).asset_materialization.metadata
    out = Settings.from_env().output_dir
    assert metadata["pages"].value == 11 and metadata["team_pages"].value == 6
    assert metadata["audiences"].value[DANA]["team_pages"] == 1
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "every_page_built": True, "site_within_size_budget": True, "people_figures_respect_k": True}
    manifest = orjson.loads((out / "dashboards" / "manifest.json").read_bytes())
    statuses = {p["key"]: p["status"] for p in manifest["pages"]}
    assert statuses["ingestion"] == "ok" and statuses["audit"] == "ok"  # from the real ledger and audit log
    dana = out / "dashboards-for" / "dana"
    assert [p.name for p in (dana / "teams").glob("*.html")] == ["alpha.html"]
    assert not any(re.search(r"\bzulu\b", t, re.IGNORECASE) for t in texts(dana).values())


def test_the_dashboards_asset_depends_only_on_assets_that_exist():
    import dagster as dg

    from catalog_pipelines.assets import catalog_health, history, scorecards, surveys, usage
    from catalog_pipelines.assets.dashboards import dashboards_assets
    from catalog_pipelines.assets.facts import build_fact_assets
    from catalog_pipelines.assets.ingestion import build_catalog_snapshot
    from catalog_pipelines.resources import CatalogDatabase

    defs = dg.Definitions(
        assets=[build_catalog_snapshot([]), *build_fact_assets(demo=True), *scorecards.scorecard_assets, *surveys.survey_assets,
                *usage.usage_assets, *catalog_health.catalog_health_assets, *history.history_assets, *dashboards_assets],
        resources={"catalog": CatalogDatabase(url="sqlite:///:memory:")},
    )
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable} == set()


def test_cli_builds_for_an_audience_and_lists_pages(seeded, tmp_path):
    from click.testing import CliRunner

    from catalog_pipelines.cli.dashboards import dashboards

    runner = CliRunner()
    result = runner.invoke(dashboards, ["build", "--audience", "dana", "--out", str(tmp_path / "dana"), "--json"])
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.output[result.output.index("{"):])
    assert body["audience"] == DANA and body["team_pages"] == 1 and body["errors"] == []
    listed = runner.invoke(dashboards, ["pages", "--out", str(tmp_path / "dana"), "--json"])
    assert orjson.loads(listed.output)["audience"] == DANA
    text = runner.invoke(dashboards, ["pages", "--out", str(tmp_path / "dana")])
    assert "Audit log" in text.output and "not included for this audience (needs audit.read)" in text.output
    missing = runner.invoke(dashboards, ["pages", "--out", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no site in" in missing.output


def test_cli_validates_and_explains_the_policy(seeded, tmp_path):
    from click.testing import CliRunner

    from catalog_pipelines.cli.dashboards import rbac

    runner = CliRunner()
    assert runner.invoke(rbac, ["validate"]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("roles:\n  r:\n    members: ['*']\n    permissions: [audit.raed]\n")
    result = runner.invoke(rbac, ["validate", str(bad), "--json"])
    assert result.exit_code == 1
    assert orjson.loads(result.output)["problems"] == [(
        "roles.r.permissions[0]: unknown permission 'audit.raed'; did you mean 'audit.read'? (known: audit.read, "
        "catalog.entity.read, catalog.ingestion.manage, catalog.ingestion.read, insights.team.read, insights.usage.read, "
        "scorecard.exemption.create, scorecard.exemption.revoke, scorecard.read, skills.read, surveys.read.org, surveys.read.team)")]
    allowed = runner.invoke(rbac, ["check", "user:default/paula", "surveys.read.team", "--resource", "group:default/zulu", "--json"])
    assert allowed.exit_code == 0 and orjson.loads(allowed.output)["role"] == "everyone"
    denied = runner.invoke(rbac, ["check", "dana", "surveys.read.team", "--resource", "group:default/zulu"])
    assert denied.exit_code == 3 and denied.output.startswith("DENIED: surveys.read.team: conditional on anyOf[IS_MEMBER(), IS_OWNER()]")


def test_site_inputs_load_every_source_from_the_catalog_database(seeded):
    from catalog_pipelines.services.site import load_site_inputs
    from catalog_pipelines.storage.db import get_engine

    inputs = load_site_inputs(get_engine(seeded))
    assert len(inputs.entities) == len(ENTITIES) and "entity" not in inputs.entities.columns
    assert inputs.org.members("group:default/platform") == ORG.members("group:default/platform")
    assert list(inputs.ingestions["provider"]) == ["seed"] and len(inputs.marks) == 1
    assert list(inputs.audit["action"]) == ["ingestion.pause"]
    assert set(inputs.tables) == set(inputs_with_sentinels().tables)
    assert isinstance(inputs.tables[USAGE.daily], pd.DataFrame)


def test_team_pages_show_source_control_from_the_collected_facts_when_the_delivery_events_name_no_repository(tmp_path, caplog):
    """Delivery metrics published but no entity with delivery events (`source_control` empty), the
    collectors' facts (branch protection, open PRs) present: the team pages still build, their
    "Source control" section from the facts alone."""
    from catalog_pipelines.model.insight_tables import DELIVERY

    inputs = inputs_with_sentinels()
    inputs.tables[DELIVERY.source_control] = inputs.tables[DELIVERY.source_control].iloc[0:0]
    with caplog.at_level("ERROR"):
        build_site(inputs, tmp_path / "site")
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    page = read_site_file(tmp_path / "site" / "teams" / "alpha.html")
    assert "<h2>Source control</h2>" in page
