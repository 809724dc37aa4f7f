"""Write the static dashboards site: pages, the index, the shared assets, a manifest.

    site/
      index.html          every page, its status, source asset and freshness
      catalog.html …      one page per insight area whose data exists
      teams.html          the teams index
      teams/<team>.html   one page per team, its body packed (html.py `PagePacker`; site.js inflates it)
      *-<table>.csv.gz    full exports of tables longer than their page embeds (gzip-compressed CSV)
      assets/plotly.min.js, site.js, site.css   (plotly.js once, from the plotly package: no CDN)
      assets/layouts.js   what the team pages share: figure layouts, table schemas, texts, the packing dictionary
      manifest.json       what was built, for scripts and the CLI

The site is written into a temporary sibling directory and swapped in at the end, so a reader
(a static server) never sees half a site, and a failed build leaves the previous one in place.

For an audience (`Access.for_audience`), pages and rows are filtered by the RBAC policy as they
are built; then, as a second line of defence, every written file is scanned for the refs of
groups the audience may not see, and the build fails (nothing swapped in) if one appears.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from analytics.surveys.publication import k_violations
from catalog_pipelines.model.insight_tables import SURVEYS

from dashboards.access import ALL, Access
from dashboards.headlines import as_manifest, headline_html, headlines, latest_cycle_churn
from dashboards.html import (PACK_DICT_VAR, PagePacker, esc, fmt_time, pack_dictionary, pack_dictionary_in, page_html,
                             unpack_page)
from dashboards.inputs import SiteInputs
from dashboards.pages.audit import audit_page
from dashboards.pages.base import DENIED, NO_DATA, OK, Ctx, PageOut, sources_line
from dashboards.pages.catalog import catalog_page, ingestion_page, readable_entities
from dashboards.pages.changes import changes_page
from dashboards.pages.delivery import delivery_page
from dashboards.pages.health import health_page, skills_page
from dashboards.pages.scorecards import scorecards_page
from dashboards.pages.surveys import surveys_page
from dashboards.pages.teams import page_groups, team_pages, team_slugs, teams_index
from dashboards.pages.usage import usage_page

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MANIFEST = "manifest.json"
ERROR = "error"
# Group permissions: a group any of them allows may be named on the audience's site.
GROUP_PERMISSIONS = ("insights.team.read", "scorecard.read", "surveys.read.team", "insights.usage.read", "skills.read")
GROUP_REF = re.compile(r"group:[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*", re.IGNORECASE)

PAGES: list[tuple[str, Callable[[Ctx], PageOut]]] = [
    ("catalog", catalog_page),
    ("ingestion", ingestion_page),
    ("scorecards", scorecards_page),
    ("surveys", surveys_page),
    ("usage", usage_page),
    ("delivery", delivery_page),
    ("health", health_page),
    ("changes", changes_page),
    ("skills", skills_page),
    ("audit", audit_page),
]


class SiteLeakError(RuntimeError):
    """A restricted build would have contained a group its audience may not see."""


@dataclass
class SiteReport:
    out_dir: Path
    audience: str | None
    pages: list[dict[str, Any]]
    team_pages: int
    files: int
    bytes: int
    seconds: float
    errors: list[str] = field(default_factory=list)
    # Survey figures break the anonymity threshold: the build left every one of them out.
    people_violations: list[str] = field(default_factory=list)
    # Of `bytes`: the CSV exports of tables longer than their page embeds (downloads, not pages).
    export_bytes: int = 0

    @property
    def people_figures_verified(self) -> bool:
        return not self.people_violations

    @property
    def written(self) -> list[dict[str, Any]]:
        return [p for p in self.pages if p["status"] == OK]

    @property
    def unavailable(self) -> list[dict[str, Any]]:
        return [p for p in self.pages if p["status"] != OK]

    def as_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "index": str(self.out_dir / "index.html"), "audience": self.audience,
                "pages": self.pages, "team_pages": self.team_pages, "files": self.files, "bytes": self.bytes,
                "seconds": round(self.seconds, 2), "errors": self.errors,
                "people_figures_verified": self.people_figures_verified, "people_violations": self.people_violations[:20],
                "export_bytes": self.export_bytes}


def verify_people_figures(inputs: SiteInputs) -> tuple[SiteInputs, list[str]]:
    """The inputs with their survey figures verified against k, in this process, before any page
    is built: when a figure breaks the threshold, every survey table is left out (the surveys page
    and the team pages' survey sections then show nothing) and the problems are returned."""
    problems = k_violations({t.name: inputs.table(t) for t in SURVEYS.tables()})
    if not problems:
        return inputs, []
    kept = {key: frame for key, frame in inputs.tables.items() if key.area != SURVEYS.area}
    return replace(inputs, tables=kept), problems


def visible_groups(inputs: SiteInputs, access: Access) -> set[str]:
    """Groups the audience may see named: allowed by a group permission, or owning an entity it
    may read. Every group on the operator's site."""
    groups = inputs.org.all_groups() | set(inputs.entities["owner"].dropna())
    if not access.restricted:
        return set(groups)
    visible: set[str] = set()
    for permission in GROUP_PERMISSIONS:
        visible |= access.groups(permission, groups)
    if access.all("surveys.read.org"):
        visible |= groups
    visible |= set(readable_entities(Ctx(inputs, access, {}))["owner"].dropna())
    return visible


def build_site(inputs: SiteInputs, out_dir: Path, access: Access | None = None, *, policy_source: str | None = None) -> SiteReport:
    """Build the whole site for `access` (default: unrestricted) into `out_dir`."""
    started = time.perf_counter()
    access = access or Access.unrestricted()
    out_dir = Path(out_dir)
    _check_target(out_dir)
    previous = previous_manifest(out_dir)
    # Every build (the asset, the CLI, each audience copy) verifies k itself: no survey figure
    # reaches a page unless this process checked the tables it renders.
    inputs, people_violations = verify_people_figures(inputs)
    groups_visible = visible_groups(inputs, access)
    base = Ctx(inputs, access, {}, groups_visible)
    slugs = team_slugs(inputs.org.all_groups())
    ctx = Ctx(inputs, access, {g: slugs[g] for g in page_groups(base)}, groups_visible, now=inputs.generated_at)

    results: list[PageOut] = []
    errors: list[str] = []
    if people_violations:
        # Counted, not listed: the messages name groups, and the index is read by the audience.
        errors.append(f"surveys: every survey figure left out: {len(people_violations)} break the anonymity threshold; "
                      "re-materialise survey_trends")
    for key, builder in PAGES:
        try:
            results.append(builder(ctx))
        except Exception as exc:  # one area's table changing shape must not take the whole site down
            log.exception("dashboards: page %s failed", key)
            errors.append(f"{key}: {type(exc).__name__}: {exc}")
            results.append(PageOut(key, key.title(), f"{key}.html", "", status=ERROR, reason=f"build failed: {type(exc).__name__}: {exc}"))
    try:
        teams, data = team_pages(ctx)
        index_of_teams = teams_index(ctx, teams, data)
    except Exception as exc:
        log.exception("dashboards: team pages failed")
        errors.append(f"teams: {type(exc).__name__}: {exc}")
        teams = []
        index_of_teams = PageOut("teams", "Teams", "teams.html", "", status=ERROR, reason=f"build failed: {exc}")
    results.append(index_of_teams)

    tmp = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "assets").mkdir(parents=True)
    (tmp / "teams").mkdir()
    export_size = 0
    try:
        size = _write_assets(tmp)
        # The thousands of team pages are written packed, against one dictionary drawn from
        # their own bodies (this audience's pages only), which layouts.js carries.
        team_bodies = [page.doc.html() for page in teams if page.available and page.doc is not None]
        dictionary = pack_dictionary(team_bodies)
        packer = PagePacker(dictionary)
        del team_bodies
        shared = bool(ctx.layouts.keys) or bool(teams)
        if shared:
            size += _write(tmp / "assets" / "layouts.js", ctx.layouts.script()
                           + (f"{PACK_DICT_VAR}={orjson.dumps(dictionary).decode()};\n" if dictionary else ""))
        # One menu, from one list, on every page. The thousands of team pages carry a short
        # fallback (the teams index) that site.js replaces with this list (written into site.js).
        nav = [(p.title, p.path) for p in results if p.available]
        size += _write(tmp / "assets" / "site.js", "window.SITE_NAV=" + orjson.dumps(nav).decode() + ";\n"
                       + (STATIC / "site.js").read_text())
        generated = fmt_time(inputs.generated_at)
        team_nav = [(t, h, False) for t, h in nav if h in ("teams.html",)]
        for page in [*results, *teams]:
            if not page.available or page.doc is None:
                continue
            is_team = page.key.startswith("team:")
            root = "../" if "/" in page.path else ""
            body = page.doc.html()
            text = page_html(title=page.title, body=body, root=root, subtitle=page.subtitle or page.description,
                             sources=sources_line(page, compact=is_team), audience=access.audience, generated=generated,
                             nav=team_nav if is_team else [(t, h, h == page.path) for t, h in nav], plots=page.doc.figures > 0,
                             shared_layouts=shared and is_team, compact=is_team, packed=packer.pack(body) if is_team else None)
            size += _write(tmp / page.path, text)
            # Full exports of tables longer than the page embeds (already filtered for this audience).
            for name, csv in page.doc.files.items():
                written = _write_export((tmp / page.path).parent / name, csv)
                size += written
                export_size += written
        numbers = headlines(ctx)
        opening = headline_html(numbers, (previous or {}).get("headline"),
                                fmt_time(datetime.fromisoformat(previous["generated_at"])) if previous and previous.get("generated_at") else None,
                                latest_cycle_churn(ctx))
        index = _index_html(results, len(teams), access, generated, nav, policy_source, errors, opening)
        size += _write(tmp / "index.html", index)
        manifest = _manifest(results, teams, access, inputs, policy_source, errors)
        manifest["headline"] = as_manifest(numbers)
        size += _write(tmp / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode())
        if access.restricted:
            _check_no_leak(tmp, inputs.org.all_groups() - groups_visible)
        files = sum(1 for f in tmp.rglob("*") if f.is_file())
        _swap(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SiteReport(out_dir, access.audience, manifest["pages"], len(teams), files, size,
                      time.perf_counter() - started, errors, people_violations, export_size)


def _check_target(out_dir: Path) -> None:
    """Refuse to replace a directory that is not a site we wrote (the swap deletes it)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists():
        raise FileExistsError(f"{out_dir} exists and is not a dashboards site (no {MANIFEST}): "
                              "choose a new or empty directory, the build replaces it")


def _swap(tmp: Path, out_dir: Path) -> None:
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _write(path: Path, text: str) -> int:
    data = text.encode()
    path.write_bytes(data)
    return len(data)


def _write_export(path: Path, text: str) -> int:
    """An export: gzip-compressed when its name ends in `.gz` (mtime 0: the same rows give the same bytes)."""
    data = text.encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)
    return len(data)


def read_export(path: Path, dictionary: str | None = None) -> str:
    """The text of a file the site wrote as a reader gets it: an export (gzip) decompressed, a
    packed page (a team page) inflated as site.js inflates it, with `dictionary` or the one in
    the site's assets/layouts.js."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode(errors="replace")
    text = path.read_text(errors="replace")
    if path.suffix == ".html" and '<script type="text/plain" id="packed">' in text:
        if dictionary is None:
            layouts = re.search(r'<script src="([^"]*assets/layouts\.js)"', text)
            dictionary = pack_dictionary_in((path.parent / layouts.group(1)).read_text()) if layouts else ""
        text = unpack_page(text, dictionary)
    return text


read_site_file = read_export  # the name for pages


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _write_assets(root: Path) -> int:
    size = _write(root / "assets" / "plotly.min.js", plotly_js())
    size += _write(root / "assets" / "site.css", (STATIC / "site.css").read_text())  # site.js: with the menu, below
    return size


def _check_no_leak(root: Path, restricted: set[str]) -> None:
    if not restricted:
        return
    found: dict[str, set[str]] = {}
    layouts = root / "assets" / "layouts.js"
    dictionary = pack_dictionary_in(layouts.read_text()) if layouts.exists() else ""
    for path in root.rglob("*"):
        if not path.is_file() or path.name == "plotly.min.js":
            continue
        text = read_export(path, dictionary)  # every file, the exports decompressed and the packed pages inflated
        for match in GROUP_REF.findall(text):
            ref = match.lower()
            if ref in restricted:
                found.setdefault(ref, set()).add(str(path.relative_to(root)))
    if found:
        detail = "; ".join(f"{ref} in {', '.join(sorted(files)[:3])}" for ref, files in sorted(found.items())[:10])
        raise SiteLeakError(f"the site would name {len(found)} group(s) its audience may not see; nothing was written: {detail}")


def _manifest(results: list[PageOut], teams: list[PageOut], access: Access, inputs: SiteInputs,
              policy_source: str | None, errors: list[str]) -> dict[str, Any]:
    def entry(p: PageOut) -> dict[str, Any]:
        return {"key": p.key, "title": p.title, "path": p.path if p.available else None, "status": p.status,
                "reason": p.reason, "sources": p.sources, "materialized": p.freshness.isoformat() if p.freshness else None,
                "freshness": p.fresh.state if p.fresh else None, "stale_since": p.fresh.stale_since.isoformat() if p.fresh and p.fresh.state == "stale" and p.fresh.stale_since else None,
                "data_as_of": p.data_as_of, "partial": p.partial,
                "figures": p.doc.figures if p.doc else 0, "tables": p.doc.tables if p.doc else 0}

    return {
        "generated_at": inputs.generated_at.isoformat(),
        "audience": access.audience,
        "policy": policy_source if access.restricted else None,
        "pages": [entry(p) for p in results],
        "teams": [{"title": p.title, "path": p.path, "ref": p.key.split(":", 1)[1]} for p in teams],
        "errors": errors,
    }


def _index_html(results: list[PageOut], n_teams: int, access: Access, generated: str,
                nav: list[tuple[str, str]], policy_source: str | None, errors: list[str], opening: str = "") -> str:
    cards = []
    for page in results:
        if page.available:
            extra = f" · {n_teams:,} team pages" if page.key == "teams" else ""
            cards.append(
                f'<li class="card ok"><a href="{esc(page.path)}"><strong>{esc(page.title)}</strong></a>'
                f'<p>{esc(page.description)}</p><p class="freshness">{sources_line(page)}{esc(extra)}</p></li>')
        else:
            label = {NO_DATA: "no data yet", DENIED: "not included", ERROR: "failed"}.get(page.status, page.status)
            cards.append(f'<li class="card {esc(page.status)}"><strong>{esc(page.title)}</strong> '
                         f'<span class="badge">{esc(label)}</span><p>{esc(page.reason)}</p></li>')
    intro = ("Static dashboards built from the catalog and the insight tables. Each page names the Dagster asset "
             "its data comes from and when that asset last ran. Tables sort by clicking a column header and filter "
             "with the box above them.")
    if access.restricted:
        intro += (f" This copy was built for {access.audience}: it contains only what the access policy"
                  f"{' (' + policy_source + ')' if policy_source else ''} lets them see; pages and teams outside "
                  "that are left out entirely.")
    body = opening + f'<h2>Pages</h2><p>{esc(intro)}</p><ul class="cards">{"".join(cards)}</ul>'
    if errors:
        body += '<div class="errors"><h2>Build problems</h2><ul>' + "".join(f"<li>{esc(e)}</li>" for e in errors) + "</ul></div>"
    return page_html(title="Catalog insights", body=body, root="", audience=access.audience, generated=generated,
                     nav=[(t, h, False) for t, h in nav], subtitle=f"Built {generated}", plots=False)


def previous_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of the site a build is about to replace (None when there is none or it is
    unreadable): the index compares its headline numbers with this build's."""
    path = Path(out_dir) / MANIFEST
    try:
        return orjson.loads(path.read_bytes()) if path.exists() else None
    except (OSError, orjson.JSONDecodeError):
        return None


def site_is_current(out_dir: Path) -> datetime | None:
    """When the site in `out_dir` was generated (None when there is none)."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    stamp = orjson.loads(path.read_bytes()).get("generated_at")
    return datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None


__all__ = ["ALL", "SiteLeakError", "SiteReport", "build_site", "read_export", "read_site_file", "site_is_current", "visible_groups"]
