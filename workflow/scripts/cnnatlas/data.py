"""Datasets: the manifest of images and labels, and image decoding.

The manifest is the single list of images every later stage refers to: row i is
image_id i, and image_id follows the sorted paths, so it is stable across runs.
"""

import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from cnnatlas.classes import imagefolder_classes, label_names
from cnnatlas.errors import DatasetError
from cnnatlas.io import write_parquet
from cnnatlas.schema import default

__all__ = [
    "IMAGE_SUFFIXES",
    "imagefolder_classes",
    "manifest_from_imagefolder",
    "manifest_from_table",
    "write_manifest",
    "load_image",
    "BAD_IMAGE_POLICIES",
    "check_image",
    "find_bad_images",
    "apply_bad_image_policy",
    "build_manifest",
]

log = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MANIFEST_COLUMNS = ["image_id", "path", "label", "label_name"]
BAD_IMAGE_POLICIES = ("fail", "skip")


def manifest_from_imagefolder(
    root: str | Path, classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """Manifest of an ImageFolder (`root/<class>/<image>`): one row per image, sorted by path.

    Classes are the sub-folder names in sorted order unless `classes` gives the order.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"dataset.path {str(root)!r} is not a directory: give an ImageFolder root"
        )
    folders = imagefolder_classes(root)
    classes = list(classes) if classes else folders
    unknown = sorted(set(folders) - set(classes))
    if unknown:
        raise DatasetError(
            f"{root}: class folders {unknown} are not in dataset.classes; add them or remove the folders"
        )
    rows = []
    for label, name in enumerate(classes):
        folder = root / name
        files = (
            sorted(p for p in folder.rglob("*") if p.is_file())
            if folder.is_dir()
            else []
        )
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        ignored = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        _warn_ignored(name, folder, ignored, images)
        rows += [(str(p), label, name) for p in images]
    if not rows:
        raise DatasetError(f"{root}: no images with suffixes {IMAGE_SUFFIXES} found")
    return _number(pd.DataFrame(rows, columns=["path", "label", "label_name"]))


def _warn_ignored(
    name: str, folder: Path, ignored: list[Path], images: list[Path]
) -> None:
    if ignored:
        log.warning(
            "class %r: %d files without an image suffix %s are not listed, e.g. %r",
            name,
            len(ignored),
            IMAGE_SUFFIXES,
            str(ignored[0]),
        )
    if not images:
        log.warning(
            "class %r has no images under %s; it stays in the class list with 0 images",
            name,
            folder,
        )


def manifest_from_table(
    table: str | Path,
    path_column: str,
    label_column: str,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Manifest from a CSV or Parquet file with a path and a label column; other columns are metadata.

    Relative paths are taken relative to the table's folder. Labels may be class names
    or integer class indices (then `classes` names them, else the index is the name).
    """
    table = Path(table)
    if not table.is_file():
        raise DatasetError(
            f"dataset.path {str(table)!r} does not exist: give a CSV or Parquet manifest"
        )
    df = _read_table(table)
    for key, col in (
        ("dataset.path_column", path_column),
        ("dataset.label_column", label_column),
    ):
        if col not in df.columns:
            raise DatasetError(
                f"{table}: no column {col!r} ({key}); columns are {list(df.columns)}"
            )
    if df.empty:
        raise DatasetError(f"{table}: the manifest has no rows")
    for key, col in (("path", path_column), ("label", label_column)):
        missing = np.flatnonzero(df[col].isna().to_numpy())
        if len(missing):
            raise DatasetError(
                f"{table}: {len(missing)} rows have no {key} (column {col!r}), "
                f"e.g. data rows {[int(i) + 1 for i in missing[:10]]}; fill or remove them"
            )
    df = df.rename(columns={path_column: "path", label_column: "label_raw"})
    reserved = set(MANIFEST_COLUMNS) & set(df.columns) - {"path"}
    if reserved:
        raise DatasetError(
            f"{table}: columns {sorted(reserved)} are reserved; rename them"
        )
    df["path"] = [
        os.path.normpath(p if Path(p).is_absolute() else table.parent / p)
        for p in df["path"].astype(str)
    ]
    df["label"], df["label_name"] = _encode_labels(df.pop("label_raw"), classes, table)
    return _number(df, table)


def _read_table(table: Path) -> pd.DataFrame:
    try:
        if table.suffix == ".parquet":
            return pd.read_parquet(table)
        return pd.read_csv(table)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DatasetError(
            f"dataset.path {str(table)!r} is not a readable CSV or Parquet manifest: {err}"
        ) from err


def _encode_labels(
    raw: pd.Series, classes: Sequence[str] | None, source: Path
) -> tuple[list, list]:
    names = list(classes) if classes else label_names(raw)
    if pd.api.types.is_integer_dtype(raw):
        bad = sorted({int(v) for v in raw if not 0 <= v < len(names)})
        if bad:
            raise DatasetError(
                f"{source}: labels {bad[:10]} are outside 0..{len(names) - 1}"
            )
        return [int(v) for v in raw], [names[int(v)] for v in raw]
    raw = raw.astype(str)
    index = {n: i for i, n in enumerate(names)}
    bad = sorted(set(raw) - set(index))
    if bad:
        raise DatasetError(
            f"{source}: labels {bad[:10]} are not in dataset.classes {names}"
        )
    return [index[v] for v in raw], list(raw)


def _number(df: pd.DataFrame, source: Path | None = None) -> pd.DataFrame:
    dup = df["path"][df["path"].duplicated()]
    if len(dup):
        raise DatasetError(
            f"{source or 'the manifest'}: {len(dup)} paths are listed more than once: "
            f"{sorted(set(dup))[:10]}; list each image once"
        )
    df = df.sort_values("path", kind="stable").reset_index(drop=True)
    df.insert(0, "image_id", np.arange(len(df), dtype=np.int64))
    df["label"] = df["label"].astype(np.int64)
    meta = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return df[MANIFEST_COLUMNS + meta]


def write_manifest(df: pd.DataFrame, path: str | Path, classes: Sequence[str]) -> None:
    """Write the manifest Parquet; the class list (index order) goes in its metadata."""
    import json

    write_parquet(df, path, meta={"cnnatlas.classes": json.dumps(list(classes))})


def load_image(path: str | Path, channels: int) -> Image.Image:
    """Decode one image to 8-bit RGB (channels=3) or L (channels=1).

    Gray, RGBA (composited on white), palette, CMYK and 16-bit images are converted.
    An unreadable file raises DatasetError naming it.
    """
    try:
        with Image.open(path) as im:
            _note_large(im, path)
            im.seek(0)  # first frame of an animation
            im.load()
            im = _to_8bit(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"cannot decode image {str(path)!r}: {err}") from err
    return im.convert("RGB" if channels == 3 else "L")


def _note_large(im: Image.Image, path: str | Path) -> None:
    # PIL only warns (without the file name) between its limit and twice the limit;
    # above twice the limit Image.open raises DecompressionBombError.
    limit = Image.MAX_IMAGE_PIXELS
    if limit and im.width * im.height > limit:
        log.warning(
            "image %r has %d pixels, above PIL's decompression-bomb limit %d; decoding it",
            str(path),
            im.width * im.height,
            limit,
        )


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(
            np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L"
        )
    if im.mode in ("RGBA", "LA", "PA") or (
        im.mode == "P" and "transparency" in im.info
    ):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im


def check_image(path: str | Path) -> str | None:
    """Decode `path` fully, as the forward pass will: None if it loads, else the reason."""
    if not Path(path).is_file():
        return "file does not exist"
    try:
        load_image(path, channels=3)
    except DatasetError as err:
        cause = err.__cause__ or err
        return f"{type(cause).__name__}: {cause}"
    return None


def find_bad_images(paths: Sequence[str], threads: int = 1) -> dict[int, str]:
    """{index in `paths`: reason} of every image that does not decode; `threads` decode at once."""
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        reasons = list(
            tqdm(
                pool.map(check_image, paths, chunksize=16),
                total=len(paths),
                desc="validate",
                file=sys.stderr,
                mininterval=5,
            )
        )
    return {i: r for i, r in enumerate(reasons) if r is not None}


def apply_bad_image_policy(
    df: pd.DataFrame, bad: dict[int, str], policy: str = "fail"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept manifest, bad images table) for `policy` fail or skip.

    fail raises DatasetError listing every bad file with its reason; skip drops them and
    renumbers image_id 0..n-1 over the kept images (still in path order).
    """
    if policy not in BAD_IMAGE_POLICIES:
        raise DatasetError(
            f"dataset.on_bad_image is {policy!r}; use one of {BAD_IMAGE_POLICIES}"
        )
    rows = df.iloc[sorted(bad)]
    table = pd.DataFrame(
        {
            "path": rows["path"].astype(str).tolist(),
            "label": rows["label"].to_numpy(dtype=np.int64),
            "label_name": rows["label_name"].astype(str).tolist(),
            "reason": [bad[i] for i in sorted(bad)],
        }
    )
    if not bad:
        return df, table
    lines = "\n".join(
        f"  {p}: {r}" for p, r in zip(table["path"], table["reason"], strict=True)
    )
    if policy == "fail":
        raise DatasetError(
            f"{len(bad)} of {len(df)} images are missing or cannot be decoded:\n{lines}\n"
            "Fix or remove these files, or set dataset.on_bad_image: skip "
            "to leave them out (they are then listed in bad_images.parquet)."
        )
    log.warning(
        "skipping %d of %d images that cannot be decoded:\n%s", len(bad), len(df), lines
    )
    kept = df.drop(index=df.index[sorted(bad)]).reset_index(drop=True)
    if kept.empty:
        raise DatasetError(f"none of the {len(df)} images can be decoded:\n{lines}")
    kept["image_id"] = np.arange(len(kept), dtype=np.int64)
    return kept, table


def build_manifest(
    dataset: dict,
    out: str | Path,
    bad_images: str | Path | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Write `out` (manifest.parquet) for the config's `dataset` section and return it.

    Every image is decoded first (`threads` at once); undecodable ones are handled by
    `dataset.on_bad_image` (fail, the default, or skip) and, if `bad_images` is given,
    listed there (path, label, label_name, reason).
    """
    classes = dataset.get("classes")
    if dataset["kind"] == "imagefolder":
        df = manifest_from_imagefolder(dataset["path"], classes)
    else:
        df = manifest_from_table(
            dataset["path"],
            dataset.get("path_column", default("dataset.path_column")),
            dataset.get("label_column", default("dataset.label_column")),
            classes,
        )
    if classes:
        names = list(classes)
    elif dataset["kind"] == "imagefolder":
        names = imagefolder_classes(dataset["path"])
    else:
        names = _class_names(df)
    bad = find_bad_images(df["path"].tolist(), threads)
    df, table = apply_bad_image_policy(df, bad, dataset.get("on_bad_image", "fail"))
    if bad_images is not None:
        write_parquet(table, bad_images)
    write_manifest(df, out, names)
    log.info(
        "manifest: %d images (%d skipped), %d classes", len(df), len(bad), len(names)
    )
    return df


def _class_names(df: pd.DataFrame) -> list[str]:
    pairs = (
        df[["label", "label_name"]].drop_duplicates().set_index("label")["label_name"]
    )
    return [str(pairs.get(i, i)) for i in range(int(df["label"].max()) + 1)]
