"""Self-contained interactive maps: one HTML file per embedding, opened from disk.

The page inlines plotly.js (no network, no server) and one JSON payload; a small script
draws the map (scattergl in 2-D, scatter3d in 3-D), shows the hovered image's thumbnail
beside it (cut from the run's shared thumbnail sheets, referenced by relative path) and
offers a control to colour by label, prediction, correctness, confidence or a metadata
column. Classes keep the colours and markers of the static figures (`plots.class_styles`).

Every string from the data (paths, class names, metadata) is treated as text: the payload
is JSON inside a non-executed script element with `<`, `>` and `&` escaped, the side panel
is filled with `textContent`, and the hover and legend strings plotly renders (which
interpret HTML-like tags) are entity-escaped first.
"""

import html
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.offline

from cnnatlas.io import atomic_path
from cnnatlas.plots import (
    CONTINUOUS_CMAP,
    CORRECT_COLOURS,
    category_styles,
    check_colour_by,
    class_styles,
    is_continuous,
    metadata_columns,
)
from cnnatlas.viewer.atlas import script_json

__all__ = [
    "DIV_ID",
    "PLOTLY_SYMBOLS",
    "colour_modes",
    "map_payload",
    "render_html",
    "write_interactive",
]

log = logging.getLogger(__name__)

DIV_ID = "cnnatlas-map"
# plotly's names for plots.MARKERS, so that a class looks the same in the HTML.
PLOTLY_SYMBOLS = {
    "o": "circle",
    "s": "square",
    "^": "triangle-up",
    "D": "diamond",
    "v": "triangle-down",
    "P": "cross",
    "X": "x",
}
# scatter3d draws fewer symbols; the open ones stand in for the triangles.
_SYMBOLS_3D = {
    "o": "circle",
    "s": "square",
    "^": "circle-open",
    "D": "diamond",
    "v": "square-open",
    "P": "cross",
    "X": "x",
}


def _category_mode(
    names: Sequence[str], codes: np.ndarray, dim: int, markers=True
) -> dict:
    styles = class_styles(names)
    symbols = _SYMBOLS_3D if dim == 3 else PLOTLY_SYMBOLS
    return {
        "kind": "category",
        "names": [s.name for s in styles],
        "colours": [s.colour for s in styles],
        "symbols": [symbols[s.marker] if markers else "circle" for s in styles],
        "codes": codes.astype(int).tolist(),
    }


def colour_modes(
    df: pd.DataFrame,
    classes: Sequence[str],
    dim: int,
    metadata: Sequence[str] | None = None,
) -> dict[str, dict]:
    """Every colouring the page offers: name -> category (names, colours, codes) or number (values)."""
    modes = {
        "label": _category_mode(classes, df["label"].to_numpy(), dim),
        "pred": _category_mode(classes, df["pred"].to_numpy(), dim),
        "correct": {
            "kind": "category",
            "names": list(CORRECT_COLOURS),
            "colours": list(CORRECT_COLOURS.values()),
            "symbols": ["circle", "circle"],
            "codes": (~df["correct"].to_numpy(dtype=bool)).astype(int).tolist(),
        },
        "confidence": _number_mode(df["confidence"]),
    }
    for col in metadata_columns(df) if metadata is None else metadata:
        values = df[col]
        if values.map(_is_container).any():
            log.warning("metadata column %r holds non-scalar values: not offered", col)
            continue
        if is_continuous(values):
            modes[col] = _number_mode(values)
        else:
            names = [s.name for s in category_styles(values.astype(str))]
            lookup = {n: i for i, n in enumerate(names)}
            codes = np.array([lookup[v] for v in values.astype(str)])
            modes[col] = _category_mode(names, codes, dim, markers=False)
    return modes


def _is_container(v) -> bool:
    return isinstance(v, list | tuple | dict | set | np.ndarray)


def _number_mode(values: pd.Series) -> dict:
    return {"kind": "number", "values": [_num(v) for v in values.to_numpy(dtype=float)]}


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(f"{v:.6g}")


def _info(row, classes: Sequence[str]) -> str:
    """The plain-text description of one point (hover and side panel)."""
    topk = ", ".join(
        f"{name} {p:.3f}"
        for name, p in zip(row.topk_names, row.topk_probs, strict=False)
    )
    mark = "" if row.correct else "  (misclassified)"
    # title and id (`tench (n01440764)`) where load_points gave them
    true = getattr(row, "label_hover", classes[row.label])
    pred = getattr(row, "pred_hover", row.pred_name)
    return (
        f"{row.path}\ntrue: {true}\npred: {pred}{mark}\n"
        f"confidence: {row.confidence:.3f}\ntop-k: {topk}"
    )


def map_payload(
    df: pd.DataFrame,
    classes: Sequence[str],
    title: str,
    thumbs: dict,
    default_mode: str = "label",
    metadata: Sequence[str] | None = None,
) -> dict:
    """The JSON the page draws: coordinates, per-point text, colour modes and thumbnail layout.

    `thumbs`: {"prefix": relative URL of the sheets folder ending in '/', "size", "columns",
    "per_sheet", "sheets", "zoom"}.
    """
    check_colour_by([default_mode], df)
    dim = 3 if "z" in df.columns else 2
    return {
        "title": title,
        "dim": dim,
        "coords": [[_num(v) for v in df[c].to_numpy(dtype=float)] for c in "xyz"[:dim]],
        "image_id": df["image_id"].astype(int).tolist(),
        "correct": df["correct"].astype(bool).tolist(),
        "info": [_info(r, classes) for r in df.itertuples(index=False)],
        "modes": colour_modes(df, classes, dim, metadata),
        "default_mode": default_mode,
        "colorscale": CONTINUOUS_CMAP.capitalize(),
        "thumbs": thumbs,
        "div": DIV_ID,
    }


def render_html(payload: dict) -> str:
    """The complete page: inline plotly.js, the payload and the drawing script."""
    return _PAGE.format(
        title=html.escape(payload["title"]),
        div=DIV_ID,
        plotlyjs=plotly.offline.get_plotlyjs(),
        payload=script_json(payload),
        app=_APP,
    )


def write_interactive(
    df: pd.DataFrame,
    classes: Sequence[str],
    out: str | Path,
    title: str,
    thumbs: dict,
    default_mode: str = "label",
    metadata: Sequence[str] | None = None,
) -> int:
    """Write the interactive map of the points table `df` to `out`; returns its size in bytes."""
    page = render_html(map_payload(df, classes, title, thumbs, default_mode, metadata))
    data = page.encode("utf-8")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info("%s: %d points, %.1f MB", out, len(df), len(data) / 1e6)
    return len(data)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 8px; }}
#cnnatlas-controls {{ margin-bottom: 6px; }}
#cnnatlas-wrap {{ display: flex; align-items: flex-start; gap: 12px; }}
#{div} {{ width: 900px; height: 700px; flex: none; }}
#cnnatlas-side {{ width: 300px; }}
#cnnatlas-thumb {{ border: 1px solid #999; image-rendering: pixelated;
  background-repeat: no-repeat; background-color: #fff; overflow: hidden;
  font-size: 11px; color: #900; }}
#cnnatlas-info {{ white-space: pre-wrap; word-break: break-all; font-size: 12px; }}
</style>
</head>
<body>
<div id="cnnatlas-controls"><label for="cnnatlas-colour">colour by </label>
<select id="cnnatlas-colour"></select>
<span id="cnnatlas-title"></span></div>
<div id="cnnatlas-wrap"><div id="{div}"></div>
<div id="cnnatlas-side"><div id="cnnatlas-thumb"></div><pre id="cnnatlas-info">hover a point</pre></div></div>
<script>{plotlyjs}</script>
<script type="application/json" id="cnnatlas-data">{payload}</script>
<script>{app}</script>
</body>
</html>
"""

_APP = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("cnnatlas-data").textContent);
  var div = document.getElementById(D.div);
  var select = document.getElementById("cnnatlas-colour");
  var thumb = document.getElementById("cnnatlas-thumb");
  var info = document.getElementById("cnnatlas-info");
  var T = D.thumbs, px = T.size * T.zoom;
  document.getElementById("cnnatlas-title").textContent = D.title;
  thumb.style.width = px + "px";
  thumb.style.height = px + "px";
  // plotly renders hover and legend strings as pseudo-HTML: entities keep them text.
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  var hover = D.info.map(function (s) { return esc(s).replace(/\n/g, "<br>"); });
  Object.keys(D.modes).forEach(function (name) {
    var opt = document.createElement("option");
    opt.value = name;
    opt.textContent = name;
    select.appendChild(opt);
  });
  select.value = D.default_mode;
  var N = D.image_id.length;
  // Min and max by a loop: Math.min.apply(null, values) overflows the call stack
  // above ~120,000 values, and the colours would silently stay as they were.
  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (typeof v !== "number") continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return lo <= hi ? [lo, hi] : [0, 1];
  }
  function pick(idx) {
    var t = {
      x: idx.map(function (i) { return D.coords[0][i]; }),
      y: idx.map(function (i) { return D.coords[1][i]; }),
      customdata: idx, text: idx.map(function (i) { return hover[i]; }),
      hoverinfo: "text", mode: "markers", type: D.dim === 3 ? "scatter3d" : "scattergl"
    };
    if (D.dim === 3) t.z = idx.map(function (i) { return D.coords[2][i]; });
    return t;
  }
  function edge(t, wrong) {
    if (wrong) t.marker.line = { color: "#000000", width: D.dim === 3 ? 2 : 1.5 };
    else t.marker.line = { width: 0 };
    if (wrong) t.marker.size = t.marker.size + 2;
  }
  function traces(mode) {
    var M = D.modes[mode], out = [];
    var size = D.dim === 3 ? 3 : Math.max(4, Math.min(10, 120 / Math.sqrt(N)));
    if (M.kind === "number") {
      var range = extent(M.values);
      [false, true].forEach(function (wrong) {
        var idx = [];
        for (var i = 0; i < N; i++) if (D.correct[i] === !wrong) idx.push(i);
        if (!idx.length) return;
        var t = pick(idx);
        t.name = wrong ? "misclassified" : "correct";
        t.marker = { size: size, color: idx.map(function (i) { return M.values[i]; }),
          colorscale: D.colorscale, cmin: range[0], cmax: range[1], showscale: !wrong || out.length === 0,
          colorbar: { title: { text: esc(mode) } } };
        edge(t, wrong);
        out.push(t);
      });
      return out;
    }
    M.names.forEach(function (name, k) {
      var first = true;
      [false, true].forEach(function (wrong) {
        var idx = [];
        for (var i = 0; i < N; i++) if (M.codes[i] === k && D.correct[i] === !wrong) idx.push(i);
        if (!idx.length) return;
        var t = pick(idx);
        t.name = esc(name);
        t.legendgroup = "g" + k;
        t.showlegend = first;
        first = false;
        t.marker = { size: size, color: M.colours[k], symbol: M.symbols[k] };
        edge(t, wrong);
        out.push(t);
      });
    });
    return out;
  }
  // No control that sends the chart off the machine (plotly's "share to cloud").
  var CONFIG = { displaylogo: false, responsive: true, showSendToCloud: false,
    modeBarButtonsToRemove: ["sendChartToCloud", "sendDataToCloud"] };
  var axis = { showticklabels: false, ticks: "", showgrid: false, zeroline: false, title: { text: "" } };
  var layout = {
    margin: { l: 10, r: 10, t: 30, b: 10 }, hovermode: "closest", uirevision: "keep",
    legend: { itemclick: "toggleothers", itemdoubleclick: "toggle", title: { text: "" } },
    xaxis: axis, yaxis: Object.assign({ scaleanchor: "x" }, axis),
    scene: { xaxis: axis, yaxis: axis, zaxis: axis }
  };
  function draw() {
    layout.legend.title.text = esc(select.value);
    return Plotly.react(div, traces(select.value), layout, CONFIG);
  }
  // Each sheet is probed once; one that cannot be loaded is named in place of the image.
  var sheetOk = {};
  function probe(url) {
    if (!sheetOk[url]) sheetOk[url] = new Promise(function (resolve) {
      var im = new Image();
      im.onload = function () { resolve(true); };
      im.onerror = function () { resolve(false); };
      im.src = encodeURI(url);
    });
    return sheetOk[url];
  }
  function show(i) {
    var id = D.image_id[i], sheet = Math.floor(id / T.per_sheet), cell = id % T.per_sheet;
    var col = cell % T.columns, row = Math.floor(cell / T.columns), url = T.prefix + T.sheets[sheet];
    thumb.dataset.imageId = String(id);
    info.textContent = D.info[i];
    probe(url).then(function (ok) {
      if (thumb.dataset.imageId !== String(id)) return;
      thumb.textContent = ok ? "" : "thumbnail sheet " + url + " could not be loaded: keep the results folder's thumbnails/ beside this page";
      thumb.style.backgroundImage = ok ? 'url("' + encodeURI(url) + '")' : "none";
      thumb.style.backgroundSize = (T.columns * px) + "px auto";
      thumb.style.backgroundPosition = (-col * px) + "px " + (-row * px) + "px";
      thumb.dataset.loaded = ok ? "1" : "0";
    });
  }
  select.addEventListener("change", draw);
  draw().then(function () {
    div.on("plotly_hover", function (ev) { show(ev.points[0].customdata); });
    document.body.dataset.readyAt = String(performance.now());
    document.body.dataset.ready = "1";
  });
})();
"""
