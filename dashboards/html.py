"""HTML for the static site: a page shell, and a `Doc` that collects sections, figures and tables.

Figures and tables are embedded as JSON (`<script type="application/json">`) next to an empty
element; `static/site.js` draws them with the local plotly.js and turns tables into sortable,
filterable ones. Everything works from `file://`: no fetch, no CDN. JSON is escaped so that no
string in the data can close the script element.

The thousands of team pages are stored packed (`PagePacker`): their body (markup, tables' and
figures' JSON) is deflated against a dictionary shared by every team page (`pack_dictionary`,
written once to `assets/layouts.js`) and embedded as base64; `site.js` inflates it with the
browser's `DecompressionStream('gzip')` before it builds tables and draws figures.
`unpack_page` is the same in Python, for scripts, tests and the leak guard.
"""

from __future__ import annotations

import base64
import csv
import gzip
import html
import io
import math
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

ASSETS_DIR = "assets"
# Full exports are written gzip-compressed (a 200k-entity site's CSVs shrink about tenfold, and
# they share the site's 30 MB budget); every spreadsheet and `zcat` opens them.
EXPORT_SUFFIX = ".csv.gz"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def to_json(value: Any) -> str:
    text = orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()
    # Inside <script>, "</" could end the element and "<!--" open a comment: escape both.
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return clean(float(obj))
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def clean(value: Any, digits: int = 4) -> Any:
    """JSON-ready scalar: NaN/NA → None, numpy → Python, floats rounded (smaller pages)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f) or math.isinf(f):
            return None
        if f.is_integer() and abs(f) < 1e15:
            return int(f)
        return round(f, digits)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat(sep=" ", timespec="minutes") if isinstance(value, datetime) else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def clean_list(values: Iterable[Any], digits: int = 4) -> list[Any]:
    return [clean(v, digits) for v in values]


def fmt_time(value: datetime | None) -> str:
    """`2025-03-12 08:00 UTC`; naive datetimes are UTC (the project stores UTC)."""
    if value is None:
        return "unknown"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Column:
    """A table column: `type` is text | int | num | pct (0..1 shown as %) | date | link."""

    name: str
    type: str = "text"
    # On pages with shared layouts (team pages): the column's texts (check names, reasons, fixes),
    # the same on thousands of pages, are sent once in `assets/layouts.js` and referenced by index.
    shared: bool = False


class SharedLayouts:
    """Figure layouts that many pages repeat (the thousands of team pages), written once to
    `assets/layouts.js` and referenced by key: a layout is the same dict on every page, so its
    JSON text identifies it."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        # Texts of `Column(shared=True)` columns, site-wide: a cell holds its index here.
        self.values: dict[str, int] = {}

    def value(self, text: str) -> int:
        if text not in self.values:
            self.values[text] = len(self.values)
        return self.values[text]

    def key(self, layout: dict[str, Any]) -> str:
        text = to_json(layout)
        if text not in self.keys:
            self.keys[text] = f"L{len(self.keys) + 1}"
        return self.keys[text]

    def script(self) -> str:
        entries = [f'"{key}":{text}' for text, key in self.keys.items()]
        if self.values:
            entries.append(f'"{SHARED_VALUES}":{to_json(list(self.values))}')
        return f"window.SITE_LAYOUTS={{{','.join(entries)}}};\n"


SHARED_VALUES = "V"  # the key of the shared column texts in `window.SITE_LAYOUTS`


def expand_table(body: dict[str, Any], shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """A table's JSON as `site.js` reads it: its shared schema (caption, columns, page size) and
    shared column texts put back from `assets/layouts.js` (`shared`, parsed), its dictionary-encoded
    columns decoded. For scripts and tests reading a built site."""
    body = dict(body)
    if "schema" in body:
        body = {**(shared or {})[body.pop("schema")], **body}
    rows = [list(r) for r in body["rows"]]
    for j in body.pop("sv", []):
        for r in rows:
            if r[j] is not None:
                r[j] = (shared or {})[SHARED_VALUES][r[j]]
    for j, values in (body.pop("dict", None) or {}).items():
        for r in rows:
            if r[int(j)] is not None:
                r[int(j)] = values[r[int(j)]]
    body["rows"] = rows
    return body


class Doc:
    """The body of one page, built section by section."""

    def __init__(self, prefix: str = "d", layouts: SharedLayouts | None = None, stem: str | None = None) -> None:
        self.parts: list[str] = []
        self.figures = 0
        self.tables = 0
        self._n = 0
        self._prefix = prefix
        self.layouts = layouts
        # `stem`: the page's file name without `.html`; a table with more rows than a page embeds
        # writes its full rows to `<stem>-<name>.csv.gz` next to the page (the site writes `files`,
        # CSV text here, compressed as it is written).
        self.stem = stem
        self.files: dict[str, str] = {}
        self.notices = 0  # charts replaced by "not enough history yet"

    def _id(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n}"

    def h2(self, text: str, anchor: str | None = None) -> None:
        ident = f' id="{esc(anchor)}"' if anchor else ""
        self.parts.append(f"<h2{ident}>{esc(text)}</h2>")

    def p(self, text: str, cls: str | None = None) -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{c}>{esc(text)}</p>")

    def note(self, text: str) -> None:
        self.p(text, "note")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def kpis(self, items: Sequence[tuple[str, Any, str]]) -> None:
        """Headline figures: (label, value, unit or hint)."""
        cells = "".join(
            f'<div class="kpi"><b>{esc(_fmt_kpi(v))}</b>{esc(label)}' + (f"<small>{esc(unit)}</small>" if unit else "") + "</div>"
            for label, v, unit in items
        )
        self.parts.append(f'<div class="kpis">{cells}</div>')

    def figure(self, fig: dict[str, Any], shared: bool = False) -> None:
        """A plotly figure; `shared` moves its layout to the site's shared layouts (when this Doc
        has them), for figures repeated with the same layout on many pages.

        A trend (line chart) whose every series has fewer than two x values answers nothing: it is
        replaced by a "not enough history yet" notice naming the chart."""
        title = ((fig.get("layout") or {}).get("title") or {}).get("text", "chart")
        if is_one_point_trend(fig):
            self.notices += 1
            xs = {str(x) for t in fig.get("data") or [] for x in (t.get("x") or []) if x is not None}
            when = f" (only {next(iter(xs))} so far)" if len(xs) == 1 else ""
            self.parts.append(f'<p class="note history" data-chart="{esc(title)}">Not enough history yet for '
                              f'“{esc(title)}”: a trend needs at least two points{esc(when)}; it appears after the next run.</p>')
            return
        ident = self._id()
        self.figures += 1
        if shared and self.layouts is not None:
            # The legend names move to the shared layout too (`meta.names`; site.js puts them back).
            layout, data = dict(fig.get("layout") or {}), fig["data"]
            meta: dict[str, Any] = {}
            if any(t.get("name") for t in data):
                meta["names"] = [t.get("name") for t in data]
                data = [{k: v for k, v in t.items() if k != "name"} for t in data]
            # So do the traces' styles (type, colours, templates, category labels): only the
            # values stay on the page (`meta.traces`; site.js merges them back).
            styles = [{k: v for k, v in t.items() if _trace_style(k, v)} for t in data]
            if any(styles):
                meta["traces"] = styles
                data = [{k: v for k, v in t.items() if not _trace_style(k, v)} for t in data]
            if meta:
                layout["meta"] = meta
            fig = {"data": data, "layoutRef": self.layouts.key(layout)}
        self.parts.append(
            f'<figure class="plot" data-src="{ident}" aria-label="{esc(title)}"></figure>'
            f'<script type="application/json" id="{ident}">{to_json(fig)}</script>'
        )

    def table(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Any]],
        *,
        caption: str,
        total: int | None = None,
        page_size: int = 25,
        inline: int | None = None,
        anchor: str | None = None,
        export: str | bool | None = None,
        note: str | None = None,
        more: str | None = None,
    ) -> None:
        """A sortable, filterable, paged table.

        Every row given is embedded (as compact JSON arrays) and searched, sorted and paged in the
        browser, unless there are more than `inline`: then the first `inline` rows are embedded,
        the table says "showing N of M", and, when the Doc has a `stem`, ALL rows are written to a
        gzip-compressed CSV file next to the page and linked (`export` names it, default from the caption).
        `total` states a count of rows that exist but were never given (none listed).
        `anchor` is the element id (drill-down links: `page.html#anchor` or `#anchor?q=text`,
        which also fills the filter box). `note` is a sentence under the table explaining its numbers.
        `export=False` writes no CSV: `more` then says where the other rows are listed.

        A column of text values that repeat is sent once per distinct value (`dict`: the rows hold
        indices, which `site.js` turns back into text), which keeps thousands of pages small."""
        ident = self._id()
        self.tables += 1
        rows = list(rows)
        shown = rows if inline is None or len(rows) <= inline else rows[:inline]
        cells = [[clean(v) for v in r] for r in shown]
        schema = {"caption": caption, "columns": [[c.name, c.type] for c in columns], "pageSize": page_size}
        body: dict[str, Any] = {"rows": cells, "total": max(total if total is not None else 0, len(rows))}
        if self.layouts is not None:
            # Thousands of team pages repeat the same tables: the schema is sent once, in
            # assets/layouts.js, and so are the texts of shared columns.
            body = {"schema": self.layouts.key(schema), **body}
            sv = [j for j, c in enumerate(columns) if c.shared]
            for r in cells:
                for j in sv:
                    if r[j] is not None:
                        r[j] = self.layouts.value(str(r[j]))
            if sv:
                body["sv"] = sv
        else:
            body = {**schema, **body}
        encoded = _dictionary_encode(cells, len(columns))
        if encoded:
            body["dict"] = encoded
        if len(shown) < len(rows) and self.stem is not None and export is not False:
            name = f"{self.stem}-{_slug(export if isinstance(export, str) else anchor or caption)}{EXPORT_SUFFIX}"
            self.files[name] = csv_text(columns, rows)
            body["csv"] = name
        elif len(shown) < len(rows) and more:
            body["more"] = more
        ident_attr = f' id="{esc(anchor)}"' if anchor else ""
        self.parts.append(
            f'<div class="table" data-src="{ident}"{ident_attr}></div>'
            f'<script type="application/json" id="{ident}">{to_json(body)}</script>'
        )
        if note:
            self.p(note, "explain")

    def export(self, name: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> str | None:
        """Write `rows` to `<stem>-<name>.csv.gz` next to the page; its file name (None without a stem)."""
        if self.stem is None:
            return None
        file = f"{self.stem}-{_slug(name)}{EXPORT_SUFFIX}"
        self.files[file] = csv_text(columns, rows)
        return file

    def frame_table(self, frame: pd.DataFrame, columns: Sequence[tuple[str, str, str]], *, caption: str,
                    limit: int | None = None, total: int | None = None, page_size: int = 25,
                    anchor: str | None = None, export: str | None = None, note: str | None = None) -> None:
        """A table from a frame: columns are (frame column, header, type); `limit` is the number
        of rows embedded in the page (the rest go to the CSV export, see `table`)."""
        data = [frame[c].tolist() if c in frame.columns else [None] * len(frame) for c, _, _ in columns]
        rows = list(zip(*data)) if data else []
        self.table([Column(h, t) for _, h, t in columns], rows, caption=caption, total=total, page_size=page_size,
                   inline=limit, anchor=anchor, export=export, note=note)

    def html(self) -> str:
        return "\n".join(self.parts)


TRACE_VALUES = ("x", "y", "z", "text", "customdata", "values", "labels")


def _trace_style(key: str, value: Any) -> bool:
    """A trace property a shared figure moves to its layout: anything but its values, and its
    x or y when they are category labels (text)."""
    if key not in TRACE_VALUES:
        return True
    return key in ("x", "y") and isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def expand_figure(blob: dict[str, Any], shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """A figure's JSON as `site.js` draws it: a shared layout (`layoutRef`) put back from
    `assets/layouts.js`, with its traces' styles and legend names. For scripts and tests."""
    if "layoutRef" not in blob:
        return blob
    layout = dict((shared or {})[blob["layoutRef"]])
    meta = layout.pop("meta", None) or {}
    data = [{**style, **t} for t, style in zip(blob["data"], meta.get("traces") or [{}] * len(blob["data"]))]
    names = meta.get("names") or []
    data = [{**t, "name": n} if n else t for t, n in zip(data, names)] if names else data
    return {"data": data, "layout": layout}


def _fmt_kpi(value: Any) -> str:
    value = clean(value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def link(text: Any, href: str) -> dict[str, Any]:
    """A link cell; `text` may be a number (it then sorts as one)."""
    return {"t": clean(text), "h": href}


def drill(href: str, anchor: str, query: str | None = None) -> str:
    """A drill-down address: the table `anchor` on page `href`, its filter box set to `query`."""
    from urllib.parse import quote

    return f"{href}#{anchor}" + (f"?q={quote(str(query), safe='')}" if query else "")


def is_one_point_trend(fig: dict[str, Any]) -> bool:
    """A line chart (scatter traces drawn with lines) in which no series has two distinct x values."""
    data = fig.get("data") or []
    if not data or any(t.get("type") != "scatter" or "lines" not in str(t.get("mode", "lines")) for t in data):
        return False
    return all(len({str(x) for x, y in zip(t.get("x") or [], t.get("y") or []) if x is not None and y is not None}) < 2
               for t in data)


def _dictionary_encode(rows: list[list[Any]], width: int) -> dict[int, list[str]]:
    """In place: each column of plain strings with at most half as many distinct values as rows
    becomes indices into a list of its values (None stays None); returns {column: values}."""
    out: dict[int, list[str]] = {}
    if len(rows) < 4:
        return out
    for j in range(width):
        values = [r[j] for r in rows]
        if not all(v is None or isinstance(v, str) for v in values):
            continue
        distinct = list(dict.fromkeys(v for v in values if v is not None))
        if not distinct or len(distinct) * 2 > len(rows):
            continue
        index = {v: i for i, v in enumerate(distinct)}
        for r in rows:
            if r[j] is not None:
                r[j] = index[r[j]]
        out[j] = distinct
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40] or "table"


def csv_text(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> str:
    """The rows as CSV with a header line: links as their text, suppressed cells as "suppressed",
    shares (pct) as fractions 0..1; exactly what the table holds, nothing more."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int:  # most cells: nothing to clean (millions on a large site)
        return value
    if isinstance(value, (list, tuple)):
        return "; ".join(str(_csv_cell(v)) for v in value)
    value = clean(value)
    if isinstance(value, dict):
        return "suppressed" if value.get("sup") else value.get("t", "")
    return "" if value is None else value


SUPPRESSED = {"sup": 1}


def page_html(
    *,
    title: str,
    body: str,
    nav: Sequence[tuple[str, str, bool]],
    root: str,
    subtitle: str = "",
    sources: str = "",
    audience: str | None = None,
    generated: str = "",
    plots: bool = True,
    shared_layouts: bool = False,
    compact: bool = False,
    packed: str | None = None,
) -> str:
    """A whole page. `root` is the relative path to the site root ("" or "../"); `nav` is
    (title, href from root, current); pages without figures do not load plotly.js. `compact`
    (the thousands of team pages): `nav` is a short fallback that `site.js` replaces with the
    site's whole menu (`window.SITE_NAV`, written into assets/site.js once, from the same list),
    and the footer is one line. `packed` (`PagePacker.pack` of `body`) replaces the body with the
    packed one, which site.js inflates; `<noscript>` says why nothing shows without JavaScript."""
    links = "".join(
        f'<a href="{esc(root + href)}"' + (' aria-current="page"' if current else "") + f">{esc(text)}</a>"
        for text, href, current in nav
    )
    who = f'<span class="audience">built for {esc(audience)}</span>' if audience else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · Catalog insights</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="{root}{ASSETS_DIR}/site.css">'
        + (f'<script src="{root}{ASSETS_DIR}/plotly.min.js" defer></script>' if plots else "")
        + (f'<script src="{root}{ASSETS_DIR}/layouts.js" defer></script>' if shared_layouts else "")
        + f'<script src="{root}{ASSETS_DIR}/site.js" defer></script>'
        "</head><body>"
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><a class="brand" href="{root}index.html">Catalog insights</a>{who}'
        f'<nav aria-label="Pages"' + (" data-nav" if compact else "") + f">{links}</nav></header>"
        f'<main id="main"><h1>{esc(title)}</h1>'
        + (f'<p class="subtitle">{esc(subtitle)}</p>' if subtitle else "")
        + (f'<p class="freshness">{sources}</p>' if sources else "")
        + (f'<script type="text/plain" id="packed">{packed}</script>{NOSCRIPT}' if packed is not None else body)
        + (f"</main><footer>Generated {esc(generated)}" if compact else
           f"</main><footer>Generated {esc(generated)} by catalog-pipelines · offline, plotly.js included · needs JavaScript")
        + "</footer></body></html>\n"
    )


# ------------------------------------------------------------------------------ packed pages
#
# A packed page carries `<script type="text/plain" id="packed">BASE64</script>` where its body
# was. BASE64 is a raw deflate stream compressed with the shared dictionary preloaded (zlib's
# `zdict`), followed by a gzip trailer (CRC-32 and length of dictionary + body). The reader
# (site.js, `unpack_page`) builds a gzip stream: a fixed header, the dictionary as stored deflate
# blocks (so that the page's back-references into it resolve), then those bytes; inflates it; and
# drops the dictionary's bytes from the front. A dictionary that is not the one the page was
# packed with fails the CRC: an error, never a wrong page.

PACKED = re.compile(r'<script type="text/plain" id="packed">([A-Za-z0-9+/=]*)</script>')
PACK_DICT_BYTES = 32_000  # deflate looks back at most 32 KiB
PACK_DICT_SAMPLES = 30  # team pages, evenly spread over the site, whose bodies make the dictionary
PACK_DICT_VAR = "window.SITE_PACK"  # in assets/layouts.js
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, OS unknown
NOSCRIPT = ("<noscript><p class=\"note\">This page's figures and tables are stored compressed and shown by "
            "JavaScript: turn JavaScript on to see them.</p></noscript>")


def pack_dictionary(bodies: Sequence[str]) -> str:
    """The shared dictionary: the bodies of PACK_DICT_SAMPLES pages spread evenly over `bodies`
    (the site's own team pages, in path order: the same site gives the same dictionary), at most
    PACK_DICT_BYTES of UTF-8 from their end. Their markup, table schemas' keys, check names and
    notes are what every team page repeats."""
    if not bodies:
        return ""
    step = max(1, len(bodies) // PACK_DICT_SAMPLES)
    text = "".join(bodies[::step])[-PACK_DICT_BYTES:]
    while len(text.encode()) > PACK_DICT_BYTES:  # multi-byte characters: cut whole characters
        text = text[len(text.encode()) - PACK_DICT_BYTES:]
    return text


class PagePacker:
    """Packs page bodies against one dictionary (`pack_dictionary`)."""

    def __init__(self, dictionary: str) -> None:
        self.dictionary = dictionary.encode()
        args = (9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY)
        # The dictionary is loaded once; each page compresses from a copy of that state.
        self._start = zlib.compressobj(*args, self.dictionary) if self.dictionary else zlib.compressobj(*args)
        self._crc = zlib.crc32(self.dictionary)

    def pack(self, body: str) -> str:
        data = body.encode()
        deflate = self._start.copy()
        raw = deflate.compress(data) + deflate.flush()
        trailer = struct.pack("<II", zlib.crc32(data, self._crc), (len(self.dictionary) + len(data)) & 0xFFFFFFFF)
        return base64.b64encode(raw + trailer).decode("ascii")


def unpack_body(payload: str, dictionary: str) -> str:
    """A packed body back to its text, exactly as site.js inflates it."""
    shared = dictionary.encode()
    stored = b"".join(struct.pack("<BHH", 0, len(chunk), len(chunk) ^ 0xFFFF) + chunk
                      for chunk in (shared[i:i + 65535] for i in range(0, len(shared), 65535)))
    return gzip.decompress(GZIP_HEADER + stored + base64.b64decode(payload))[len(shared):].decode()


def unpack_page(text: str, dictionary: str) -> str:
    """A page's HTML as the browser shows it once site.js inflated it (unchanged when not packed)."""
    return PACKED.sub(lambda m: unpack_body(m.group(1), dictionary), text, count=1)


def pack_dictionary_in(layouts_js: str) -> str:
    """The dictionary written in the text of assets/layouts.js ("" when it has none)."""
    for line in layouts_js.splitlines():
        if line.startswith(PACK_DICT_VAR + "="):
            return orjson.loads(line.removeprefix(PACK_DICT_VAR + "=").rstrip().rstrip(";"))
    return ""
