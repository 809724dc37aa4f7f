"""Plotly figures as plain dicts (`{"data": [...], "layout": {...}}`).

Plain dicts rather than `plotly.graph_objects`: a site for a large org has thousands of small
figures, and building validated Figure objects costs milliseconds each. The tests validate every
kind of figure built here through `plotly.graph_objects.Figure`. Shared styling (font, colourway,
margins) is applied once by `static/site.js`, so each figure carries only its own data, title,
axis titles and units.

Colours: the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies);
sequential scales are Viridis / Blues; diverging survey scores use RdBu around the scale's midpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalog_pipelines.model.vocabulary import label
from dashboards.html import clean_list

# Okabe–Ito, then Tol's muted colours for series beyond eight.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#882255", "#44AA99", "#999933", "#AA4499"]
SUPPRESSED_COLOUR = "#9e9e9e"
SUPPRESSED_TEXT = "suppressed"  # the placeholder written in a suppressed heatmap cell
OK, WARN, BAD = "#009E73", "#E69F00", "#D55E00"
# One colour per kind of thing, the same on every page (series named by these codes take it
# unless the caller passes its own): entity kinds, severities, outcomes, changes.
SERIES_COLOURS = {
    "component": PALETTE[0], "api": PALETTE[1], "resource": PALETTE[2], "system": PALETTE[4], "domain": PALETTE[5],
    "template": PALETTE[3], "group": PALETTE[8], "user": PALETTE[9], "location": PALETTE[10],
    "error": BAD, "warning": WARN, "info": PALETTE[0],
    "success": OK, "denied": BAD, "failure": WARN,
    "added": OK, "changed": PALETTE[0], "removed": BAD, "rejected": WARN,
}


def series_colour(name: Any, colors: Mapping[str, str] | None = None) -> str | None:
    """The colour of a series: the caller's, else the site-wide one for its code (None: colourway)."""
    if colors and name in colors:
        return colors[name]
    return SERIES_COLOURS.get(str(name).lower())


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, **extra}


def _layout(title: str, xtitle: str, ytitle: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "xaxis": _axis(xtitle), "yaxis": _axis(ytitle), **extra}


def _rows_height(n: int) -> int:
    """Height for a chart with `n` horizontal bars (or heatmap rows): every label stays legible."""
    return max(360, 130 + 24 * n)


def bar(
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    title: str,
    xtitle: str,
    ytitle: str,
    horizontal: bool = False,
    color: str | Sequence[str] | None = None,
    hover: str | None = None,
    percent: bool = False,
) -> dict[str, Any]:
    """One series of bars; `horizontal` puts categories on the y axis (long labels)."""
    cats, vals = [str(v) for v in x], clean_list(y)
    trace: dict[str, Any] = {"type": "bar"}
    if horizontal:
        trace.update(x=vals, y=cats, orientation="h")
    else:
        trace.update(x=cats, y=vals)
    if color is not None:
        trace["marker"] = {"color": color if isinstance(color, str) else list(color)}
    if hover:
        trace["hovertemplate"] = hover
    layout = _layout(title, xtitle, ytitle, showlegend=False)
    if horizontal:
        layout["yaxis"]["automargin"] = True
        layout["yaxis"]["autorange"] = "reversed"  # largest first, top down
        layout["height"] = _rows_height(len(cats))
        if percent:
            layout["xaxis"]["ticksuffix"] = "%"
    elif percent:
        layout["yaxis"]["ticksuffix"] = "%"
    return {"data": [trace], "layout": layout}


def bars(
    categories: Sequence[Any],
    series: Mapping[str, Sequence[Any]],
    *,
    title: str,
    xtitle: str,
    ytitle: str,
    stacked: bool = False,
    horizontal: bool = False,
    colors: Mapping[str, str] | None = None,
    percent: bool = False,
) -> dict[str, Any]:
    """Several series of bars over the same categories, grouped or stacked."""
    cats = [label(c) for c in categories]
    data = []
    for name, values in series.items():
        trace: dict[str, Any] = {"type": "bar", "name": label(name)}
        if horizontal:
            trace.update(y=cats, x=clean_list(values), orientation="h")
        else:
            trace.update(x=cats, y=clean_list(values))
        colour = series_colour(name, colors)
        if colour:
            trace["marker"] = {"color": colour}
        data.append(trace)
    layout = _layout(title, xtitle, ytitle, barmode="stack" if stacked else "group")
    value_axis = "xaxis" if horizontal else "yaxis"
    if percent:
        layout[value_axis]["ticksuffix"] = "%"
    if horizontal:
        layout["yaxis"]["automargin"] = True
        layout["yaxis"]["autorange"] = "reversed"
        layout["height"] = _rows_height(len(cats))
    return {"data": data, "layout": layout}


def lines(
    x: Sequence[Any],
    series: Mapping[str, Sequence[Any]],
    *,
    title: str,
    xtitle: str,
    ytitle: str,
    markers: bool = True,
    percent: bool = False,
    yrange: Sequence[float] | None = None,
    x_is_category: bool = False,
) -> dict[str, Any]:
    """Lines over a shared x; a None value leaves a gap (no interpolation across missing data)."""
    xs = [str(v) for v in x] if x_is_category else clean_list(x)
    data = [
        {"type": "scatter", "mode": "lines+markers" if markers else "lines", "name": label(name), "x": xs,
         "y": clean_list(values), "connectgaps": False}
        for name, values in series.items()
    ]
    for trace, name in zip(data, series):
        if colour := series_colour(name):
            trace["line"] = {"color": colour}
    layout = _layout(title, xtitle, ytitle)
    if x_is_category:
        layout["xaxis"]["type"] = "category"
    if percent:
        layout["yaxis"]["ticksuffix"] = "%"
    if yrange is not None:
        layout["yaxis"]["range"] = list(yrange)
    if len(data) == 1:
        layout["showlegend"] = False
    return {"data": data, "layout": layout}


def xy_lines(
    traces: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
    *,
    title: str,
    xtitle: str,
    ytitle: str,
    percent: bool = False,
    integer_x: bool = False,
) -> dict[str, Any]:
    """Lines with their own x values each: (name, x, y). `integer_x` for counts such as cycles."""
    data = [{"type": "scatter", "mode": "lines+markers", "name": label(n), "x": clean_list(x), "y": clean_list(y)}
            for n, x, y in traces]
    layout = _layout(title, xtitle, ytitle)
    if integer_x:
        layout["xaxis"].update(tickformat="d", dtick=1 if max((len(x) for _, x, _ in traces), default=0) <= 20 else None)
        if layout["xaxis"]["dtick"] is None:
            del layout["xaxis"]["dtick"]
    if percent:
        layout["yaxis"]["ticksuffix"] = "%"
    return {"data": data, "layout": layout}


def heatmap(
    x: Sequence[Any],
    y: Sequence[Any],
    z: Sequence[Sequence[Any]],
    *,
    title: str,
    xtitle: str,
    ytitle: str,
    colorbar: str,
    colorscale: str = "Viridis",
    zmin: float | None = None,
    zmax: float | None = None,
    suppressed: Sequence[Sequence[bool]] | None = None,
    suppressed_label: str = "suppressed",
    text_format: str = ".2f",
    reverse: bool = False,
    digits: int = 4,
) -> dict[str, Any]:
    """A heatmap with its values written in the cells; suppressed cells are drawn grey with the
    placeholder "suppressed" and no number, so an empty cell is never mistaken for a low value.

    Each cell's label is its own (`text` per cell, not one template for the whole trace), and gaps
    take no hover (`hoverongaps` off): a cell shows and hovers its value, or the placeholder and
    `suppressed_label`, never the other trace's text.
    """
    xs, ys = [str(v) for v in x], [str(v) for v in y]
    hidden = [[bool(s) for s in row] for row in suppressed] if suppressed is not None else [[False] * len(xs) for _ in ys]
    # A suppressed cell never carries a number, whatever the caller passed in z.
    zz = [[None if h else v for v, h in zip(clean_list(row, digits), hrow)] for row, hrow in zip(z, hidden)]
    trace: dict[str, Any] = {
        "type": "heatmap", "x": xs, "y": ys, "z": zz, "colorscale": colorscale,
        "colorbar": {"title": {"text": colorbar}}, "reversescale": reverse,
        "text": [["" if v is None else format(v, text_format) for v in row] for row in zz], "texttemplate": "%{text}",
        "hovertemplate": "%{x} · %{y}: %{text}<extra></extra>", "hoverongaps": False,
        "xgap": 1, "ygap": 1,
    }
    if zmin is not None:
        trace["zmin"] = zmin
    if zmax is not None:
        trace["zmax"] = zmax
    data = [trace]
    if any(any(r) for r in hidden):
        data.append({
            "type": "heatmap", "x": xs, "y": ys, "name": "suppressed", "showscale": False,
            "z": [[1 if h else None for h in row] for row in hidden],
            "colorscale": [[0, SUPPRESSED_COLOUR], [1, SUPPRESSED_COLOUR]],
            # Set only on the suppressed cells; the others are gaps: no colour, no text, no hover.
            "text": [[SUPPRESSED_TEXT if h else "" for h in row] for row in hidden], "texttemplate": "%{text}",
            "hovertemplate": f"%{{x}} · %{{y}}: {suppressed_label}<extra></extra>", "hoverongaps": False,
            "xgap": 1, "ygap": 1,
        })
    layout = _layout(title, xtitle, ytitle)
    layout["xaxis"]["type"] = "category"
    layout["yaxis"]["type"] = "category"
    layout["yaxis"]["automargin"] = True
    layout["height"] = _rows_height(len(ys))
    return {"data": data, "layout": layout}


def box(groups: Mapping[str, Sequence[float]], *, title: str, xtitle: str, ytitle: str) -> dict[str, Any]:
    data = [{"type": "box", "name": str(name), "y": clean_list(values, 3), "boxpoints": "outliers"}
            for name, values in groups.items()]
    layout = _layout(title, xtitle, ytitle, showlegend=False)
    return {"data": data, "layout": layout}


def network(
    nodes: Sequence[tuple[str, float, float, float]],
    edges: Sequence[tuple[int, int, float]],
    *,
    title: str,
    size_label: str,
) -> dict[str, Any]:
    """A node-link diagram: nodes (label, x, y, size value), edges (from, to, weight)."""
    ex: list[Any] = []
    ey: list[Any] = []
    for a, b, _ in edges:
        ex += [nodes[a][1], nodes[b][1], None]
        ey += [nodes[a][2], nodes[b][2], None]
    sizes = [n[3] for n in nodes]
    top = max(sizes) if sizes else 1.0
    data = [
        {"type": "scatter", "mode": "lines", "x": clean_list(ex, 3), "y": clean_list(ey, 3), "name": "dependency",
         "line": {"width": 1, "color": "#8c8c8c"}, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "markers+text", "name": "team", "x": clean_list([n[1] for n in nodes], 3),
         "y": clean_list([n[2] for n in nodes], 3), "text": [n[0] for n in nodes], "textposition": "top center",
         "marker": {"size": [8 + 22 * (s / top if top else 0) for s in sizes], "color": PALETTE[0]},
         "customdata": clean_list(sizes), "hovertemplate": "%{text}<br>" + size_label + ": %{customdata}<extra></extra>"},
    ]
    hidden = {"showgrid": False, "zeroline": False, "showticklabels": False, "title": {"text": ""}}
    return {"data": data, "layout": {"title": {"text": title}, "showlegend": False, "xaxis": hidden, "yaxis": hidden,
                                     "height": 560}}


DURATION_UNITS = (("seconds", 1.0), ("minutes", 60.0), ("hours", 3600.0), ("days", 86400.0))


def duration_unit(seconds: Sequence[Any]) -> tuple[str, float]:
    """The unit a set of durations (in seconds) reads best in: the largest of seconds, minutes,
    hours, days in which the median duration is at least 1 (so 0.6 s stays seconds, not 0.01 min)."""
    values = sorted(float(v) for v in seconds if v is not None and v == v)
    if not values:
        return DURATION_UNITS[0]
    typical = values[len(values) // 2]
    unit = DURATION_UNITS[0]
    for name, factor in DURATION_UNITS:
        if typical >= factor:
            unit = (name, factor)
    return unit
