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

import os
import shutil

import pytest

from analytics.org import OrgGraph
from catalog_pipelines.settings import PROJECT_ROOT
from dashboards import build_site
from dashboards.sample import entities_frame_from, example_entities, sample_inputs

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
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: pip install playwright")
        pytest.skip("playwright is not installed")
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: apt-get install chromium")
        pytest.skip("chromium is not installed")


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
    assert len(pages) == 16  # index, 8 insight pages, the teams index, 6 teams
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
