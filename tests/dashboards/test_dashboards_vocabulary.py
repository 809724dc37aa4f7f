"""One vocabulary, one menu, headline numbers and retention cohorts on the dashboards site.

Protects (issue 23, defects 4 and 5): the built site never shows a code where a label belongs
(`dangling_relation`), a known typo ("Top entitys"), two columns with the same header, or "hidden"
for what the survey and usage code call suppressed; certification levels carry the scorecards
config's names ("Level 1 · Bronze / Scanned"); each kind keeps one colour on every page, and no two
kinds share one; every page's menu lists every top page (team pages through site.js); the
index opens with the headline numbers and, on the next build, their change since the previous one;
retention cohorts are labelled with their size and a tiny cohort is marked, never drawn as a share;
the CLI says "suppressed" and "Level N · Name" too.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pandas as pd
import pytest

from analytics.org import OrgGraph
from catalog_pipelines.model.insight_tables import USAGE
from catalog_pipelines.model.vocabulary import LABELS, SUPPRESSED, is_code, label, level_label
from dashboards import build_site
from dashboards.html import expand_figure, expand_table
from dashboards.sample import entities_frame_from, example_entities, sample_inputs
from dashboards.site import read_site_file

ENTITIES = example_entities()
ORG = OrgGraph.from_entities(ENTITIES)
JSON_BLOB = re.compile(r'<script type="application/json" id="[^"]+">(.*?)</script>', re.DOTALL)
TYPOS = re.compile(r"\b(entitys|Top \w+ys|propertys|dependencys|teh|recieved?)\b", re.IGNORECASE)
KINDS = {label(k) for k in ("component", "api", "resource", "system", "domain", "template", "group", "user", "location")}


def inputs(**kwargs):
    return sample_inputs(ORG, entities_frame_from(ENTITIES), **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("vocab") / "site"
    build_site(inputs(), out)
    return out


def pages(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): read_site_file(p) for p in root.rglob("*.html")}  # team pages inflated


def blobs(text: str) -> list[dict]:
    return [orjson.loads(b.replace("<\\/", "</")) for b in JSON_BLOB.findall(text)]


def shared_layouts(root: Path) -> dict[str, dict]:
    path = root / "assets" / "layouts.js"
    return orjson.loads(path.read_text().splitlines()[0].removeprefix("window.SITE_LAYOUTS=").rstrip().rstrip(";")) if path.exists() else {}


def figures(root: Path):
    """(page, traces, layout) of every figure, with a shared layout's legend names put back (as site.js does)."""
    layouts = shared_layouts(root)
    for name, text in pages(root).items():
        for blob in blobs(text):
            if "data" in blob:
                figure = expand_figure(blob, layouts)
                yield name, figure["data"], figure.get("layout") or {}


def test_the_site_shows_labels_not_codes_no_typos_and_no_duplicate_column(site):
    layouts = shared_layouts(site)
    for name, text in pages(site).items():
        visible = re.sub(r"<script.*?</script>|<[^>]+>", " ", text, flags=re.DOTALL)
        assert not TYPOS.search(visible), (name, TYPOS.search(visible))
        for blob in blobs(text):
            if "columns" in blob or "schema" in blob:  # a table (a team page's: its schema in layouts.js)
                blob = expand_table(blob, layouts)
                headers = [c[0] for c in blob["columns"]]
                assert len(headers) == len(set(headers)), (name, blob["caption"], headers)
                assert not TYPOS.search(blob["caption"]), (name, blob["caption"])
                for row in blob["rows"]:
                    for header, cell in zip(headers, row):
                        if header in ("Category", "Severity", "Kind"):
                            assert not (isinstance(cell, str) and is_code(cell)), (name, header, cell)
    shown = 0
    for name, data, layout in figures(site):
        title = layout.get("title", {}).get("text", "")
        assert not TYPOS.search(title), (name, title)
        for trace in data:
            texts = [trace.get("name") or ""]
            for axis in ("x", "y"):
                values = trace.get(axis) or []
                if values and all(isinstance(v, str) for v in values):
                    texts += values
            for text in texts:
                assert not is_code(text), (name, title, text)
                shown += 1
    assert shown > 100


def test_anonymity_is_called_suppressed_everywhere_never_hidden(site):
    for name, text in pages(site).items():
        visible = re.sub(r"<[^>]+>", " ", text)
        assert not re.search(r"\bhidden\b", visible, re.IGNORECASE), name
    from catalog_pipelines.cli.surveys import _fmt
    from catalog_pipelines.cli.usage import _n

    assert _n(None) == SUPPRESSED and _fmt("mean", {"suppressed": True, "value": None}) == SUPPRESSED


def test_certification_levels_carry_the_scorecards_config_names(site):
    legends = set()
    for name, data, layout in figures(site):
        if "at each certification level" in layout.get("title", {}).get("text", "").lower() or "at each level" in layout.get("title", {}).get("text", "").lower():
            legends |= {t["name"] for t in data}
    assert legends == {"Not certified", "Level 1 · Bronze / Scanned", "Level 2 · Silver / No critical", "Level 3 · Gold / Clean"}
    assert level_label(2, "Silver") == "Level 2 · Silver" and level_label(0, "Bronze") == "Not certified"


def test_each_kind_has_one_colour_on_every_page_and_no_two_kinds_share_one(site):
    colours: dict[str, set[str]] = {}
    for name, data, layout in figures(site):
        for trace in data:
            if trace.get("name") in KINDS:
                colour = (trace.get("marker") or {}).get("color") or (trace.get("line") or {}).get("color")
                colours.setdefault(trace["name"], set()).add(colour)
    assert len(colours) >= 3, colours
    assert all(len(c) == 1 and None not in c for c in colours.values()), colours
    flat = [next(iter(c)) for c in colours.values()]
    assert len(flat) == len(set(flat)), colours


def test_every_page_links_every_top_page(site):
    manifest = orjson.loads((site / "manifest.json").read_bytes())
    top = [p["path"] for p in manifest["pages"] if p["path"]]
    first = (site / "assets" / "site.js").read_text().splitlines()[0]
    nav = orjson.loads(first.removeprefix("window.SITE_NAV=").rstrip(";"))
    assert [h for _, h in nav] == top
    for name, text in pages(site).items():
        if name.startswith("teams/"):  # the short fallback, filled from SITE_NAV by site.js
            assert '<nav aria-label="Pages" data-nav><a href="../teams.html">Teams</a></nav>' in text, name
            assert '<a class="brand" href="../index.html">' in text, name
        else:
            menu = re.search(r'<nav aria-label="Pages">(.*?)</nav>', text).group(1)
            assert re.findall(r'href="([^"]+)"', menu) == top, name


def test_the_index_opens_with_headline_numbers_and_shows_their_change_on_the_next_build(tmp_path):
    out = tmp_path / "site"
    build_site(inputs(), out)
    index = (out / "index.html").read_text()
    headline = orjson.loads((out / "manifest.json").read_bytes())["headline"]
    assert set(headline) == {"entities", "owned_share", "teams_at_target", "open_critical", "survey_response_rate", "mau"}
    from catalog_pipelines.model.insight_tables import FACTS
    from dashboards.pages.teams import collected_frames

    vulns = collected_frames(inputs().table(FACTS.collected_latest))[0]  # as the team pages count them
    assert headline["open_critical"] == int(vulns["open_critical"].sum()) and headline["entities"] == len(ENTITIES)
    assert index.index("Headline numbers") < index.index('class="cards"')
    assert "first build in this folder" in index and "The latest ingestion cycle:" in index
    fewer = inputs()
    fewer.entities = fewer.entities.iloc[:-3]
    build_site(fewer, out)
    index = (out / "index.html").read_text()
    assert orjson.loads((out / "manifest.json").read_bytes())["headline"]["entities"] == headline["entities"] - 3
    assert "−3 since the previous build" in index and "Changes are against the previous build" in index


def test_retention_cohorts_show_their_size_and_a_tiny_cohort_is_marked_not_drawn(tmp_path):
    data = inputs()
    rows = [("2025-05-05", w, a, 40, a / 40) for w, a in ((0, 40), (1, 30), (2, 20))]
    rows += [("2025-05-12", w, a, 6, a / 6) for w, a in ((0, 6), (1, 6))]  # 6 people: at least k, under the minimum
    data.tables[USAGE.cohorts] = pd.DataFrame(rows, columns=["cohort_week", "weeks_since", "active_users", "cohort_users", "retention"])
    build_site(data, tmp_path / "site")
    (retention,) = [(d, l) for _, d, l in figures(tmp_path / "site") if "retention" in l["title"]["text"].lower()]
    values, marks = retention[0]
    assert values["y"] == ["2025-05-05 (n = 40)", "2025-05-12 (n < 10)"]
    assert values["z"][0][:3] == [100, 75, 50]
    assert values["z"][1] == [None, None, None]  # never 100 % of six people
    assert marks["z"][1][:2] == [1, 1] and "cohort under 10 people" in marks["hovertemplate"]


def test_labels_come_from_one_map():
    assert label("dangling_relation") == "Dangling relation" == LABELS["dangling_relation"]
    assert label("api") == "API" and label("some_new_code") == "Some new code" and label("payments-api") == "payments-api"
