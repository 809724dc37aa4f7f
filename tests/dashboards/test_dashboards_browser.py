"""The dashboards in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Protects: every page of the site loads from disk (file://) with no console error, failed request
or script error; every plot renders (an SVG with drawn traces); every table is built; sorting and
filtering work. A full-page screenshot of each page is saved under test-artifacts/dashboards/
(git-ignored) for people to look at. (A restricted audience's copy uses the same pages with fewer
rows; test_dashboards.py validates its figures and tables without a browser, which keeps this test
at about one second per page: parsing plotly.js dominates.)

Needs `apt-get install chromium` and `pip install playwright` (no browser download: Playwright
drives the system Chromium). Locally a missing browser skips; under CI it fails.
"""

from __future__ import annotations

import shutil

import pytest

from analytics.org import OrgGraph
from catalog_pipelines.settings import PROJECT_ROOT
from dashboards import build_site
from dashboards.sample import entities_frame_from, example_entities, sample_inputs
from helpers import require_chromium

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "dashboards"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PLOTS = """() => Array.from(document.querySelectorAll('figure.plot')).map(f => {
  const svg = f.querySelector('svg.main-svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {title: f.getAttribute('aria-label'), rendered: f.getAttribute('data-rendered') === '1',
          width: box.width, height: box.height,
          drawn: f.querySelectorAll('.cartesianlayer .trace path, .cartesianlayer .trace .point, .heatmaplayer image, .boxlayer path').length};
})"""
TABLES = "() => [document.querySelectorAll('div.table').length, document.querySelectorAll('div.table[data-rendered] table').length]"


def _require_browser():
    require_chromium()


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    _require_browser()
    entities = example_entities()
    org = OrgGraph.from_entities(entities)
    inputs = sample_inputs(org, entities_frame_from(entities))
    root = tmp_path_factory.mktemp("browser")
    build_site(inputs, root / "full")
    return root


@pytest.fixture(scope="module")
def page():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # One tab for every page: Chromium then compiles plotly.js once, not once per page.
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(f"script error: {e}"))
        tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
        tab.problems = problems
        yield tab
        browser.close()


def test_every_page_loads_from_disk_without_errors_and_every_plot_renders(sites, page):
    root = sites / "full"
    shots = ARTIFACTS
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    pages = sorted(root.rglob("*.html"))
    assert len(pages) == 18  # index, 10 insight pages (delivery included), the teams index, 6 teams
    figures = 0
    for path in pages:
        page.problems.clear()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        name = str(path.relative_to(root))
        page.screenshot(path=str(shots / (name.replace("/", "__") + ".jpg")), full_page=True, type="jpeg", quality=70)
        assert page.problems == [], name
        for plot in page.evaluate(PLOTS):
            assert plot["rendered"] and plot["width"] > 100 and plot["height"] > 100, (name, plot)
            assert plot["drawn"] > 0, (name, plot)
            figures += 1
        expected, built = page.evaluate(TABLES)
        assert expected == built, name
    assert figures > 40
    assert len(list(shots.glob("*.jpg"))) == len(pages)


def test_tables_sort_and_filter_in_the_browser(sites, page):
    page.goto((sites / "full" / "catalog.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    table = page.locator("div.table").first
    rows = table.locator("tbody tr")
    owners = lambda: [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    header = table.locator("thead th").first
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    ascending = owners()
    assert ascending == sorted(ascending, key=str.lower) and len(ascending) > 2
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending" and owners() == ascending[::-1]
    table.locator("input[type=search]").fill("zulu")
    assert owners() == ["Zulu Sentinel Squad"]
    assert "1 of 1 matching" in table.locator(".count").inner_text()


# Every text plotly drew in each heatmap, with its centre, and the figure's own data.
HEATMAPS = """() => Array.from(document.querySelectorAll('figure.plot')).filter(f => f.querySelector('.heatmaplayer')).map(f => {
  const gd = f;
  return {title: f.getAttribute('aria-label'),
          data: gd.data.map(t => ({name: t.name || null, z: t.z, text: t.text})),
          cells: Array.from(f.querySelectorAll('.heatmaplayer text')).filter(e => e.textContent.trim() !== '').map(e => {
            const r = e.getBoundingClientRect();
            return {text: e.textContent, x: r.x + window.scrollX + r.width / 2, y: r.y + window.scrollY + r.height / 2};
          })};
})"""


def _hover_text(page, x: float, y: float) -> str:
    """The hover label plotly shows with the mouse at document position (x, y)."""
    top = page.evaluate(f"() => {{ window.scrollTo(0, {max(0.0, y - 300)}); return window.scrollY; }}")
    page.mouse.move(1, 1)
    page.mouse.move(x, y - top)
    page.wait_for_selector(".hoverlayer .hovertext", timeout=5_000)
    return page.locator(".hoverlayer .hovertext").first.text_content()


def test_survey_heatmaps_show_each_cell_value_or_a_placeholder_never_both(sites, page):
    root = sites / "full"
    pages = [root / "surveys.html", *sorted((root / "teams").glob("*.html"))]
    checked = {"shown": 0, "suppressed": 0, "figures": 0}
    for path in pages:
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        for fig in page.evaluate(HEATMAPS):
            if "survey" not in fig["title"].lower() and "dimension" not in fig["title"].lower():
                continue
            values = fig["data"][0]
            marks = fig["data"][1] if len(fig["data"]) > 1 else None
            expected = []
            for i, row in enumerate(values["z"]):
                for j, v in enumerate(row):
                    hidden = bool(marks and marks["z"][i][j])
                    if hidden:
                        assert v is None, (path.name, i, j)  # no number under a suppressed cell
                        expected.append("suppressed")
                    elif v is not None:
                        expected.append(f"{v:.2f}")
            drawn = fig["cells"]
            # Each drawn label sits on its own cell: never a placeholder over a number.
            spots = {(round(c["x"] / 4), round(c["y"] / 4)) for c in drawn}
            assert len(spots) == len(drawn), (path.name, fig["title"])
            assert sorted(c["text"] for c in drawn) == sorted(expected), (path.name, fig["title"])
            shown = next((c for c in drawn if c["text"] != "suppressed"), None)
            hidden = next((c for c in drawn if c["text"] == "suppressed"), None)
            if shown:
                label = _hover_text(page, shown["x"], shown["y"])
                assert shown["text"] in label and "anonymity" not in label, (path.name, label)
                checked["shown"] += 1
            if hidden:
                label = _hover_text(page, hidden["x"], hidden["y"])
                assert "suppressed for anonymity" in label, (path.name, label)
                checked["suppressed"] += 1
            checked["figures"] += 1
    # The surveys page and the team pages with a survey trend; both kinds of cell were hovered.
    assert checked["figures"] >= 3 and checked["shown"] >= 3 and checked["suppressed"] >= 1, checked


# ------------------------------------------------------------------ packed team pages
# Team pages are stored packed (html.py `PagePacker`: deflated against a dictionary shared in
# assets/layouts.js, base64); site.js inflates them with DecompressionStream before drawing.


def _packed_site(root, samples: int):
    """The example site with the packing dictionary drawn from `samples` team pages."""
    from dashboards import html as html_module

    entities = example_entities()
    original = html_module.PACK_DICT_SAMPLES
    html_module.PACK_DICT_SAMPLES = samples
    try:
        build_site(sample_inputs(OrgGraph.from_entities(entities), entities_frame_from(entities)), root)
    finally:
        html_module.PACK_DICT_SAMPLES = original
    return root


def test_a_packed_team_page_renders_its_tables_figures_and_drill_links(page, tmp_path):
    import html
    import re
    from urllib.parse import unquote

    import orjson

    from dashboards.html import expand_table, pack_dictionary_in
    from dashboards.site import read_site_file

    # Two of the six team pages make the dictionary: alpha's body is not in it, so the page is
    # rebuilt from its own deflate data (and back-references into the dictionary).
    root = _packed_site(tmp_path / "site", samples=2)
    path = root / "teams" / "alpha.html"
    raw = path.read_text()
    layouts = (root / "assets" / "layouts.js").read_text()
    inflated = read_site_file(path)
    body = inflated[inflated.index('<p class="freshness">'):]
    assert 'id="packed"' in raw and "application/json" not in raw and "<h2" not in raw and "<noscript>" in raw
    assert body[body.index("</p>") + 4:body.index("<noscript>")][:500] not in pack_dictionary_in(layouts)

    page.problems.clear()
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    assert page.problems == []
    assert page.locator("#packed").count() == 0  # replaced by the page's body
    # The sections, tables and figures of the inflated page, all built and drawn.
    headings = [html.unescape(h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", inflated)]
    assert len(headings) >= 5 and page.locator("main h2").all_inner_texts() == headings
    expected, built = page.evaluate(TABLES)
    assert expected == built == inflated.count('<div class="table"') >= 3
    plots = page.evaluate(PLOTS)
    assert len(plots) == inflated.count('<figure class="plot"') >= 1
    assert all(p["rendered"] and p["drawn"] > 0 and p["width"] > 100 for p in plots), plots
    # The entities table shows the rows the page carries, in order.
    shared = orjson.loads(layouts.splitlines()[0].removeprefix("window.SITE_LAYOUTS=").rstrip(";"))
    blob = re.search(r'<div class="table" data-src="(\w+)" id="owned"></div><script type="application/json" id="\1">(.*?)</script>', inflated)
    owned = expand_table(orjson.loads(blob.group(2).replace("<\\/", "</")), shared)
    cells = page.locator("#owned tbody tr td:first-child").all_inner_texts()
    assert cells and cells == [r[0] for r in owned["rows"]][: len(cells)]
    # A drill link inside the page ("What to fix next" → the failing checks, filtered on its check).
    link = page.locator("div.table a[href^='#failing?q=']").first
    check = unquote(link.get_attribute("href").split("?q=", 1)[1])
    link.click()
    listing = page.locator("#failing")
    assert listing.locator("input[type=search]").input_value() == check
    assert listing.locator("tbody tr td:first-child").all_inner_texts() == [check]
    # A link to another team page lands on its (packed) page, drawn.
    page.locator("p.related a[href$='platform.html']").first.click()
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    assert page.url.endswith("/teams/platform.html") and page.locator("div.table[data-rendered]").count() >= 3
    assert page.problems == []


def test_a_team_page_whose_dictionary_does_not_match_says_so_instead_of_showing_wrong_data(page, tmp_path):
    root = _packed_site(tmp_path / "site", samples=2)
    layouts = root / "assets" / "layouts.js"
    first, dictionary = layouts.read_text().splitlines()[:2]
    assert dictionary.startswith("window.SITE_PACK=")
    layouts.write_text(first + "\n" + dictionary.replace("<h2>", "<h3>", 1) + "\n")
    page.problems.clear()
    page.goto((root / "teams" / "alpha.html").as_uri())
    page.wait_for_selector("p.note[role=alert]", timeout=20_000)
    assert "could not be shown" in page.locator("p.note[role=alert]").inner_text()
    assert page.locator("div.table").count() == 0 and page.get_attribute("body", "data-ready") is None
    assert any("packed page" in p for p in page.problems)
    page.problems.clear()
