"""The dashboards answer their questions (issue 23, defects 1-3 and drill-down), without a browser.

Protects: a table never drops rows silently (every row embedded, or "showing N of M" with a CSV
of all rows next to the page, holding only what the audience may see); a trend with one point is
a "not enough history yet" notice, not a chart; durations in the unit of their magnitude; the team
dependency matrix ordered by weight; the leaderboard compares one organisation level at a time and
ranks no group below the configured minimum size; every aggregate links to the rows behind it
(scorecard fix-next cell → the team's failing entities and the check's reason, orphan counts → the
findings, team entity counts → the team's entities). The browser side is in
test_dashboards_browser_answers.py.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import unquote

import orjson
import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.rbac import Policy
from analytics.scorecards.config import ScorecardConfigError, load_config_texts
from catalog_pipelines.model.insight_tables import SCORECARDS
from catalog_pipelines.settings import PROJECT_ROOT
from dashboards import Access, build_site
from dashboards import figures as F
from dashboards.site import read_export, read_site_file
from dashboards.html import Column, Doc, expand_table, link
from dashboards.pages import teams as team_module
from dashboards.pages.health import dependency_matrix
from dashboards.sample import entities_frame_from, example_entities, sample_inputs

ENTITIES = example_entities()
ORG = OrgGraph.from_entities(ENTITIES)
JSON_BLOB = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.DOTALL)
TABLE_DIV = re.compile(r'<div class="table" data-src="([^"]+)"(?: id="([^"]+)")?>')


def tables(source: str | Path) -> dict[str, dict]:
    """Each table's JSON by its anchor (or its data id when it has none), as site.js reads it
    (`expand_table`). `source`: a page's HTML, or a built page's path (a team page's tables share
    their schemas and texts through the site's assets/layouts.js)."""
    shared = {}
    if isinstance(source, Path):
        root = next(p for p in source.parents if (p / "assets").is_dir())
        layouts = root / "assets" / "layouts.js"
        if layouts.exists():
            shared = orjson.loads(layouts.read_text().splitlines()[0].removeprefix("window.SITE_LAYOUTS=").rstrip().rstrip(";").replace("<\\/", "</"))
        source = read_site_file(source)  # a team page: inflated
    bodies = {ident: orjson.loads(body.replace("<\\/", "</")) for ident, body in JSON_BLOB.findall(source)}
    return {anchor or ident: expand_table(bodies[ident], shared) for ident, anchor in TABLE_DIV.findall(source)}


def by_caption(html: str, start: str) -> dict:
    found = [t for t in tables(html).values() if t["caption"].startswith(start)]
    assert len(found) == 1, [t["caption"] for t in tables(html).values()]
    return found[0]


def sample(**options):
    inputs = sample_inputs(ORG, entities_frame_from(ENTITIES), **options)
    return inputs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site whose team pages embed at most 3 rows per table (so the CSV exports are written) and
    whose leaderboard ranks groups of 4 entities or more."""
    out = tmp_path_factory.mktemp("answers") / "site"
    inputs = sample(evaluations=1)
    inputs.leaderboard_min_entities = 4
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(team_module, "TEAM_INLINE", 3)
        report = build_site(inputs, out)
    assert report.errors == []
    return out, inputs


# ------------------------------------------------------------------------------ tables, exports


def test_a_table_longer_than_the_page_embeds_the_first_rows_says_so_and_exports_every_row():
    doc = Doc(stem="catalog")
    rows = [[link(f"team {i}", f"teams/t{i}.html"), i, i / 30] for i in range(30)]
    doc.table([Column("Team", "link"), Column("Entities", "int"), Column("Share", "pct")], rows, caption="Owners", inline=10)
    body = tables(doc.html())["d1"]
    assert len(body["rows"]) == 10 and body["total"] == 30 and body["csv"] == "catalog-owners.csv.gz"
    exported = list(csv.reader(io.StringIO(doc.files["catalog-owners.csv.gz"])))
    assert exported[0] == ["Team", "Entities", "Share"]
    assert len(exported) == 31 and exported[30][:2] == ["team 29", "29"]  # the link's text, not its JSON


def test_a_table_within_its_limit_embeds_every_row_and_writes_no_export():
    doc = Doc(stem="catalog")
    doc.table([Column("Name")], [[f"row {i}"] for i in range(40)], caption="All", inline=40)
    body = tables(doc.html())["d1"]
    assert len(body["rows"]) == 40 and body["total"] == 40 and "csv" not in body and doc.files == {}


def test_csv_exports_mark_suppressed_cells_and_carry_no_figure_the_table_hides():
    doc = Doc(stem="usage")
    doc.table([Column("Team"), Column("Active", "int")], [["alpha", 7], ["bravo", {"sup": 1}]], caption="Adoption", inline=1)
    assert doc.files["usage-adoption.csv.gz"].splitlines() == ["Team,Active", "alpha,7", "bravo,suppressed"]


def test_team_tables_show_n_of_m_and_link_a_csv_of_all_rows_next_to_the_page(site):
    out, inputs = site
    owned = tables((out / "teams" / "alpha.html"))["owned"]
    mine = inputs.entities[inputs.entities["owner"] == "group:default/alpha"]
    assert len(owned["rows"]) == 3 and owned["total"] == len(mine) > 3
    exported = list(csv.DictReader(io.StringIO(read_export(out / "teams" / owned["csv"]))))
    assert sorted(r["Entity"] for r in exported) == sorted(mine["name"])


def test_a_group_with_sub_teams_points_to_their_pages_instead_of_exporting_every_entity_again(site):
    out, inputs = site
    owned = tables((out / "teams" / "acme.html"))["owned"]
    assert len(owned["rows"]) == 3 and owned["total"] == len(inputs.entities[inputs.entities["owner"].notna()]) > 3
    assert "csv" not in owned and "sub-team's page lists its own" in owned["more"]


def test_repeated_text_is_sent_once_per_distinct_value():
    doc = Doc()
    doc.table([Column("Entity"), Column("Kind")], [[f"e{i}", "component"] for i in range(10)], caption="Owned")
    body = orjson.loads(JSON_BLOB.findall(doc.html())[0][1])
    assert body["dict"] == {"1": ["component"]} and {r[1] for r in body["rows"]} == {0}
    assert tables(doc.html())["d1"]["rows"][9] == ["e9", "component"]

def test_a_restricted_copy_exports_only_what_its_audience_may_see(tmp_path):
    policy = Policy.from_file(PROJECT_ROOT / "config" / "permissions.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(team_module, "TEAM_INLINE", 2)
        build_site(sample(), tmp_path / "dana", Access.for_audience(policy, ORG, "user:default/dana"))
    exports = sorted((tmp_path / "dana").rglob("*.csv.gz"))
    assert exports, "the restricted copy wrote no export: the test would prove nothing"
    for path in exports:
        text = read_export(path).lower()
        assert "zulu" not in text and "sentinel" not in text, path.name


def test_every_org_page_table_has_all_its_rows_or_an_export(site):
    out, _ = site
    for path in [*out.glob("*.html"), *(out / "teams").glob("*.html")]:
        for anchor, body in tables(path).items():
            if len(body["rows"]) < body["total"]:
                assert (body.get("csv") and (path.parent / body["csv"]).exists()) or body.get("more"), (path.name, body["caption"])


# --------------------------------------------------------------------------------- the charts


def test_a_trend_with_a_single_point_becomes_a_not_enough_history_notice():
    doc = Doc()
    doc.figure(F.lines(["2025-06-02"], {"pass rate": [40.0], "certified": [20.0]}, title="Trend", xtitle="When", ytitle="%",
                       x_is_category=True))
    assert doc.figures == 0 and doc.notices == 1 and "Not enough history yet" in doc.html() and "2025-06-02" in doc.html()
    doc.figure(F.lines(["a", "b"], {"pass rate": [40.0, 41.0]}, title="Trend", xtitle="When", ytitle="%", x_is_category=True))
    doc.figure(F.bar(["only"], [3], title="One bar", xtitle="x", ytitle="y"))  # one bar is an answer, not a trend
    assert doc.figures == 2


def test_no_page_carries_a_trend_over_a_single_x_value_and_the_one_point_trend_is_a_notice(site):
    out, _ = site
    html = (out / "scorecards.html").read_text()
    assert 'class="note history"' in html and "Organisation trend over evaluations" in html
    figures = 0
    for path in [*out.glob("*.html"), *(out / "teams").glob("*.html")]:
        for _, body in JSON_BLOB.findall(read_site_file(path)):
            fig = orjson.loads(body.replace("<\\/", "</"))
            if fig.get("data") and all(t.get("type") == "scatter" and "lines" in t.get("mode", "lines") for t in fig["data"]):
                assert any(len(set(map(str, t.get("x") or []))) >= 2 for t in fig["data"]), path.name
                figures += 1
    assert figures >= 3


@pytest.mark.parametrize(("seconds", "unit"), [([0.6, 0.7, 0.5], "seconds"), ([45, 600, 900], "minutes"),
                                               ([7200, 9000], "hours"), ([3 * 86400], "days"), ([], "seconds")])
def test_durations_are_drawn_in_the_unit_of_their_magnitude(seconds, unit):
    assert F.duration_unit(seconds)[0] == unit


def test_the_dependency_matrix_keeps_the_heaviest_teams_and_orders_them_by_weight():
    cross = pd.DataFrame({"source_owner": ["a", "a", "b", "c", "d"], "target_owner": ["b", "c", "c", "a", "a"],
                          "edges": [10, 1, 5, 2, 1]})
    matrix = dependency_matrix(cross, 3)
    # rows by outgoing weight among the kept teams (a 11, b 5, c 2), columns by incoming (b 10, c 6, a 2)
    assert list(matrix.index) == ["a", "b", "c"] and list(matrix.columns) == ["b", "c", "a"]
    assert matrix.loc["a", "b"] == 10 and matrix.loc["c", "a"] == 2 and "d" not in matrix.index


# ------------------------------------------------------------------------------- leaderboard


def test_org_levels_come_from_group_types_top_down():
    assert ORG.levels() == {"organization": ["group:default/acme"],
                            "department": ["group:default/platform", "group:default/product"],
                            "team": ["group:default/alpha", "group:default/bravo", "group:default/zulu"]}


def test_the_leaderboard_ranks_one_org_level_per_table_and_no_group_below_the_minimum(site):
    out, inputs = site
    html = (out / "scorecards.html").read_text()
    summary = inputs.table(SCORECARDS.rollup_summary)
    size = summary[summary["scope_type"] == "group"].groupby("scope_ref")["entities"].first()
    rankings = {a: b for a, b in tables(html).items() if a.startswith("ranking-")}
    assert set(rankings) == {"ranking-team", "ranking-department"}  # the organisation alone is not ranked
    ranked_somewhere = set()
    for anchor, body in rankings.items():
        level = anchor.removeprefix("ranking-")
        refs = {f"group:default/{Path(r[1]['h']).stem}" for r in body["rows"]}
        assert {ORG.level_of(g) for g in refs} == {level}
        assert all(size[g] >= 4 for g in refs)
        assert [r[0] for r in body["rows"]] == list(range(1, len(body["rows"]) + 1))
        ranked_somewhere |= refs
    small = {g for g in size.index if size[g] < 4 and ORG.level_of(g) != "organization"}
    assert small and not small & ranked_somewhere  # the sample has small teams: they are left out
    assert "Not ranked (fewer than 4 entities)" in html and "leaderboard.minEntities" in html


def test_leaderboard_minimum_size_is_read_from_the_scorecard_configuration():
    config = load_config_texts([("board.yaml", "leaderboard:\n  minEntities: 25\n")])
    assert config.leaderboard_min_entities == 25
    with pytest.raises(ScorecardConfigError, match="board2.yaml:1: leaderboard is already set at board.yaml:1"):
        load_config_texts([("board.yaml", "leaderboard: {minEntities: 3}\n"), ("board2.yaml", "leaderboard: {minEntities: 4}\n")])


def test_levels_unlocked_and_every_leaderboard_column_are_explained(site):
    out, _ = site
    html = (out / "scorecards.html").read_text()
    assert "a level blocked by two checks counts half for each" in html
    ranking = tables(html)["ranking-team"]
    assert [c[0] for c in ranking["columns"]][:4] == ["Rank", "Team", "Entities", "Production readiness: at Bronze or above"]
    assert "Mean level: average level of its entities" in html


# -------------------------------------------------------------------------------- drill-down


def _target(page: Path, href: str) -> tuple[Path, str, str | None]:
    path, _, fragment = href.partition("#")
    anchor, _, query = fragment.partition("?q=")
    return (page.parent / path).resolve() if path else page, anchor, unquote(query) if query else None


def failing_names(page: Path, check: str, cell: str) -> list[str]:
    """The failing entities of `check` on a team page: the names in its cell, or, when the cell
    says "… and N more (CSV)", every one from the CSV the page links."""
    shown = cell.split(" … and ")[0].split(", ")
    if " … and " not in cell:
        return shown
    href = re.search(r'<a class="export" href="([^"]+)" download>', read_site_file(page)).group(1)
    rows = [r for r in csv.DictReader(io.StringIO(read_export(page.parent / href))) if r["Check"] == check]
    assert [r["Entity"] for r in rows][: len(shown)] == shown
    return [r["Entity"] for r in rows]


def test_a_fix_next_cell_leads_to_the_teams_failing_entities_with_the_checks_reason(site):
    out, inputs = site
    page = out / "scorecards.html"
    fix = tables(page)["fix-next"]
    checks = inputs.table(SCORECARDS.checks).set_index("name")
    results = inputs.table(SCORECARDS.results)
    alpha = set(inputs.entities.loc[inputs.entities["owner"] == "group:default/alpha", "ref"])
    leaf_rows = [r for r in fix["rows"] if isinstance(r[5], dict) and "alpha.html" in r[5]["h"]]
    assert leaf_rows
    for row in leaf_rows:
        target, anchor, query = _target(page, row[5]["h"])
        listing = [r for r in tables(target)[anchor]["rows"] if r[0] == query]
        assert len(listing) == 1, query
        _, _, reason, _, names = listing[0]
        assert reason == checks.loc[query, "failed_message"]  # the check's own reason
        failing = results[(results["check_id"] == checks.loc[query, "check_id"]) & results["entity_ref"].isin(alpha)]
        assert sorted(failing_names(target, query, names)) == sorted(r.split("/")[-1] for r in failing["entity_ref"])
        assert len(failing) == row[5]["t"]  # the count in the cell is the length of the list


def test_a_departments_failing_row_leads_to_its_sub_teams_list(site):
    out, _ = site
    page = out / "teams" / "platform.html"
    rows = tables(page)["failing"]["rows"]
    check, sub_teams = rows[0][0], rows[0][5]
    assert sub_teams
    for cell in sub_teams:
        target, anchor, query = _target(page, cell["h"])
        assert target.name in ("alpha.html", "zulu.html") and anchor == "failing" and query == check
        listing = [r for r in tables(target)["failing"]["rows"] if r[0] == check]
        assert len(listing) == 1
        assert len(failing_names(target, check, listing[0][4])) == int(cell["t"].rsplit("(", 1)[1].rstrip(")"))


def test_orphan_counts_link_to_the_findings_behind_them(site):
    out, _ = site
    page = out / "health.html"
    html = page.read_text()
    counts = by_caption(html, "Findings per category")
    findings = tables(html)["findings"]
    for category, severity, cell in counts["rows"]:
        _, anchor, query = _target(page, cell["h"])
        assert anchor == "findings" and query == category
        assert sum(1 for r in findings["rows"] if r[1] == category and r[0] == severity) == cell["t"]


def test_team_entity_counts_link_to_the_teams_entities_table(site):
    out, _ = site
    page = out / "teams.html"
    for row in tables(page)["d1"]["rows"]:
        target, anchor, _ = _target(page, row[4]["h"])
        owned = tables(target)[anchor]
        assert anchor == "owned" and owned["total"] == row[4]["t"]
