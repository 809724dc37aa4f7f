"""Build the dashboards site for a 200,000-entity organisation, and time it.

Setup (not timed): a SQLite catalog with the synthetic org (one ingestion cycle, written chunk by
chunk through the real storage path), every insight table the site reads at the size the org
implies (`dashboards/sample.py`: 8 survey waves, 90 usage days, 3 scorecard evaluations) and a few
audit rows. Timed, in a fresh process so that peak RSS is the build's own:

- load: `load_site_inputs` (the catalog, ledger, audit log and insight tables, as the asset reads them);
- build: `build_site` for the operator (every page, one page per group);
- audience: a restricted copy for one team member under config/permissions.yaml;
- first contentful paint of the index (and of the largest page) in headless Chromium, from a cold
  browser context each time, median of three: `performance.getEntriesByName('first-contentful-paint')`.

Prints the figures (`print_figures`) and a markdown table for docs/benchmarks.md. Targets: build
≤ 60 s, site ≤ 30 MB, largest page ≤ 3 MB, first contentful paint of the index ≤ 1 s.

    python benchmarks/dashboards.py [--size N] [--keep DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_SECONDS = 60
BUDGET_BYTES = 30_000_000  # 30 MB, decimal: the stricter reading
BUDGET_PAGE_BYTES = 3_000_000
BUDGET_FCP_MS = 1000
FCP = "() => { const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null; }"


def seed_catalog(url: str, size: int, seed_value: int):
    """The synthetic org into the catalog (one ingestion cycle, 5,000 entities a chunk): the engine,
    the entities frame (bodies included), the org and the seconds it took."""
    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
    from catalog_pipelines.providers.synthetic import SyntheticOrg
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.ledger import Ledger

    started = time.perf_counter()
    engine = get_engine(url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    ingestion = ledger.start_cycle("synthetic")
    batch: list[ProcessedEntity] = []
    sequence, seen = 0, set()

    def flush(done: bool) -> None:
        nonlocal sequence, batch
        store.write_chunk(provider="synthetic", ingestion_id=ingestion.id, sequence=sequence, cursor_in=None, cursor=None,
                          done=done, entities=batch, rejections=[])
        sequence += 1
        batch = []

    for i, body in enumerate(SyntheticOrg(size, seed=seed_value).iter_entities()):
        if body is None:
            continue
        entity = process_entity(RawEntity(entity=body, location=f"bench#{i}"))
        if isinstance(entity, ProcessedEntity) and entity.ref not in seen:
            seen.add(entity.ref)
            batch.append(entity)
        if len(batch) >= 5000:
            flush(False)
    flush(True)
    catalog_s = time.perf_counter() - started
    from catalog_pipelines.storage.frames import entities_frame

    entities = entities_frame(engine)
    from analytics.org import OrgGraph

    org = OrgGraph.from_entities(entities.loc[entities["kind"].isin(["user", "group"]), "entity"].tolist())
    return engine, entities, org, catalog_s


def seed(url: str, size: int, seed_value: int) -> dict:
    """The synthetic org into the catalog, then sample insight tables and audit rows."""
    from catalog_pipelines.storage import audit
    from catalog_pipelines.storage.insights import write_frame
    from dashboards.sample import sample_inputs

    started = time.perf_counter()
    engine, entities, org, catalog_s = seed_catalog(url, size, seed_value)
    inputs = sample_inputs(org, entities.drop(columns=["entity"]), seed=seed_value, waves=8, usage_days=90, evaluations=3)
    rows = 0
    from catalog_pipelines.model.insight_tables import FACTS
    from catalog_pipelines.services.facts import store_collected_frame

    for table, frame in inputs.tables.items():
        if table == FACTS.collected_latest:  # collected facts live in the fact store
            rows += store_collected_frame(engine, frame, inputs.generated_at)
            continue
        rows += write_frame(engine, table, frame)
    for row in inputs.audit.itertuples():
        audit.record(engine, actor=row.actor, action=row.action, target=row.target, outcome=row.outcome, details=row.details, at=row.at)
    member = sorted(u for g, members in org.direct_members.items() for u in members)[len(org.users) // 2]
    return {"entities": len(entities), "groups": len(org.all_groups()), "users": len(org.users), "insight_rows": rows,
            "catalog_seed_s": round(catalog_s, 1), "setup_s": round(time.perf_counter() - started, 1), "audience": member}


def measure(url: str, out: Path, audience: str) -> dict:
    """The timed part (run in its own process)."""
    from catalog_pipelines.services.site import build_for_audience, load_site_inputs
    from catalog_pipelines.storage.db import get_engine
    from dashboards import build_site

    t0 = time.perf_counter()
    inputs = load_site_inputs(get_engine(url))
    t1 = time.perf_counter()
    full = build_site(inputs, out / "full")
    t2 = time.perf_counter()
    restricted = build_for_audience(inputs, audience, out / "audience")
    t3 = time.perf_counter()
    return {
        "load_s": round(t1 - t0, 2), "build_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
        "pages": len(full.written), "team_pages": full.team_pages, "files": full.files,
        "site_mb": round(full.bytes / 1024 / 1024, 2), "site_bytes": full.bytes, "exports_mb": round(full.export_bytes / 1024 / 1024, 2), "plotly_js_mb": round((out / "full/assets/plotly.min.js").stat().st_size / 1024 / 1024, 2),
        **page_sizes(out / "full"),
        "audience_build_s": round(t3 - t2, 2), "audience_pages": len(restricted.written), "audience_team_pages": restricted.team_pages,
        "audience_mb": round(restricted.bytes / 1024 / 1024, 2), "errors": full.errors + restricted.errors,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def page_sizes(site: Path) -> dict:
    """The largest page (its HTML and the JSON in it), and what the site's bytes are made of."""
    pages = sorted(((p.stat().st_size, p) for p in site.rglob("*.html")), reverse=True)
    size, largest = pages[0]
    team = sum(n for n, p in pages if p.parent.name == "teams")
    assets = sum(p.stat().st_size for p in (site / "assets").iterdir())
    return {"largest_page": str(largest.relative_to(site)), "largest_page_kb": round(size / 1024, 1),
            "largest_page_bytes": size, "team_pages_mb": round(team / 1024 / 1024, 2),
            "top_pages_mb": round((sum(n for n, _ in pages) - team) / 1024 / 1024, 2),
            "assets_mb": round(assets / 1024 / 1024, 2)}


def first_contentful_paint(site: Path, pages: list[str], runs: int = 3) -> dict:
    """Median first contentful paint (ms) of each page from file://, a cold browser context per
    load; {} without Chromium or Playwright (the figure is then reported as missing)."""
    import shutil
    import statistics

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if chromium is None:
        return {}
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for page in pages:
                times = []
                for _ in range(runs):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    tab = context.new_page()
                    tab.goto((site / page).as_uri(), wait_until="load")
                    tab.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=30_000)
                    times.append(tab.evaluate(FCP))
                    context.close()
                out[page] = round(statistics.median(times))
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (a second run reuses its catalog)")
    parser.add_argument("--smoke", action="store_true", help="2,000 entities")
    parser.add_argument("--measure", nargs=3, metavar=("URL", "OUT", "AUDIENCE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]), args.measure[2])))
        return {}
    if args.smoke:
        args.size = 2000
    work = args.keep or Path(tempfile.mkdtemp(prefix="cp-dash-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["CATALOG_PIPELINES_DATA_DIR"] = str(work)
    url = f"sqlite:///{work / f'catalog-{args.size}.db'}"
    marker = work / f"seeded-{args.size}.json"
    if marker.exists():
        setup = json.loads(marker.read_text())
    else:
        setup = seed(url, args.size, args.seed)
        marker.write_text(json.dumps(setup))
    out = work / "sites"
    result = subprocess.run([sys.executable, __file__, "--measure", url, str(out), setup["audience"]], check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    figures = {**setup, **json.loads(result.stdout.strip().splitlines()[-1]), "size": args.size}
    paints = first_contentful_paint(out / "full", ["index.html", figures["largest_page"]])
    figures["fcp_index_ms"] = paints.get("index.html")
    figures["fcp_largest_page_ms"] = paints.get(figures["largest_page"])
    figures["within_budget"] = (figures["total_s"] <= BUDGET_SECONDS and figures["site_bytes"] <= BUDGET_BYTES
                                and figures["largest_page_bytes"] <= BUDGET_PAGE_BYTES
                                and figures["fcp_index_ms"] is not None and figures["fcp_index_ms"] <= BUDGET_FCP_MS)
    from benchmarks.ingest_200k import print_figures

    print_figures(figures)
    print()
    print(f"| dashboards site, {figures['entities']:,} entities ({figures['groups']:,} groups, {figures['users']:,} users) | measured |")
    print("| --- | --- |")
    print(f"| load inputs from SQLite (catalog, ledger, audit, {figures['insight_rows']:,} insight rows) | {figures['load_s']} s |")
    print(f"| build the full site ({figures['pages']} pages + {figures['team_pages']:,} team pages, {figures['files']:,} files) | {figures['build_s']} s |")
    print(f"| load + build (target ≤ {BUDGET_SECONDS} s) | **{figures['total_s']} s** |")
    print(f"| site size, plotly.js {figures['plotly_js_mb']} MiB included (target ≤ 30 MB) | **{figures['site_bytes'] / 1e6:.1f} MB** "
          f"({figures['site_mb']} MiB: team pages {figures['team_pages_mb']}, top pages {figures['top_pages_mb']}, assets {figures['assets_mb']}) |")
    print(f"| largest page, {figures['largest_page']} (target ≤ 3 MB) | **{figures['largest_page_bytes'] / 1e6:.2f} MB** |")
    print(f"| first contentful paint, index (target ≤ {BUDGET_FCP_MS} ms) / largest page, headless Chromium | "
          f"**{figures['fcp_index_ms']} ms** / {figures['fcp_largest_page_ms']} ms |")
    print(f"| restricted copy for one team member | {figures['audience_build_s']} s, {figures['audience_pages']} pages + {figures['audience_team_pages']} team page(s), {figures['audience_mb']} MiB |")
    print(f"| peak RSS of load + both builds | {figures['peak_rss_mb']} MB |")
    return figures


if __name__ == "__main__":
    main()
