/* Catalog insights: draws the figures and tables embedded in each page as JSON.
 * No network access: plotly.js is loaded from ../assets, data from <script type="application/json">.
 */
(function () {
  "use strict";

  var COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];
  var BASE_LAYOUT = {
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 13, color: "#1f2328" },
    colorway: COLOURS,
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    margin: { l: 70, r: 30, t: 60, b: 70 },
    hoverlabel: { bgcolor: "#ffffff" },
    xaxis: { automargin: true, gridcolor: "#e5e7eb", zerolinecolor: "#d0d7de" },
    yaxis: { automargin: true, gridcolor: "#e5e7eb", zerolinecolor: "#d0d7de" }
  };
  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function merge(base, extra) {
    var out = {};
    var k;
    for (k in base) { if (Object.prototype.hasOwnProperty.call(base, k)) { out[k] = base[k]; } }
    for (k in extra) {
      if (!Object.prototype.hasOwnProperty.call(extra, k)) { continue; }
      var a = out[k], b = extra[k];
      if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
        out[k] = merge(a, b);
      } else {
        out[k] = b;
      }
    }
    return out;
  }

  function data(el) {
    var source = document.getElementById(el.getAttribute("data-src"));
    return source ? JSON.parse(source.textContent) : null;
  }

  // ------------------------------------------------------------------- narrow screens (phones)
  // Below NARROW px a plot gets small margins, its legend under it, wrapped titles and category
  // labels cut to LABEL_CHARS (the hover still shows the whole label).
  var NARROW = 640, LABEL_CHARS = 16;

  function wrap(text, chars) {
    var words = String(text).split(" "), lines = [], line = "";
    words.forEach(function (w) {
      if (line && (line + " " + w).length > chars) { lines.push(line); line = w; } else { line = line ? line + " " + w : w; }
    });
    if (line) { lines.push(line); }
    return lines;
  }

  function cut(label, chars) {
    label = String(label);
    return label.length > chars ? label.slice(0, chars - 1) + "\u2026" : label;
  }

  function cutAxis(axis, values, chars) {
    if (!axis) { return axis; }
    var out = merge(axis, {});
    if (axis.ticktext) {
      out.ticktext = axis.ticktext.map(function (t) { return cut(t, chars); });
    } else if (values && values.length && typeof values[0] === "string" && values.some(function (v) { return v.length > chars; })) {
      var seen = {}, vals = [];
      values.forEach(function (v) { if (!seen[v]) { seen[v] = 1; vals.push(v); } });
      out.tickmode = "array";
      out.tickvals = vals;
      out.ticktext = vals.map(function (v) { return cut(v, chars); });
    }
    return out;
  }

  function fitTitle(layout, width) {
    var title = layout.title && layout.title.text;
    if (!title || title.indexOf("<br>") !== -1) { return layout; }
    var size = width < NARROW ? 14 : 17;
    var lines = wrap(title, Math.max(18, Math.floor((width - 20) / (size * 0.56))));
    var extra = { title: { text: lines.join("<br>"), font: { size: size }, x: 0.02, xanchor: "left" } };
    var top = 24 + lines.length * (size + 6);
    extra.margin = merge(layout.margin || {}, { t: Math.max(top, (layout.margin || {}).t || 0) });
    extra.height = (layout.height || 450) + (lines.length - 1) * (size + 6);
    return merge(layout, extra);
  }

  function narrow(layout, traces) {
    var ys = [], xs = [], heat = false;
    traces.forEach(function (t) {
      if (t.type === "heatmap") { heat = true; ys = ys.concat(t.y || []); xs = xs.concat(t.x || []); }
      if (t.type === "bar" && t.orientation === "h") { ys = ys.concat(t.y || []); }
    });
    // The legend goes to the bottom of the figure (container coordinates), one item per line, in
    // a bottom margin grown to hold it: under the x axis title, never over it.
    var items = layout.showlegend === false ? 0 : traces.filter(function (t) { return t.name && t.showlegend !== false && t.type !== "heatmap"; }).length;
    if (items < 2 && layout.showlegend !== true) { items = 0; }
    var legendPx = items ? 10 + 19 * items : 0;
    var out = merge(layout, {
      margin: { l: 8, r: 8, b: 50 + legendPx },
      legend: { orientation: "v", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom", font: { size: 11 } },
      font: { size: 11 },
      height: (layout.height || 450) + legendPx
    });
    out.xaxis = merge(out.xaxis || {}, { title: merge((out.xaxis || {}).title || {}, { font: { size: 11 } }) });
    out.yaxis = merge(out.yaxis || {}, { title: merge((out.yaxis || {}).title || {}, { font: { size: 11 } }) });
    out.yaxis = cutAxis(out.yaxis, ys, LABEL_CHARS);
    if (heat) {
      out.xaxis = cutAxis(out.xaxis, xs, 10);
      out.margin = merge(out.margin, { b: out.margin.b + 60 });  // the colour bar, under the x axis title
      out.height = out.height + 60;
    }
    return out;
  }

  function narrowTraces(traces, width) {
    return traces.map(function (t) {
      if (t.type !== "heatmap") { return t; }
      // Cells too narrow for their number show only their colour; hovering shows the value (or why
      // it is suppressed), and the legend-like colour bar goes under the plot.
      var columns = (t.x || []).length || 1;
      var cell = (width - 120) / columns;
      var extra = { textfont: { size: 9 }, colorbar: merge(t.colorbar || {}, { orientation: "h", thickness: 10, x: 0, xanchor: "left", yref: "container", y: 0.01, yanchor: "bottom", len: 1, title: { side: "bottom", font: { size: 11 } } }) };
      // A cell too narrow for its text (a number; the word "suppressed") keeps its colour only.
      if (cell < (t.name === "suppressed" ? 64 : 34)) { extra.texttemplate = ""; }
      return merge(t, extra);
    });
  }

  function drawFigures() {
    var plots = document.querySelectorAll("figure.plot[data-src]");
    for (var i = 0; i < plots.length; i++) {
      var el = plots[i];
      var fig = data(el);
      if (!fig) { continue; }
      var shared = fig.layoutRef && window.SITE_LAYOUTS ? window.SITE_LAYOUTS[fig.layoutRef] : null;
      var layout = merge(merge(BASE_LAYOUT, shared || {}), fig.layout || {});
      var width = el.clientWidth || window.innerWidth;
      var traces = fig.data || [];
      if (layout.meta && layout.meta.traces) {  // trace styles of a shared layout (html.py `Doc.figure`)
        traces = traces.map(function (t, j) { return merge(layout.meta.traces[j] || {}, t); });
        fig = merge(fig, { data: traces });
      }
      if (layout.meta && layout.meta.names) {  // legend names of a shared layout
        traces = traces.map(function (t, j) { return layout.meta.names[j] ? merge(t, { name: layout.meta.names[j] }) : t; });
        fig = merge(fig, { data: traces });
      }
      if (width < NARROW) {
        layout = narrow(layout, traces);
        traces = narrowTraces(traces, width);
        fig = merge(fig, { data: traces });
      }
      layout = fitTitle(layout, width);
      // The element, not only the SVG, must be as tall as the figure, or it overlaps what follows.
      el.style.height = (layout.height || 450) + "px";
      window.Plotly.newPlot(el, fig.data || [], layout, CONFIG);
      el.setAttribute("data-rendered", "1");
    }
  }

  // ------------------------------------------------------------------------------- tables

  function text(value, type) {
    if (value === null || value === undefined) { return ""; }
    if (Array.isArray(value)) { return value.map(function (v) { return text(v, type); }).join(", "); }
    if (typeof value === "object") {
      if (value.sup) { return "suppressed"; }
      if (value.t !== undefined) { return typeof value.t === "number" ? text(value.t, type) : String(value.t); }
    }
    if (type === "pct" && typeof value === "number") { return (value * 100).toFixed(1) + "%"; }
    if ((type === "int" || type === "num") && typeof value === "number") {
      return value.toLocaleString("en", { maximumFractionDigits: type === "int" ? 0 : 2 });
    }
    return String(value);
  }

  function sortKey(value, type) {
    if (value === null || value === undefined) { return null; }
    if (Array.isArray(value)) { return value.length ? sortKey(value[0], type) : null; }
    if (typeof value === "object") {
      if (value.sup || value.t === undefined || value.t === null) { return null; }
      return typeof value.t === "number" ? value.t : String(value.t).toLowerCase();
    }
    if (type === "int" || type === "num" || type === "pct") { return typeof value === "number" ? value : null; }
    return String(value).toLowerCase();
  }

  function cell(value, type) {
    var td = document.createElement("td");
    if (type === "int" || type === "num" || type === "pct") { td.className = "num"; }
    if (value === null || value === undefined) {
      td.textContent = "–";
      td.classList.add("muted");
    } else if (Array.isArray(value)) {  // several values (links) in one cell
      value.forEach(function (v, i) {
        if (i) { td.appendChild(document.createTextNode(", ")); }
        var one = cell(v, type);
        while (one.firstChild) { td.appendChild(one.firstChild); }
      });
    } else if (typeof value === "object" && value.sup) {
      var span = document.createElement("span");
      span.className = "suppressed";
      span.title = "suppressed: too few people to show this figure without identifying someone";
      span.textContent = "suppressed";
      td.appendChild(span);
    } else if (typeof value === "object" && value.h !== undefined) {
      var a = document.createElement("a");
      a.href = value.h;
      a.textContent = text(value, type);
      td.appendChild(a);
    } else {
      td.textContent = text(value, type);
    }
    return td;
  }

  function buildTable(el) {
    var spec = data(el);
    if (!spec) { return; }
    var shared = window.SITE_LAYOUTS || {};
    // Team pages: the caption, columns and page size are shared (assets/layouts.js), and so are
    // the texts of some columns (`sv`: indices into SITE_LAYOUTS.V); html.py `Doc.table`.
    if (spec.schema) { spec = merge(shared[spec.schema] || {}, spec); }
    (spec.sv || []).forEach(function (j) {
      spec.rows.forEach(function (r) { if (r[j] !== null && r[j] !== undefined) { r[j] = shared.V[r[j]]; } });
    });
    var columns = spec.columns, rows = spec.rows.slice(), pageSize = spec.pageSize || 25;
    // Columns sent as indices into their distinct values (html.py `_dictionary_encode`).
    Object.keys(spec.dict || {}).forEach(function (j) {
      var values = spec.dict[j];
      rows.forEach(function (r) { if (r[j] !== null && r[j] !== undefined) { r[j] = values[r[j]]; } });
    });
    var state = { sort: -1, dir: 1, filter: "", limit: pageSize };
    var searchable = rows.map(function (r) {
      return r.map(function (v, i) { return text(v, columns[i][1]); }).join(" \u0001 ").toLowerCase();
    });
    var order = rows.map(function (_, i) { return i; });

    var bar = document.createElement("div");
    bar.className = "table-bar";
    var caption = document.createElement("span");
    caption.className = "caption";
    caption.textContent = spec.caption;
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter…";
    input.setAttribute("aria-label", "Filter " + spec.caption);
    var count = document.createElement("span");
    count.className = "count";
    bar.appendChild(caption);
    bar.appendChild(input);
    bar.appendChild(count);
    // More rows exist than the page embeds: say so, and link the full list when it was exported.
    var hidden = spec.total - rows.length;
    if (hidden > 0) {
      var notice = document.createElement("span");
      notice.className = "truncated";
      notice.textContent = "Showing " + rows.length.toLocaleString("en") + " of " + spec.total.toLocaleString("en") +
        " rows" + (spec.csv ? "; search and sort cover these " + rows.length.toLocaleString("en") + ". " : ". ");
      if (spec.csv) {
        var full = document.createElement("a");
        full.className = "export";
        full.href = spec.csv;
        full.setAttribute("download", "");
        full.textContent = "All " + spec.total.toLocaleString("en") + " rows (CSV, gzip)";
        notice.appendChild(full);
      } else {
        notice.appendChild(document.createTextNode(spec.more || ("The other " + hidden.toLocaleString("en") + " are not listed here.")));
      }
      bar.appendChild(notice);
    }

    var table = document.createElement("table");
    var thead = document.createElement("thead");
    var head = document.createElement("tr");
    var headers = columns.map(function (col, i) {
      var th = document.createElement("th");
      th.scope = "col";
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = col[0];
      button.addEventListener("click", function () {
        state.dir = state.sort === i ? -state.dir : (col[1] === "text" || col[1] === "link" ? 1 : -1);
        state.sort = i;
        render();
      });
      if (col[1] === "int" || col[1] === "num" || col[1] === "pct") { th.className = "num"; }
      th.appendChild(button);
      head.appendChild(th);
      return th;
    });
    thead.appendChild(head);
    var tbody = document.createElement("tbody");
    table.appendChild(thead);
    table.appendChild(tbody);
    var more = document.createElement("button");
    more.type = "button";
    more.className = "more";
    more.addEventListener("click", function () { state.limit += pageSize * 4; render(); });

    function render() {
      var f = state.filter;
      var shown = order.filter(function (i) { return !f || searchable[i].indexOf(f) !== -1; });
      if (state.sort >= 0) {
        var c = state.sort, t = columns[c][1], dir = state.dir;
        shown.sort(function (a, b) {
          var x = sortKey(rows[a][c], t), y = sortKey(rows[b][c], t);
          if (x === y) { return a - b; }
          if (x === null) { return 1; }
          if (y === null) { return -1; }
          return (x < y ? -1 : 1) * dir;
        });
      }
      headers.forEach(function (th, i) {
        th.setAttribute("aria-sort", i === state.sort ? (state.dir > 0 ? "ascending" : "descending") : "none");
      });
      tbody.textContent = "";
      var frag = document.createDocumentFragment();
      shown.slice(0, state.limit).forEach(function (i) {
        var tr = document.createElement("tr");
        rows[i].forEach(function (v, j) { tr.appendChild(cell(v, columns[j][1])); });
        frag.appendChild(tr);
      });
      tbody.appendChild(frag);
      count.textContent = Math.min(shown.length, state.limit).toLocaleString("en") + " of " + shown.length.toLocaleString("en") +
        (f ? " matching" : " rows");
      more.hidden = shown.length <= state.limit;
      more.textContent = "Show more (" + (shown.length - state.limit).toLocaleString("en") + " hidden)";
    }

    function setFilter(value) {
      state.filter = value.trim().toLowerCase();
      state.limit = pageSize;
      render();
    }
    input.addEventListener("input", function () { setFilter(input.value); });
    el.filterTo = function (value) { input.value = value; setFilter(value); };
    el.textContent = "";
    el.appendChild(bar);
    var scroll = document.createElement("div");
    scroll.className = "table-scroll";
    scroll.appendChild(table);
    el.appendChild(scroll);
    el.appendChild(more);
    render();
    el.setAttribute("data-rendered", "1");
  }

  // The whole menu on the pages that carry a short one (team pages): window.SITE_NAV, which the
  // build writes at the top of this file; links are relative to the site root (the brand's link).
  function fillNav() {
    var nav = document.querySelector("nav[data-nav]");
    var brand = document.querySelector("header a.brand");
    if (!nav || !brand || !window.SITE_NAV) { return; }
    var root = brand.getAttribute("href").replace(/index\.html$/, "");
    nav.textContent = "";
    window.SITE_NAV.forEach(function (item) {
      var a = document.createElement("a");
      a.href = root + item[1];
      a.textContent = item[0];
      nav.appendChild(a);
    });
  }

  // Drill-down links: `page.html#anchor?q=text` scrolls to the table `anchor` and filters it.
  function followHash() {
    var hash = decodeURIComponent(window.location.hash.slice(1));
    if (!hash) { return; }
    var at = hash.indexOf("?q=");
    var target = document.getElementById(at < 0 ? hash : hash.slice(0, at));
    if (!target) { return; }
    if (at >= 0 && target.filterTo) { target.filterTo(hash.slice(at + 3)); }
    target.scrollIntoView();
  }

  // ------------------------------------------------------------------------ packed pages
  // A team page's body is stored packed (html.py `PagePacker`): deflated against the dictionary
  // every team page shares (window.SITE_PACK, in assets/layouts.js), base64 in
  // <script id="packed">. The gzip stream is rebuilt here: a header, the dictionary as stored
  // blocks, the page's bytes (its deflate data and the gzip trailer); DecompressionStream inflates
  // it (file:// included) and the dictionary's bytes are dropped from the front.
  function unpack(source) {
    var shared = new TextEncoder().encode(window.SITE_PACK || "");
    var parts = [new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])];
    for (var at = 0; at < shared.length; at += 65535) {
      var n = Math.min(65535, shared.length - at);
      parts.push(new Uint8Array([0, n & 255, n >> 8, ~n & 255, (~n >> 8) & 255]), shared.subarray(at, at + n));
    }
    var binary = atob(source.textContent.trim());
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    parts.push(bytes);
    var stream = new Blob(parts).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).arrayBuffer().then(function (buffer) {
      var html = new TextDecoder().decode(new Uint8Array(buffer, shared.length));
      source.insertAdjacentHTML("beforebegin", html);
      source.parentNode.removeChild(source);
    });
  }

  function draw() {
    var tables = document.querySelectorAll("div.table[data-src]");
    for (var i = 0; i < tables.length; i++) { buildTable(tables[i]); }
    if (window.Plotly) {
      drawFigures();
    } else if (document.querySelector("figure.plot")) {
      console.warn("plotly.js did not load: figures are not drawn");
    }
    // After the figures: drawing them sets their heights, which moves everything below.
    followHash();
    window.addEventListener("hashchange", followHash);
    document.body.setAttribute("data-ready", "1");
  }

  function start() {
    fillNav();
    var source = document.getElementById("packed");
    if (!source) { draw(); return; }
    // A packed page's tables and figures exist once it is inflated: build and draw them after.
    Promise.resolve().then(function () {
      if (typeof DecompressionStream === "undefined") {
        throw new Error("this browser cannot inflate it (no DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later)");
      }
      return unpack(source);
    }).then(draw, function (error) {
      console.error("packed page: " + error);
      var note = document.createElement("p");
      note.className = "note";
      note.setAttribute("role", "alert");
      note.textContent = "This page could not be shown: " + error.message;
      source.parentNode.insertBefore(note, source);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
