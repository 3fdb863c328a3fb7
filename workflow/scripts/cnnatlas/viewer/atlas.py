"""`atlas.html`: every 2-D map of a run in one self-contained WebGL page.

The page is the template beside this module, the vendored JS bundle (regl-scatterplot and
the page's own code, built by `js/build.sh`) and one JSON header. Arrays travel as
*blocks*: the bytes of a little-endian typed array (or of a JSON list, for strings),
zlib-deflated and base64-encoded; the browser inflates them with its own
DecompressionStream, so the page needs neither a server nor the network. A block may
hold its bytes shuffled (every value's first byte, then every second byte, ...: deflate
packs the slowly varying high bytes far better), and values the page shows to three
digits travel as half floats (kind h2, scaled by a power of two); `read_block` reads any
block back. Map coordinates travel as float32 less their lowest byte (kind f3: five
significant digits, a quarter fewer bytes). Data strings (paths, class names, metadata)
only ever sit inside JSON, with `<`, `>` and `&` escaped, and the page puts them into the
DOM as text.

Tables read one row at a time (paths, top-k, feature-space neighbours) travel in *parts*
of `PART_ROWS` rows, so that the page reads only the part holding the row it shows. A
page whose blocks total more than `inline_mb` keeps every block of more than
`INLINE_MAX` characters in its sidecar folder, `<page>_files/<block>.js`, a script that
hands the block to the page (`cnnatlasBlock(b, "...")`): a `<script src>` loads from
`file://` where fetch cannot, so the page still opens from disk with no server, and
reads each map, table part or score only when it first needs it.

Point i of every array is image_id i of the manifest; a map, prediction table or
neighbour file that does not cover image_ids 0..n-1 stops the writer naming the file.
"""

import base64
import json
import logging
import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cnnatlas.classes import OTHER, ClassSpace, read_class_space
from cnnatlas.errors import CnnatlasError
from cnnatlas.io import atomic_path, read_parquet_meta
from cnnatlas.maps import get_method, read_spec
from cnnatlas.plots import (
    CORRECT_COLOURS,
    MARKERS,
    category_styles,
    class_styles,
    is_continuous,
    metadata_columns,
)
from cnnatlas.schema import default
from cnnatlas.viewer.density import map_density

__all__ = [
    "Blocks",
    "read_block",
    "map_variant",
    "atlas_payload",
    "render_atlas",
    "write_atlas",
    "script_json",
    "sidecar_folder",
    "place_blocks",
    "BUNDLE",
    "INLINE_MAX",
    "PART_ROWS",
]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
BUNDLE = HERE / "atlas.bundle.js"
TEMPLATE = HERE / "template.html"
# The characters of base64 up to which a block stays in the page in any case.
INLINE_MAX = 4096
# Rows of a part of a table read one row at a time.
PART_ROWS = 32768
# Per-image scores of a checkpoint's predictions the page colours and filters by.
SCORES = ("loss", "entropy", "margin")
METRIC_KEYS = (
    "knn_features",
    "knn_map",
    "trustworthiness",
    "continuity",
    "neighbor_preservation",
    "seed_stability",
    "diagnosis",
)


class Blocks:
    """The page's binary arrays: `add` stores one and returns its reference {b, t}, or
    for a table in parts {parts: [b, ...], rows, t}."""

    def __init__(self, part_rows: int = PART_ROWS) -> None:
        self.items: list[str] = []
        self.part_rows = part_rows

    def add(
        self, array: Any, kind: str, shuffle: bool = False, parts: bool = False
    ) -> dict:
        """Store `array` as dtype `kind` (u1 u2 u4 i4 f4), as float32 less its lowest
        byte (f3, shuffled), as half floats scaled by a power of two (h2, shuffled:
        about three significant digits) or, for kind 'json', as JSON (a list);
        `shuffle`: its bytes grouped by their place in the value ({s: 1}); `parts`: a
        table of more than `part_rows` rows split into parts of that many rows."""
        ref: dict[str, Any] = {"t": kind}
        if kind == "h2":
            array, ref["x"] = _half(np.asarray(array, dtype=np.float64))
        elif kind == "f3":
            array = _f3(np.asarray(array, dtype="<f4"))
        elif kind != "json":
            array = np.asarray(array, dtype="<" + kind)
        shuffle = shuffle or kind in ("h2", "f3")
        if shuffle:
            ref["s"] = 1
        drop = int(kind == "f3")  # f3: the lowest byte of each float32 stays behind
        if parts and len(array) > self.part_rows:
            step = self.part_rows
            chunks = [array[i : i + step] for i in range(0, len(array), step)]
            stored = [self._store(c, shuffle, drop) for c in chunks]
            return {**ref, "rows": step, "parts": stored}
        return {"b": self._store(array, shuffle, drop), **ref}

    def _store(self, values: Any, shuffle: bool, drop: int) -> int:
        if isinstance(values, list):
            raw = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
            data = raw.encode("utf-8")
        elif shuffle:
            data = _planes(values)[drop:].tobytes()
        else:
            data = np.ascontiguousarray(values).tobytes()
        self.items.append(base64.b64encode(zlib.compress(data, 6)).decode("ascii"))
        return len(self.items) - 1


def _half(x: np.ndarray) -> tuple[np.ndarray, float]:
    """`x` as float16 times a power of two that keeps its largest magnitude under 2^15
    (no overflow, 11 significant bits): (halves, scale)."""
    finite = np.abs(x[np.isfinite(x)])
    top = float(finite.max()) if finite.size else 0.0
    scale = 2.0 ** int(np.ceil(np.log2(top / 2**15))) if top > 0 else 1.0
    return (x / scale).astype("<f2"), scale


def _f3(x: np.ndarray) -> np.ndarray:
    """float32 `x` rounded to the nearest value whose lowest byte is zero (16 bits of
    mantissa: five significant digits)."""
    bits = np.ascontiguousarray(x, dtype="<f4").view("<u4")
    return ((bits + np.uint32(0x80)) & np.uint32(0xFFFFFF00)).view("<f4")


def _planes(values: np.ndarray) -> np.ndarray:
    """The bytes of `values` as [width, n]: all first bytes, then all second bytes..."""
    width = values.dtype.itemsize
    return np.ascontiguousarray(values).view(np.uint8).reshape(-1, width).T


def read_block(
    header: Mapping[str, Any], ref: Mapping[str, Any], page: str | Path | None = None
) -> Any:
    """One block of a page's header: a list or dict (json) or a flat numpy array (h2 and
    f3 blocks as float32), as the page decodes it; a table in parts as one. `page`: the
    page's path, where its blocks may sit in its sidecar folder."""
    if "parts" in ref:
        whole = {k: v for k, v in ref.items() if k not in ("parts", "rows")}
        one = [read_block(header, {**whole, "b": b}, page) for b in ref["parts"]]
        return (
            [v for part in one for v in part]
            if ref["t"] == "json"
            else np.concatenate(one)
        )
    raw = zlib.decompress(
        base64.b64decode(_block_text(header["blocks"][ref["b"]], page))
    )
    if ref["t"] == "json":
        return json.loads(raw.decode("utf-8"))
    dtype = np.dtype({"h2": "<f2", "f3": "<f4"}.get(ref["t"], "<" + ref["t"]))
    if ref["t"] == "f3":
        planes = np.frombuffer(raw, np.uint8).reshape(3, -1)
        raw = np.vstack([np.zeros_like(planes[:1]), planes]).T.tobytes()
    elif ref.get("s"):
        raw = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, -1).T.tobytes()
    values = np.frombuffer(raw, dtype)
    if ref["t"] == "h2":
        return values.astype(np.float32) * np.float32(ref["x"])
    return values


_SIDECAR = re.compile(r'cnnatlasBlock\((\d+),"([A-Za-z0-9+/=]*)"\);\n')


def _block_text(item: str | Mapping[str, str], page: str | Path | None) -> str:
    """The base64 of a block: in the page, or in the sidecar file it names."""
    if isinstance(item, str):
        return item
    if page is None:
        raise ValueError(f"block {item['src']} is a sidecar file: name the page")
    return _SIDECAR.fullmatch((Path(page).parent / item["src"]).read_text()).group(2)


def _uint(n: int) -> str:
    return "u1" if n < 2**8 else "u2" if n < 2**16 else "u4"


def _by_image_id(df: pd.DataFrame, n: int, source: str | Path) -> pd.DataFrame:
    df = df.sort_values("image_id").reset_index(drop=True)
    if not np.array_equal(df["image_id"].to_numpy(), np.arange(n)):
        raise CnnatlasError(
            f"{source}: image_id must run 0..{n - 1} like the manifest's; it was made "
            "from another manifest: rerun the workflow"
        )
    return df


def _metadata(man: pd.DataFrame, blocks: Blocks) -> dict:
    out = {}
    for col in metadata_columns(man):
        values = man[col]
        if values.map(lambda v: isinstance(v, list | tuple | dict | np.ndarray)).any():
            log.warning("metadata column %r holds non-scalar values: not offered", col)
        elif is_continuous(values):
            out[col] = {
                "kind": "number",
                "values": blocks.add(values, "f4", shuffle=True),
            }
        else:
            styles = category_styles(values.astype(str))
            lookup = {s.name: i for i, s in enumerate(styles)}
            codes = values.astype(str).map(lookup).to_numpy()
            out[col] = {
                "kind": "category",
                "names": [s.name for s in styles],
                "colours": [s.colour for s in styles],
                "codes": blocks.add(codes, _uint(len(styles))),
            }
    return out


def _run(path: str | Path, n: int, classes: Sequence[str], blocks: Blocks) -> dict:
    """Predictions of one checkpoint: pred (as a dataset class, len(classes) for an output
    of no dataset class), confidence, correct, top-k and the names of the outputs shown.

    The model's outputs (pred_out, topk_ids) index `names`, the outputs that occur, named
    through the checkpoint's class space (class_index), so a 1,000-output model costs
    only the names it predicts. A name is shown with its title where the class index
    gives one (`tench (n01440764)`): the page's legend, hover and search then show both.
    `shown` is the dataset classes' strings in that form.
    """
    cols = ["image_id", "pred", "confidence", "correct", "topk_ids", "topk_probs"]
    present = set(pq.read_schema(path).names)
    cols += [c for c in SCORES if c in present]
    df = _by_image_id(pd.read_parquet(path, columns=cols), n, path)
    space = read_class_space(path)
    space = space if space.classes else ClassSpace.of(classes)
    ids = np.stack(df["topk_ids"].to_numpy()) if n else np.zeros((0, 1), np.int64)
    probs = np.stack(df["topk_probs"].to_numpy()) if n else np.zeros((0, 1))
    pred = df["pred"].to_numpy(np.int64)
    outputs = np.unique(np.concatenate([pred, ids.ravel()]).astype(np.int64))
    kind = _uint(len(outputs))
    return {
        "pred": blocks.add(space.dataset_codes(pred), _uint(len(classes) + 1)),
        "pred_out": blocks.add(np.searchsorted(outputs, pred), kind),
        "confidence": blocks.add(df["confidence"], "f4", shuffle=True),
        "correct": blocks.add(df["correct"].astype(bool), "u1"),
        "topk_ids": blocks.add(np.searchsorted(outputs, ids), kind, parts=True),
        # to three decimals: what the hover shows, and it packs
        "topk_probs": blocks.add(
            np.round(probs.astype(np.float64), 3), "f4", parts=True
        ),
        "names": [space.hover(o) for o in outputs],
        "other": bool((space.dataset_codes(pred) == len(classes)).any()),
        "shown": space.class_hovers() if space.has_titles() else None,
        "k": int(ids.shape[1]),
        # three significant digits: what the histograms and the legend show
        "scores": {c: blocks.add(df[c].to_numpy(), "h2") for c in SCORES if c in df},
    }


def _xy(path: str | Path, n: int) -> np.ndarray:
    df = _by_image_id(pd.read_parquet(path, columns=["image_id", "x", "y"]), n, path)
    return df[["x", "y"]].to_numpy(np.float32)


def _frame(maps: Sequence[np.ndarray]) -> dict:
    """One normalisation shared by aligned maps, so their points move only as the data did."""
    allxy = np.concatenate(maps).astype(np.float64)
    lo, hi = allxy.min(axis=0), allxy.max(axis=0)
    s = float(max(hi - lo) / 2 * 1.05) or 1.0
    return {"cx": float((lo[0] + hi[0]) / 2), "cy": float((lo[1] + hi[1]) / 2), "s": s}


def map_variant(method: str, perplexity: Any, seed: Any) -> str:
    """The map's sweep values in words, for the axes its method has (`MapSpec.label`:
    'perplexity 30, seed 0'); the method's name for a method without sweep axes."""
    return get_method(method).spec(2, perplexity, seed).label() or method


def _metric_rows(metrics: str | Path | None) -> dict:
    if metrics is None:
        return {}
    df = pd.read_parquet(metrics)
    df = df[df["dim"] == 2]
    out = {}
    for r in df.to_dict("records"):
        vals = {k: r[k] for k in METRIC_KEYS}
        for k, v in vals.items():
            if isinstance(v, float) and not np.isfinite(v):
                vals[k] = None
        spec = read_spec(r["method"], r)
        out[(r["model"], r["ckpt"], r["layer"], r["method"], spec)] = vals
    return out


def _density(xy: np.ndarray, labels: np.ndarray, blocks: Blocks) -> dict | None:
    """The map's density contours (a uint16 block of vertices) and cluster labels."""
    d = map_density(xy, labels)
    if d is None:
        return None
    return {**d, "lines": blocks.add(d["lines"], "u2")}


def _maps(maps, evolution, metrics, labels, blocks) -> list[dict]:
    rows = _metric_rows(metrics)
    n = len(labels)
    out = []
    for m in maps:
        spec = get_method(m["method"]).spec(2, m["perplexity"], m["seed"])
        key = (m["model"], m["ckpt"], m["layer"], m["method"], spec)
        xy = _xy(m["embedding"], n)
        out.append(
            {
                **{k: str(m[k]) for k in ("model", "ckpt", "layer", "method")},
                "variant": map_variant(m["method"], m["perplexity"], m["seed"]),
                "xy": blocks.add(xy, "f3"),
                "density": _density(xy, labels, blocks),
                "metrics": rows.get(key),
            }
        )
    for e in evolution:
        xys = [_xy(Path(e["dir"]) / f"{c}.parquet", n) for c in e["ckpts"]]
        frame, group = _frame(xys), f"{e['model']}/{e['layer']}/{e['method']}"
        for ckpt, xy in zip(e["ckpts"], xys, strict=True):
            out.append(
                {
                    "model": str(e["model"]),
                    "ckpt": str(ckpt),
                    "layer": str(e["layer"]),
                    "method": f"{e['method']} aligned",
                    "variant": map_variant(e["method"], e["perplexity"], e["seed"]),
                    "xy": blocks.add(xy, "f3"),
                    "density": _density(xy, labels, blocks),
                    "metrics": None,
                    "note": "aligned across checkpoints by the evolution stage "
                    "(no faithfulness metrics); switching checkpoints moves the points",
                    "group": group,
                    "frame": frame,
                }
            )
    return out


def _explain(explain: Sequence[Mapping[str, Any]], page: Path) -> dict:
    """Per 'model/ckpt': image_id -> relative URL of its Grad-CAM overlay."""
    out = {}
    for e in explain:
        folder = Path(e["dir"])
        files = sorted(folder.glob("[0-9]*.png")) if folder.is_dir() else []
        rel = _relative(folder, page)
        out[f"{e['model']}/{e['ckpt']}"] = {
            str(int(f.stem)): f"{rel}{f.name}" for f in files if f.stem.isdigit()
        }
    return out


def _relative(folder: str | Path, page: Path) -> str:
    import os

    return Path(os.path.relpath(folder, page.parent)).as_posix() + "/"


def _thumbs(sheets: str | Path | None, page: Path, zoom: int) -> dict | None:
    if sheets is None:
        return None
    layout = json.loads((Path(sheets) / "index.json").read_text())
    return {**layout, "prefix": _relative(sheets, page), "zoom": zoom}


def atlas_payload(
    out: str | Path,
    manifest: str | Path,
    predictions: Mapping[str, str | Path],
    maps: Sequence[Mapping[str, Any]],
    neighbors: Sequence[Mapping[str, Any]] = (),
    metrics: str | Path | None = None,
    evolution: Sequence[Mapping[str, Any]] = (),
    explain: Sequence[Mapping[str, Any]] = (),
    sheets: str | Path | None = None,
    links: Sequence[Mapping[str, str]] = (),
    title: str = "cnnatlas atlas",
    zoom: int = 2,
    part_rows: int = PART_ROWS,
) -> dict:
    """The page's JSON header (with its blocks) for the atlas written to `out`.

    predictions: {"model/ckpt": path}; maps: [{model, ckpt, layer, method, perplexity,
    seed, embedding}]; neighbors: [{model, ckpt, layer, path, distances}] (npy [N, k]
    of ids and, optionally, of their feature-space distances);
    evolution: [{model, layer, method, perplexity, seed, ckpts, dir}] (aligned maps
    dir/{ckpt}.parquet); explain: [{model, ckpt, dir}] (Grad-CAM PNGs {image_id:05d}.png);
    links: [{label, href}] relative to `out`; part_rows: rows of a part of the tables
    read one row at a time (paths, top-k, neighbours).
    """
    out = Path(out)
    if not maps:
        raise CnnatlasError("the atlas has no 2-D map to show: enable a 2-D map method")
    man = pd.read_parquet(manifest)
    n = len(man)
    man = _by_image_id(man, n, manifest)
    classes = json.loads(read_parquet_meta(manifest).get("cnnatlas.classes", "null"))
    classes = classes or [str(i) for i in range(int(man["label"].max()) + 1)]
    blocks = Blocks(part_rows)
    runs = {key: _run(path, n, classes, blocks) for key, path in predictions.items()}
    # the dataset's classes as the first checkpoint with titles shows them (class_index)
    shown = [r.pop("shown") for r in runs.values()]
    classes = next((s for s in shown if s is not None), classes)
    if any(r.pop("other") for r in runs.values()):
        classes = [*classes, OTHER]  # predictions of outputs that are no dataset class
    styles = class_styles(classes)
    header = {
        "title": title,
        "n": n,
        "classes": blocks.add([str(c) for c in classes], "json"),
        "class_colours": [s.colour for s in styles],
        "class_markers": [MARKERS.index(s.marker) for s in styles],
        "correct_names": list(CORRECT_COLOURS),
        "correct_colours": list(CORRECT_COLOURS.values()),
        "paths": blocks.add(man["path"].astype(str).tolist(), "json", parts=True),
        "labels": blocks.add(man["label"], _uint(len(classes))),
        "metadata": _metadata(man, blocks),
        "runs": runs,
        "neighbors": {},
        "maps": _maps(maps, evolution, metrics, man["label"].to_numpy(), blocks),
        "explain": _explain(explain, out),
        "thumbs": _thumbs(sheets, out, zoom),
        "links": [dict(link) for link in links],
    }
    for nb in neighbors:
        ids = np.load(nb["path"])
        if ids.ndim != 2 or len(ids) != n:
            raise CnnatlasError(
                f"{nb['path']}: neighbour ids must be [{n}, k]; rerun measure_maps"
            )
        key = f"{nb['model']}/{nb['ckpt']}/{nb['layer']}"
        header["neighbors"][key] = {
            **blocks.add(ids, _uint(n), shuffle=n >= 2**8, parts=True),
            "k": int(ids.shape[1]),
        }
        if nb.get("distances") is not None:
            dist = np.load(nb["distances"])
            if dist.shape != ids.shape:
                raise CnnatlasError(
                    f"{nb['distances']}: neighbour distances must be {list(ids.shape)}"
                    " like their ids; rerun measure_maps"
                )
            # three significant digits: what the gallery shows
            header["neighbors"][key]["distances"] = blocks.add(dist, "h2", parts=True)
    header["blocks"] = blocks.items
    return header


def script_json(data: dict) -> str:
    """JSON safe inside a <script> element: no '<', '>' or '&' can end it or open markup."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def render_atlas(header: dict) -> str:
    """The complete page: template, header JSON and the inlined bundle."""
    import html

    parts = {
        "title": html.escape(header["title"]),
        "data": script_json(header),
        "bundle": BUNDLE.read_text(encoding="utf-8"),
    }
    # One pass, so a placeholder inside the data is never substituted again.
    return re.sub(
        r"\{\{(title|data|bundle)\}\}",
        lambda m: parts[m.group(1)],
        TEMPLATE.read_text(encoding="utf-8"),
    )


def sidecar_folder(out: str | Path) -> Path:
    """The folder beside the page `out` that holds its sidecar blocks: `<stem>_files`."""
    out = Path(out)
    return out.with_name(f"{out.stem}_files")


def place_blocks(header: dict, folder: str, inline_mb: float) -> dict[str, bytes]:
    """Move the large blocks of `header` out of the page when they total more than
    `inline_mb` MB: each becomes {src: "<folder>/<b>.js"} in the header. Returns the
    sidecar files' contents by name (none for a self-contained page)."""
    items = header["blocks"]
    if sum(map(len, items)) <= inline_mb * 1e6:
        return {}
    files = {}
    for b, text in enumerate(items):
        if len(text) > INLINE_MAX:
            files[f"{b}.js"] = f'cnnatlasBlock({b},"{text}");\n'.encode("ascii")
            items[b] = {"src": f"{folder}/{b}.js"}
    return files


def _replace_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    """`folder` holding exactly `files`: written beside it, then swapped in, so that
    no file of an earlier page lingers and a failed write leaves the old folder whole."""
    new = folder.with_name(folder.name + ".new")
    old = folder.with_name(folder.name + ".old")
    for stale in (new, old):
        shutil.rmtree(stale, ignore_errors=True)
    new.mkdir(parents=True)
    for name, data in sorted(files.items()):
        (new / name).write_bytes(data)
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def write_atlas(out: str | Path, inline_mb: float | None = None, **kwargs: Any) -> int:
    """Write the atlas page to `out` and its sidecar folder (`sidecar_folder(out)`,
    empty for a page of at most `inline_mb` MB of blocks; None: the config's default,
    figures.atlas_inline_mb); other arguments as `atlas_payload`. Returns the page's
    size in bytes."""
    if inline_mb is None:
        inline_mb = default("figures.atlas_inline_mb")
    header = atlas_payload(out, **kwargs)
    folder = sidecar_folder(out)
    files = place_blocks(header, folder.name, inline_mb)
    data = render_atlas(header).encode("utf-8")
    _replace_folder(folder, files)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    log.info(
        "%s: %d maps of %d points, %.2f MB, and %d sidecar files of %.2f MB",
        out,
        len(header["maps"]),
        header["n"],
        len(data) / 1e6,
        len(files),
        sum(map(len, files.values())) / 1e6,
    )
    return len(data)
