"""`index.html`: the run's landing page (relative links, no network).

The run's summary first (`cnnatlas.run_summary`: the dataset, each checkpoint's
accuracy, the most faithful map of each layer linked into the atlas, the saliency
checks' verdicts, the run's warnings); then the atlas; then the layer summaries, the
checkpoint x layer grids, the training evolution strips, the CKA heat maps with their
summary and the paper figures as pictures, each captioned with what it shows; the
metrics of every map as a sortable table with its diagnosis; the other interactive
pages; and every file of the run in a collapsed list at the end. Every string from the
run is HTML-escaped.
"""

import html
import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from cnnatlas.io import atomic_path
from cnnatlas.maps import AXES, read_spec
from cnnatlas.run_summary import run_summary, summary_html

__all__ = ["write_index", "metrics_table"]

log = logging.getLogger(__name__)

_KINDS = {
    ".html": "interactive page",
    ".png": "figure (PNG)",
    ".pdf": "figure (PDF)",
    ".parquet": "table (Parquet)",
    ".npy": "array (NumPy)",
    ".csv": "table (CSV)",
    ".gif": "animation",
    ".pbtxt": "TensorBoard projector config: tensorboard --logdir on its folder",
}
_METRIC_COLUMNS = [
    "model", "ckpt", "layer", "method", "dim", "perplexity", "seed", "knn_features",
    "knn_map", "trustworthiness", "continuity", "neighbor_preservation",
    "seed_stability", "diagnosis",
]  # fmt: skip
_STYLE = """body{font-family:system-ui,sans-serif;margin:16px;max-width:1400px}
li{margin:2px 0} .kind{color:#666;font-size:smaller}
.atlas{display:inline-block;font-size:20px;padding:10px 18px;background:#234;color:#fff;
border-radius:4px;text-decoration:none;margin:6px 0}
figure{display:inline-block;margin:6px;vertical-align:top} figure img{max-width:640px;
border:1px solid #ddd} figcaption{font-size:smaller;color:#444}
table.metrics{border-collapse:collapse;font-size:12px} .metrics th{cursor:pointer;
background:#eee;position:sticky;top:0} .metrics td,.metrics th{padding:2px 6px;
border-bottom:1px solid #ddd;text-align:left} .metrics td.num{text-align:right}
table.summary{border-collapse:collapse;font-size:13px;margin:6px 0}
.summary td,.summary th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.summary td.num{text-align:right} .summary caption{text-align:left;font-weight:bold}
.summary td.unfaithful{background:#fde8d8} ul.warnings li{white-space:pre-line}
details{margin-top:16px} table.cka{display:inline-table;border-collapse:collapse;
margin:6px;font-size:11px} .cka td,.cka th{padding:2px 5px;text-align:center}
.cka td a{text-decoration:none} .cka caption{font-size:smaller;color:#444}"""
# Sorts the metrics table by a clicked column (numbers by value): reads the cells only.
_SORT = """document.querySelectorAll('table.metrics th').forEach(function (th, c) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir > 0 ? 'asc' : 'desc';
    function key(r) { var v = r.cells[c].dataset.v; return v === undefined ? r.cells[c].textContent : Number(v); }
    rows.sort(function (a, b) { var x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});"""


def _rel(f: Path, root: Path) -> str:
    return Path(os.path.relpath(f, root)).as_posix()


def _href(f: Path, root: Path) -> str:
    return html.escape(quote(_rel(f, root)), quote=True)


def _expand(files: Sequence[str | Path]) -> set[Path]:
    """Files as given; a folder (explanations, projector) stands for the files of the
    kinds above inside it."""
    out: set[Path] = set()
    for f in map(Path, files):
        if f.is_dir():
            out |= {p for p in f.rglob("*") if p.is_file() and p.suffix in _KINDS}
        else:
            out.add(f)
    return out


_MISSING = '<td class="num" data-v="-1">–</td>'


def _cell(v) -> str:
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return _MISSING
        return f'<td class="num" data-v="{v:.6g}">{v:.3f}</td>'
    if isinstance(v, int | np.integer):
        return f'<td class="num" data-v="{v}">{v}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def _metric_cell(row: Mapping[str, Any], column: str) -> str:
    if column in AXES and getattr(read_spec(row["method"], row), column) is None:
        return _MISSING
    return _cell(row[column])


def metrics_table(metrics: str | Path) -> str:
    """metrics.parquet as a sortable HTML table, one row per map, its diagnosis last;
    a sweep axis the map's method lacks (PCA's perplexity) shows as missing, not 0."""
    df = pd.read_parquet(metrics)
    cols = [c for c in _METRIC_COLUMNS if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = [
        "<tr>" + "".join(_metric_cell(r, c) for c in cols) + "</tr>"
        for r in df.to_dict("records")
    ]
    return (
        f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>'
        + "\n".join(rows)
        + "</tbody></table>"
    )


def _figures(
    title: str,
    pictures: Sequence[Path],
    root: Path,
    captions: Mapping[str, str],
    note: str = "",
) -> list:
    """Pictures under a heading, each captioned with what it shows (`captions`, by
    path; else its file name); with a `note` (pictures another target makes) no links,
    so that every link of the page leads to a file."""
    if not pictures:
        return []
    out = [f"<h2>{html.escape(title)}</h2>"]
    if note:
        out.append(f"<p>{html.escape(note)}</p>")
    for p in pictures:
        words = html.escape(captions.get(os.path.normpath(p), Path(p).stem))
        img = f'<img src="{_href(p, root)}" alt="{words}" loading="lazy">'
        if not note:
            img = f'<a href="{_href(p, root)}">{img}</a>'
        out.append(f"<figure>{img}<figcaption>{words}</figcaption></figure>")
    return out


def _similarity(
    summary: str | Path | None,
    pngs: Sequence[Path],
    root: Path,
    captions: Mapping[str, str],
) -> list:
    """The CKA heat maps under the summary's plain-words sentences, then the same
    matrices as tables whose cells open their two maps side by side (compare.html)."""
    pictures = [
        f
        for f in pngs
        if f.parent.name == "figures" and f.parent.parent.name == "similarity"
    ]
    if summary is None or not pictures:
        return []
    sentences = json.loads(Path(summary).read_text())["sentences"]
    out = _figures("Representation similarity (linear CKA)", pictures, root, captions)
    items = [f"<li>{html.escape(s)}</li>" for ss in sentences.values() for s in ss]
    if items:
        out[1:1] = ["<ul>", *items, "</ul>"]
    table = Path(summary).with_name("cka.parquet")
    if table.is_file():
        out += _cka_tables(pd.read_parquet(table), root)
    return out


# which atlas views a cell of each comparison compares: (row view, column view)
_VIEWS = {
    "layers": lambda r: (
        {"model": r.model, "ckpt": r.checkpoint, "layer": r.layer},
        {"model": r.model, "ckpt": r.checkpoint, "layer": r.other_layer},
    ),
    "checkpoints": lambda r: (
        {"model": r.model, "ckpt": r.checkpoint, "layer": r.layer},
        {"model": r.model, "ckpt": r.other_checkpoint, "layer": r.layer},
    ),
    "models": lambda r: (
        {"model": r.model, "ckpt": r.checkpoint, "layer": r.layer},
        {"model": r.other_model, "ckpt": r.other_checkpoint, "layer": r.other_layer},
    ),
}
_PANELS = {  # comparison -> (panel key, row key, column key)
    "layers": (["model", "checkpoint"], "layer", "other_layer"),
    "checkpoints": (["model", "layer"], "checkpoint", "other_checkpoint"),
    "models": (["model", "checkpoint", "other_model", "other_checkpoint"],
               "layer", "other_layer"),
}  # fmt: skip
MAX_TABLE = 24  # larger matrices are shown as pictures only


def _cka_tables(table: pd.DataFrame, root: Path) -> list:
    from matplotlib import colormaps

    from cnnatlas.viewer.compare import compare_href

    cmap, compare = colormaps["viridis"], "compare.html"
    out = [
        "<details open><summary>The matrices as tables: a cell opens its two maps "
        "side by side</summary>"
    ]
    for comparison, (keys, rows, cols) in _PANELS.items():
        t = table[(table["comparison"] == comparison) & (table["kernel"] == "linear")]
        for key, g in t.groupby(keys, sort=False):
            r_names, c_names = (
                list(dict.fromkeys(g[rows])),
                list(dict.fromkeys(g[cols])),
            )
            if max(len(r_names), len(c_names)) > MAX_TABLE:
                continue
            cells = {
                (getattr(r, rows), getattr(r, cols)): r
                for r in g.itertuples(index=False)
            }
            caption = " ".join(map(str, key)) + f" ({comparison})"
            parts = [f'<table class="cka"><caption>{html.escape(caption)}</caption>',
                     "<tr><th></th>" + "".join(f"<th>{html.escape(str(c))}</th>"
                                              for c in c_names) + "</tr>"]  # fmt: skip
            for rn in r_names:
                tds = []
                for cn in c_names:
                    r = cells[(rn, cn)]
                    rgb = cmap(float(np.clip(r.cka, 0, 1)))[:3]
                    colour = "#" + "".join(f"{round(255 * v):02x}" for v in rgb)
                    ink = "#000" if r.cka > 0.6 else "#fff"
                    a, b = _VIEWS[comparison](r)
                    href = html.escape(compare_href(compare, a, b))
                    tds.append(
                        f'<td style="background:{colour}"><a style="color:{ink}" '
                        f'href="{href}">{r.cka:.2f}</a></td>'
                    )
                parts.append(f"<tr><th>{html.escape(str(rn))}</th>{''.join(tds)}</tr>")
            parts.append("</table>")
            out.append("".join(parts))
    out.append("</details>")
    return out if len(out) > 2 else []


def _file_list(files: set[Path], root: Path) -> list:
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(files):
        rel = f.parent.relative_to(root) if f.is_relative_to(root) else f.parent
        groups["run" if str(rel) == "." else str(rel)].append(f)
    out = [f"<details><summary>All {len(files)} files of the run</summary>"]
    for section in sorted(groups, key=lambda s: (s != "run", s)):
        out.append(f"<h3>{html.escape(section)}</h3><ul>")
        for f in groups[section]:
            kind = _KINDS.get(f.suffix, f.suffix.lstrip("."))
            out.append(
                f'<li><a href="{_href(f, root)}">{html.escape(f.name)}</a>'
                f' <span class="kind">{html.escape(kind)}</span></li>'
            )
        out.append("</ul>")
    out.append("</details>")
    return out


def write_index(
    out: str | Path,
    files: Sequence[str | Path],
    title: str = "cnnatlas run",
    atlas: str | Path | None = None,
    metrics: str | Path | None = None,
    paper: Sequence[str | Path] = (),
    similarity: str | Path | None = None,
    summary: Mapping | None = None,
    captions: Mapping[str, str] | None = None,
) -> None:
    """Write the landing page `out` of the run whose outputs are `files`.

    `summary`: `run_summary`'s arguments but `metrics` (manifest, predictions, saliency
    checks, logs, layers, bad_images); with `metrics`, the page opens with the run's
    summary. `captions`: what each picture shows, by path (else its file name).
    Pictures: `files`' layer_summary.png, figures/grid-*.png and evolution strip.png;
    `paper`: the configured paper PNGs (made by `snakemake paper`, so perhaps absent).
    `similarity`: the similarity stage's summary.json; its sentences head the section
    of its heat maps (the PNGs of `files` in similarity/figures).
    A folder among `files` is listed by the figures, pages and tables inside it.
    """
    out, root = Path(out), Path(out).parent
    captions = {os.path.normpath(k): v for k, v in (captions or {}).items()}
    every = _expand(files)
    pngs = sorted(f for f in every if f.suffix == ".png")
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if summary is not None and metrics is not None:
        page = None if atlas is None else quote(_rel(Path(atlas), root))
        parts += summary_html(run_summary(metrics=metrics, **summary), page)
    if atlas is not None:
        parts += [
            f'<p><a class="atlas" href="{_href(Path(atlas), root)}">Open the atlas</a></p>',
            "<p>Every 2-D map of the run in one page: pick a map, hover an image, lasso "
            "a cluster to see its images, search a path or class, click a point to see "
            "its nearest neighbours in feature space.</p>",
        ]
    layer_pngs = [f for f in pngs if f.name == "layer_summary.png"]
    grids = [
        f for f in pngs if f.name.startswith("grid-") and f.parent.name == "figures"
    ]
    parts += _figures("Layers", layer_pngs, root, captions)
    parts += _figures("Checkpoints x layers", grids, root, captions)
    strips = [f for f in pngs if f.name == "strip.png"]
    parts += _figures("Training evolution", strips, root, captions)
    parts += _similarity(similarity, pngs, root, captions)
    parts += _figures(
        "Paper figures",
        [Path(p) for p in paper],
        root,
        captions,
        "made by `snakemake paper` (not by the default target): a missing picture "
        "means it has not been run",
    )
    if metrics is not None:
        parts += [
            "<h2>Map metrics</h2><p>One row per map; click a column to sort.</p>",
            metrics_table(metrics),
        ]
    pages = sorted(f for f in every if f.suffix == ".html" and f != Path(atlas or ""))
    if pages:
        parts.append("<h2>Other interactive pages</h2><ul>")
        parts += [
            f'<li><a href="{_href(f, root)}">{html.escape(os.path.relpath(f, root))}</a></li>'
            for f in pages
        ]
        parts.append("</ul>")
    parts += _file_list(every, root)
    parts.append(f"<script>{_SORT}</script></body></html>\n")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    log.info("index of %d files: %s", len(every), out)
