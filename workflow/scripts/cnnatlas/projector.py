"""TensorBoard Embedding Projector export, written without TensorFlow.

`tensorboard --logdir <folder>` reads `projector_config.pbtxt` (a text protobuf) at the
root of its logdir; each embedding entry there names a tensor file (`tensor_path`, a TSV
of floats that the projector plugin parses without TensorFlow), a metadata TSV and a
sprite (one square PNG holding every thumbnail, row-major, `single_image_dim` each).
The projector refuses sprites larger than 8192 x 8192 px, so the thumbnail side is
chosen from the number of points; when even `min_thumbnail` px does not fit, a seeded
sample stratified by label is exported instead, and the log says so.

TensorBoard parses each tensor TSV in Python (when the plugin activates, and again on
every request for a tensor that is not the last one parsed), about 0.5 s per million
values on this project's CPU. A tensor of more than `max_values` rows x dims is
therefore exported reduced: `reduce="pca"` keeps the first principal components (the
tensor is named e.g. `layer4 (PCA 128 of 2048)`), `reduce="sample"` exports a seeded
label-stratified sample of the points, shared by every tensor, the metadata and the
sprite. `export.json` and the log record what was done.
"""

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from cnnatlas.data import load_image
from cnnatlas.errors import CnnatlasError
from cnnatlas.io import atomic_path, read_predictions
from cnnatlas.schema import default

__all__ = [
    "MAX_SPRITE_PX",
    "CONFIG_FILE",
    "EXPORT_FILE",
    "sprite_layout",
    "stratified_sample",
    "escape_field",
    "metadata_table",
    "write_metadata_tsv",
    "write_tensor_tsv",
    "write_sprite",
    "pbtxt_string",
    "Embedding",
    "projector_config_text",
    "reduced_dims",
    "pca_reduce",
    "export_projector",
]

log = logging.getLogger(__name__)

MAX_SPRITE_PX = 8192  # the projector's limit on each side of the sprite image
CONFIG_FILE = "projector_config.pbtxt"
# what was exported: the points, each tensor's source shape and reduction
EXPORT_FILE = "export.json"
BASE_COLUMNS = ["image_id", "path", "label", "label_name"]
# what `metadata_table` reads of predictions.parquet (the titles where it has them)
METADATA_COLUMNS = ["image_id", "path", "label_name", "label_title", "pred_name",
                    "pred_title", "correct", "confidence"]  # fmt: skip


def sprite_layout(
    n: int, thumbnail: int, min_thumbnail: int, limit: int = MAX_SPRITE_PX
) -> tuple[int, int]:
    """(points to export, thumbnail side in px) so that a square sprite fits `limit` px.

    The side is the largest one up to `thumbnail` for which ceil(sqrt(n)) thumbnails fit
    in a row; below `min_thumbnail` px the number of points is cut instead.
    """
    if not 1 <= min_thumbnail <= thumbnail <= limit:
        raise ValueError(f"need 1 <= min_thumbnail <= thumbnail <= {limit}")
    side = min(thumbnail, limit // math.ceil(math.sqrt(n)))
    if side >= min_thumbnail:
        return n, side
    return (limit // min_thumbnail) ** 2, min_thumbnail


def reduced_dims(rows: int, dims: int, max_values: int | None, pca_dims: int) -> int:
    """Columns to export for a `rows` x `dims` tensor: `dims` when it fits `max_values`
    (None: no limit), else min(`pca_dims`, max_values // rows, dims, rows)."""
    if max_values is None or rows * dims <= max_values:
        return dims
    k = min(pca_dims, max_values // rows, dims, rows)
    if k < 2:
        raise CnnatlasError(
            f"projector.max_values {max_values:,} leaves fewer than 2 PCA components for "
            f"{rows:,} points; raise it, or set projector.reduce: sample"
        )
    return k


def pca_reduce(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float]:
    """[N, D] -> ([N, k] float32 principal-component scores, explained variance ratio),
    by scikit-learn's randomized PCA seeded with `seed`."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed)
    scores = pca.fit_transform(np.asarray(x, dtype=np.float32))
    return scores.astype(np.float32), float(pca.explained_variance_ratio_.sum())


def stratified_sample(labels: Sequence[int], k: int, seed: int) -> np.ndarray:
    """Sorted indices of `k` of the points, drawn per label in proportion (largest remainder)."""
    labels = np.asarray(labels)
    if k >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * k / len(labels)
    take = np.floor(quota).astype(int)
    extra = np.argsort(-(quota - take), kind="stable")[: k - take.sum()]
    take[extra] += 1
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=t, replace=False)
        for c, t in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picked))


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(value: object) -> str:
    """A TSV field that never breaks a row: backslash, tab, CR and LF as \\\\ \\t \\r \\n."""
    return re.sub(r"[\\\t\n\r]", lambda m: _ESCAPES[m.group()], str(value))


def metadata_table(predictions: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """The projector's metadata: label, pred, correct, confidence, path, image_id, then
    the manifest's metadata columns, one row per image in image_id order.

    Where the predictions give titles (`tench` for `n01440764`, from a class index),
    label and pred are the titles and label_id, pred_id the names, after image_id."""
    p = predictions.sort_values("image_id").reset_index(drop=True)
    titled = {
        kind: p.get(f"{kind}_title", p[f"{kind}_name"]).astype(str)
        for kind in ("label", "pred")
    }
    names = {kind: p[f"{kind}_name"].astype(str) for kind in ("label", "pred")}
    df = pd.DataFrame(
        {
            "label": titled["label"],
            "pred": titled["pred"],
            "correct": p["correct"].map({True: "true", False: "false"}),
            "confidence": p["confidence"].map("{:.4f}".format),
            "path": p["path"].astype(str),
            "image_id": p["image_id"].astype(np.int64),
        }
    )
    if any((titled[k] != names[k]).any() for k in names):
        df["label_id"], df["pred_id"] = names["label"], names["pred"]
    extra = [c for c in manifest.columns if c not in BASE_COLUMNS]
    meta = manifest.sort_values("image_id").reset_index(drop=True)[extra]
    clash = [c for c in extra if c in df.columns]
    return pd.concat([df, meta.rename(columns={c: f"meta_{c}" for c in clash})], axis=1)


def write_metadata_tsv(df: pd.DataFrame, path: str | Path) -> None:
    """Header row and one escaped row per point; missing values are empty fields."""
    lines = ["\t".join(escape_field(c) for c in df.columns)]
    for row in df.itertuples(index=False):
        lines.append("\t".join("" if pd.isna(v) else escape_field(v) for v in row))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_tensor_tsv(x: np.ndarray, path: str | Path) -> None:
    """[N, D] floats as TSV with 9 significant digits, which round-trips float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise CnnatlasError(
            f"{path}: the projector needs a finite 2-D tensor; got shape {x.shape} "
            f"with {int((~np.isfinite(x)).sum())} NaN/inf values"
        )
    with atomic_path(path) as tmp:
        np.savetxt(tmp, x, fmt="%.9g", delimiter="\t")


def _thumbnail(path: str, side: int) -> Image.Image:
    # Centre crop to a square, as the eval transform does, then resize.
    return ImageOps.fit(load_image(path, 3), (side, side), Image.Resampling.LANCZOS)


def write_sprite(paths: Sequence[str], side: int, path: str | Path) -> int:
    """Square sprite of `side`-px thumbnails, row-major; returns the sprite's side in px."""
    cols = math.ceil(math.sqrt(len(paths)))
    sprite = Image.new("RGB", (cols * side, cols * side), (255, 255, 255))
    for i, image in enumerate(paths):
        sprite.paste(_thumbnail(image, side), ((i % cols) * side, (i // cols) * side))
    with atomic_path(path) as tmp:
        sprite.save(tmp, format="PNG")
    return cols * side


def pbtxt_string(s: str) -> str:
    """A protobuf text-format string literal: UTF-8 bytes, non-printable ones octal-escaped."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


@dataclass
class Embedding:
    """One entry of the projector config: a tensor file with its shape."""

    name: str
    tensor_path: str
    shape: tuple[int, int]
    metadata_path: str = "metadata.tsv"
    sprite_path: str | None = "sprite.png"
    sprite_dim: int = 0


def projector_config_text(embeddings: Sequence[Embedding]) -> str:
    """The text protobuf (ProjectorConfig) listing `embeddings`."""
    blocks = []
    for e in embeddings:
        lines = [
            f"  tensor_name: {pbtxt_string(e.name)}",
            f"  tensor_path: {pbtxt_string(e.tensor_path)}",
            f"  metadata_path: {pbtxt_string(e.metadata_path)}",
            f"  tensor_shape: {e.shape[0]}",
            f"  tensor_shape: {e.shape[1]}",
        ]
        if e.sprite_path:
            lines += [
                "  sprite {",
                f"    image_path: {pbtxt_string(e.sprite_path)}",
                f"    single_image_dim: {e.sprite_dim}",
                f"    single_image_dim: {e.sprite_dim}",
                "  }",
            ]
        blocks.append("embeddings {\n" + "\n".join(lines) + "\n}\n")
    return "".join(blocks)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _load_map(path: Path, rows: np.ndarray) -> np.ndarray:
    df = pd.read_parquet(path).sort_values("image_id")
    cols = [c for c in ("x", "y", "z") if c in df.columns]
    if df["image_id"].tolist() != list(range(len(df))) or len(cols) < 2:
        raise CnnatlasError(
            f"{path}: an embedding needs columns image_id (0..N-1), x, y[, z]; "
            "re-run the maps stage"
        )
    return df[cols].to_numpy(np.float32)[rows]


def export_projector(
    predictions: str | Path,
    manifest: str | Path,
    features: Mapping[str, str | Path],
    out: str | Path,
    maps: Mapping[str, Sequence[str | Path]] | None = None,
    thumbnail: int = default("projector.thumbnail"),
    min_thumbnail: int = default("projector.min_thumbnail"),
    seed: int = default("projector.seed"),
    max_sprite_px: int = MAX_SPRITE_PX,
    max_values: int | None = default("projector.max_values"),
    reduce: str = default("projector.reduce"),
    pca_dims: int = default("projector.pca_dims"),
) -> list[Embedding]:
    """Write a projector folder `out`: one entry per layer in `features` (name -> .npy)
    and one per map file in `maps` (layer -> embedding Parquets). Returns the entries.

    A layer of more than `max_values` rows x dims (None: no limit) is reduced: "pca"
    exports its first min(`pca_dims`, max_values // rows) principal components,
    "sample" exports a label-stratified sample of max_values // (widest layer's dims)
    points for every tensor. `out/export.json` records the points and each tensor's
    source shape and reduction. Layers are read one at a time (memory-mapped).
    """
    if reduce not in ("pca", "sample"):
        raise ValueError(f"projector.reduce must be pca or sample, got {reduce!r}")
    out = Path(out)
    pred = read_predictions(predictions, METADATA_COLUMNS)
    meta = metadata_table(pred, pd.read_parquet(manifest))
    total = len(meta)
    dims = {
        layer: _feature_dims(npy, total, predictions) for layer, npy in features.items()
    }
    n, side = sprite_layout(total, thumbnail, min_thumbnail, max_sprite_px)
    why = f"{total} points do not fit a {max_sprite_px} px sprite at {min_thumbnail} px each"
    if reduce == "sample" and max_values is not None and dims:
        widest = max(dims.values())
        if max_values // widest < n:
            n = max(max_values // widest, 1)
            why = (
                f"projector.max_values is {max_values:,} and a layer has {widest} dims"
            )
    rows = stratified_sample(meta["label"].to_numpy(), n, seed)
    if len(rows) < total:
        log.warning(
            "projector: exporting a label-stratified sample of %d of %d points (seed "
            "%d): %s; metadata.tsv's image_id names them", len(rows), total, seed, why,
        )  # fmt: skip
    meta = meta.iloc[rows].reset_index(drop=True)
    write_metadata_tsv(meta, out / "metadata.tsv")
    write_sprite(meta["path"].tolist(), side, out / "sprite.png")
    entries, record = [], []
    for layer, npy in features.items():
        k = reduced_dims(len(rows), dims[layer], max_values, pca_dims)
        x, name = _layer_tensor(layer, npy, rows, k, seed, max_values)
        entries.append(_tensor_entry(name, x, out, side, entries))
        del x  # freed before the next layer is read
        record.append(
            {"name": name, "layer": layer, "source_shape": [total, dims[layer]],
             "shape": list(entries[-1].shape), "reduction": "pca" if k < dims[layer] else None}
        )  # fmt: skip
        for path in (maps or {}).get(layer, []):
            name = f"{layer} {Path(path).stem}"
            xy = _load_map(Path(path), rows)
            entries.append(_tensor_entry(name, xy, out, side, entries))
    with atomic_path(out / CONFIG_FILE) as tmp:
        tmp.write_text(projector_config_text(entries), encoding="utf-8")
    summary = {
        "points": len(rows), "of": total, "sampled": why if len(rows) < total else None,
        "seed": seed, "max_values": max_values, "reduce": reduce, "thumbnail": side,
        "tensors": record,
    }  # fmt: skip
    with atomic_path(out / EXPORT_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    log.info(
        "projector: %d of %d points, %d px thumbnails, %d tensors",
        len(rows), total, side, len(entries),
    )  # fmt: skip
    return entries


def _layer_tensor(
    layer: str, npy: str | Path, rows: np.ndarray, k: int, seed: int, max_values
) -> tuple[np.ndarray, str]:
    """The exported rows of one layer (read alone, memory-mapped), PCA-reduced to `k`
    columns when it has more; with the tensor's name."""
    x = np.asarray(np.load(npy, mmap_mode="r")[rows])
    if k >= x.shape[1]:
        return x, layer
    name = f"{layer} (PCA {k} of {x.shape[1]})"
    log.warning(
        "projector: %s has %d x %d = %s values > projector.max_values %s: exporting "
        "%r", layer, *x.shape, f"{x.size:,}", f"{max_values:,}", name,
    )  # fmt: skip
    x, kept = pca_reduce(x, k, seed)
    log.info("projector: %r keeps %.3f of the variance", name, kept)
    return x, name


def _feature_dims(npy: str | Path, total: int, predictions: str | Path) -> int:
    x = np.load(npy, mmap_mode="r")
    if x.ndim != 2 or len(x) != total:
        raise CnnatlasError(
            f"{npy}: features of shape {x.shape} do not match the {total} images "
            f"of {predictions}; re-run extract_features"
        )
    return int(x.shape[1])


def _tensor_entry(
    name: str, x: np.ndarray, out: Path, side: int, before: list
) -> Embedding:
    # The index keeps file names unique when two names differ only in odd characters.
    rel = f"tensors/{len(before):03d}-{_safe(name)}.tsv"
    write_tensor_tsv(x, out / rel)
    return Embedding(name=name, tensor_path=rel, shape=x.shape, sprite_dim=side)
