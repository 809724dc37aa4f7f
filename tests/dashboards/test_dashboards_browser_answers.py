"""The dashboards answer their questions, in a real browser (headless Debian Chromium via Playwright).

Each test would have caught one defect of issue 23:
- a table with more rows than a page shows pages through all of them, and its search finds a row
  that is not on the first page; a table longer than the page embeds says "Showing N of M" and
  links a CSV file that exists next to the page;
- no chart draws a "trend" over a single x value (a notice says there is not enough history);
- the leaderboard compares one organisation level per table and ranks no group below the minimum;
- a drill-down link from a scorecard cell leads to a listing with a failing entity and its reason.

One site (module fixture), one browser tab; each page load is about a second (plotly.js parsing).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.org import OrgGraph
from catalog_pipelines.model.insight_tables import SCORECARDS
from dashboards import build_site
from dashboards.site import read_export
from dashboards.pages import teams as team_module
from dashboards.sample import entities_frame_from, example_entities, sample_inputs
from helpers import require_chromium
from test_dashboards_browser import page  # noqa: F401  (the one Chromium tab, a module fixture)

ENTITIES = example_entities()
ORG = OrgGraph.from_entities(ENTITIES)
MIN_ENTITIES = 4

ROWS = "(el) => Array.from(el.querySelectorAll('tbody tr')).map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText))"
# Every drawn line chart: how many distinct x values each of its series has.
LINE_CHARTS = """() => Array.from(document.querySelectorAll('figure.plot[data-rendered]')).filter(
  f => f.data && f.data.length && f.data.every(t => t.type === 'scatter' && String(t.mode || 'lines').includes('lines'))
).map(f => ({title: f.getAttribute('aria-label'), xs: f.data.map(t => new Set((t.x || []).map(String)).size)}))"""


def _site(tmp_path_factory, team_rows: int):
    """The sample site (one scorecard evaluation: its trend has one point) with team tables
    embedding at most `team_rows` rows."""
    require_chromium()
    inputs = sample_inputs(ORG, entities_frame_from(ENTITIES), evaluations=1)
    inputs.leaderboard_min_entities = MIN_ENTITIES
    root = tmp_path_factory.mktemp(f"answers-browser-{team_rows}") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(team_module, "TEAM_INLINE", team_rows)
        build_site(inputs, root)
    return root, inputs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return _site(tmp_path_factory, 50)  # team tables embed every row: they page in the browser


@pytest.fixture(scope="module")
def small_pages(tmp_path_factory):
    return _site(tmp_path_factory, 3)  # as a 200k org's large teams: "Showing 3 of N" and a CSV


def _open(page, path: Path) -> None:
    """Load a page; the tab's problems (console errors, script errors, failed requests) start empty."""
    page.problems.clear()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def test_a_long_table_pages_through_every_row_and_its_search_finds_a_row_beyond_the_first_page(site, page):
    root, inputs = site
    _open(page, root / "teams" / "acme.html")
    table = page.locator("#owned")
    rows = table.locator("tbody tr")
    first_page = rows.count()
    total = page.evaluate("(el) => JSON.parse(document.getElementById(el.dataset.src).textContent).rows", table.element_handle())
    n = int(inputs.entities["owner"].isin(ORG.descendants("group:default/acme") | {"group:default/acme"}).sum())
    assert len(total) == n > first_page > 0, "the team's entities must be more than a page for this test"
    assert table.locator(".truncated").count() == 0  # every row is embedded: nothing to say
    needle = total[-1][0]  # the last entity: not on the first page
    assert needle not in [r[0] for r in page.evaluate(ROWS, table.element_handle())]
    table.locator("input[type=search]").fill(needle)
    found = page.evaluate(ROWS, table.element_handle())
    assert found and any(needle in " ".join(r) for r in found)
    table.locator("input[type=search]").fill("")
    while table.locator("button.more").is_visible():  # "show more" until every row is listed
        table.locator("button.more").click()
    assert rows.count() == len(total)
    assert page.problems == []


def test_a_table_longer_than_the_page_embeds_says_n_of_m_and_links_its_csv(small_pages, page):
    root, inputs = small_pages
    _open(page, root / "teams" / "alpha.html")
    owned = page.locator("#owned")
    notice = owned.locator(".truncated")
    n = int((inputs.entities["owner"] == "group:default/alpha").sum())
    assert notice.is_visible() and f"Showing 3 of {n} rows" in notice.inner_text()
    href = notice.locator("a.export").get_attribute("href")
    exported = read_export(root / "teams" / href).splitlines()
    assert len(exported) == n + 1  # header + every row
    assert page.problems == []


def test_no_chart_draws_a_trend_over_a_single_x_value(site, page):
    root, _ = site
    checked = 0
    # The pages with trends over cycles and evaluations (every page's figure data is checked
    # without a browser in test_dashboards_answers.py).
    for path in [root / "scorecards.html", root / "catalog.html", root / "ingestion.html"]:
        _open(page, path)
        for chart in page.evaluate(LINE_CHARTS):
            assert max(chart["xs"]) >= 2, (path.name, chart)
            checked += 1
    assert checked >= 2  # at least the growth and cycle-duration trends (the removals one needs removals in the sample)
    _open(page, root / "scorecards.html")
    notice = page.locator("p.note.history")
    assert "Not enough history yet" in notice.inner_text() and "Organisation trend over evaluations" in notice.inner_text()


def test_the_leaderboard_ranks_one_org_level_per_table_and_no_group_below_the_minimum(site, page):
    root, inputs = site
    summary = inputs.table(SCORECARDS.rollup_summary)
    size = summary[summary["scope_type"] == "group"].groupby("scope_ref")["entities"].first()
    name_to_ref = {ORG.groups[g]["display_name"]: g for g in ORG.groups}
    _open(page, root / "scorecards.html")
    rankings = page.locator("div.table[id^='ranking-']")
    assert rankings.count() == 2
    ranked = set()
    for i in range(rankings.count()):
        table = rankings.nth(i)
        level = table.get_attribute("id").removeprefix("ranking-")
        rows = page.evaluate(ROWS, table.element_handle())
        assert rows
        refs = [name_to_ref[r[1]] for r in rows]
        assert {ORG.level_of(g) for g in refs} == {level}, (level, refs)  # like with like
        assert all(size[g] >= MIN_ENTITIES for g in refs) and [int(r[2]) for r in rows] == [int(size[g]) for g in refs]
        assert [r[0] for r in rows] == [str(k) for k in range(1, len(rows) + 1)]
        ranked |= set(refs)
    assert any(size[g] < MIN_ENTITIES for g in size.index if g not in ranked)  # someone was left out
    assert page.locator("p.explain").filter(has_text="a level blocked by two checks counts half").count() >= 1


def test_a_scorecard_cell_drills_down_to_the_failing_entities_and_the_checks_reason(site, page):
    root, inputs = site
    reasons = dict(zip(inputs.table(SCORECARDS.checks)["name"], inputs.table(SCORECARDS.checks)["failed_message"]))
    _open(page, root / "scorecards.html")
    fix = page.locator("#fix-next")
    fix.locator("input[type=search]").fill("Alpha Team")
    cell = fix.locator("tbody tr").first.locator("td").nth(5).locator("a")
    check = fix.locator("tbody tr").first.locator("td").nth(2).inner_text()
    cell.click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.url.split("#")[0].endswith("/teams/alpha.html")
    listing = page.locator("#failing")
    assert listing.locator("input[type=search]").input_value() == check  # filtered on the check
    rows = page.evaluate(ROWS, listing.element_handle())
    assert len(rows) == 1, "the drill-down must land on the check's row"
    name, _, reason, _, failing = rows[0]
    entities = set(inputs.entities.loc[inputs.entities["owner"] == "group:default/alpha", "name"])
    assert name == check and reason == reasons[check]
    assert failing and set(failing.split(" … and ")[0].split(", ")) <= entities
    assert page.problems == []
