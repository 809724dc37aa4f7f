"""The dashboards on a phone, for screen-reader and keyboard users, and exported for a review.

Protects, in headless Chromium (Playwright, the system `chromium`):
- at 420 px wide, every page fits the screen (no horizontal scrolling of the page: wide tables
  scroll inside their own box), its title and every plot title stay inside the viewport, and every
  plot is drawn with a non-zero size;
- axe-core (npm, tests/axe.py) finds no `serious` or `critical` violation on any page;
- the menu on a team page lists every top page (filled by site.js);
- a team page exports as a one-page A4 PDF and as a non-empty PNG (`services.site.export_team`).

Every page is visited once at 420 px; the checks read what that visit collected.
"""

from __future__ import annotations

import pytest

from analytics.org import OrgGraph
from dashboards import build_site
from dashboards.sample import entities_frame_from, example_entities, sample_inputs
from helpers import require_chromium

PHONE = {"width": 420, "height": 860}
LAYOUT = """() => {
  const vw = window.innerWidth;
  const h1 = document.querySelector('main h1').getBoundingClientRect();
  return {
    vw, scroll: document.documentElement.scrollWidth, bodyScroll: document.body.scrollWidth,
    h1: [h1.left, h1.right],
    titles: Array.from(document.querySelectorAll('figure.plot .gtitle')).map(t => {
      const r = t.getBoundingClientRect(); return {text: t.textContent, left: r.left, right: r.right};
    }),
    plots: Array.from(document.querySelectorAll('figure.plot')).map(f => {
      const svg = f.querySelector('svg.main-svg');
      const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0, right: 0};
      return {title: f.getAttribute('aria-label'), width: r.width, height: r.height, right: r.right};
    }),
    nav: Array.from(document.querySelectorAll('header nav a')).map(a => a.getAttribute('href')),
  };
}"""
AXE = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_chromium()
    entities = example_entities()
    root = tmp_path_factory.mktemp("phone") / "site"
    build_site(sample_inputs(OrgGraph.from_entities(entities), entities_frame_from(entities)), root)
    return root


@pytest.fixture(scope="module")
def visits(site):
    """Every page at 420 px: its layout measurements and axe-core's serious/critical violations."""
    chromium = require_chromium()
    from axe import require_axe

    axe_js = require_axe().read_text()
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport=PHONE)
        for path in sorted(site.rglob("*.html")):
            tab.goto(path.as_uri())
            tab.wait_for_selector("body[data-ready='1']", timeout=20_000)
            seen = tab.evaluate(LAYOUT)
            tab.add_script_tag(content=axe_js)
            seen["axe"] = tab.evaluate(AXE)
            out[str(path.relative_to(site))] = seen
        browser.close()
    return out


def test_every_page_fits_a_420px_phone_with_titles_in_view_and_plots_drawn(visits):
    from dashboards.site import PAGES

    # every top page, the index and the team pages were visited
    assert {f"{name}.html" for name, _ in PAGES} | {"index.html"} <= set(visits) and len(visits) > len(PAGES) + 1
    plots = 0
    for name, seen in visits.items():
        vw = seen["vw"]
        assert seen["scroll"] <= vw and seen["bodyScroll"] <= vw, (name, "the page scrolls sideways", seen["scroll"])
        assert seen["h1"][0] >= 0 and seen["h1"][1] <= vw, (name, seen["h1"])
        for title in seen["titles"]:
            assert title["left"] >= 0 and title["right"] <= vw + 0.5, (name, title)
        for plot in seen["plots"]:
            assert plot["width"] > 100 and plot["height"] > 100 and plot["right"] <= vw + 0.5, (name, plot)
            plots += 1
    assert plots > 40


def test_axe_core_finds_no_serious_or_critical_violation_on_any_page(visits):
    found = {name: seen["axe"] for name, seen in visits.items() if seen["axe"]}
    assert found == {}


def test_the_team_pages_menu_links_every_top_page(visits):
    top = set(visits["index.html"]["nav"])
    assert {"catalog.html", "scorecards.html", "surveys.html", "usage.html", "teams.html"} <= top
    for name, seen in visits.items():
        root = "../" if "/" in name else ""
        assert {root + href for href in top} <= set(seen["nav"]), name


def test_a_team_page_exports_as_a_one_page_pdf_and_a_png(site, tmp_path):
    require_chromium()
    from catalog_pipelines.services.site import export_team, pdf_page_count

    pdf = export_team(site, "group:default/platform", "pdf", tmp_path / "platform.pdf")
    data = (tmp_path / "platform.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and pdf["pages"] == 1
    assert pdf_page_count(data) == 1 and b"/Count 1" in data  # the page tree says so too
    png = export_team(site, "Alpha Team", "png", tmp_path / "alpha.png")
    image = (tmp_path / "alpha.png").read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and png["bytes"] > 10_000


def test_export_refuses_an_unknown_team_with_near_matches_and_a_folder_without_a_site(tmp_path):
    from click.testing import CliRunner

    from catalog_pipelines.cli.dashboards import dashboards

    entities = example_entities()
    build_site(sample_inputs(OrgGraph.from_entities(entities), entities_frame_from(entities)), tmp_path / "site")
    result = CliRunner().invoke(dashboards, ["export", "--team", "alhpa", "--site", str(tmp_path / "site"), str(tmp_path / "a.pdf")])
    assert result.exit_code == 1 and "no team page for alhpa" in result.output and "group:default/alpha" in result.output
    result = CliRunner().invoke(dashboards, ["export", "--team", "alpha", "--site", str(tmp_path), str(tmp_path / "a.pdf")])
    assert result.exit_code == 1 and "no site in" in result.output
    assert not (tmp_path / "a.pdf").exists()
