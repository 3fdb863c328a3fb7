"""Which images the per-image explanations show.

Either the image_ids the config lists, or automatically a few correctly classified and a
few misclassified images of every class, drawn from predictions.parquet with a seeded
generator so that the same config always shows the same images.
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cnnatlas.errors import CnnatlasError
from cnnatlas.io import read_parquet_meta, read_predictions, write_parquet

__all__ = [
    "select_images",
    "sample_images",
    "bound_images",
    "write_selection",
    "read_classes",
    "SAMPLE_COLUMNS",
]

log = logging.getLogger(__name__)

COLUMNS = ["image_id", "path", "label", "label_name", "pred", "pred_name"]
# the human names of predictions.parquet (absent from tables written before them)
TITLES = ["label_title", "pred_title"]
# what the explanation jobs read of predictions.parquet: the images to sample from
# (`bound_images`) and what their tables record of each
SAMPLE_COLUMNS = ["image_id", "path", "label", "label_name", "correct"]


def select_images(
    predictions: pd.DataFrame,
    ids: Sequence[int] | None = None,
    *,
    correct_per_class: int,
    wrong_per_class: int,
    seed: int,
) -> pd.DataFrame:
    """Rows of `predictions` to explain, sorted by image_id, with a `reason` column.

    `ids` given: exactly those images (reason "listed"). Otherwise up to
    `correct_per_class` correct and `wrong_per_class` misclassified images per true class,
    drawn without replacement by `numpy.random.default_rng(seed)`.
    """
    cols = COLUMNS + [c for c in TITLES if c in predictions] + ["confidence", "correct"]
    if ids:
        unknown = sorted(set(ids) - set(predictions["image_id"]))
        if unknown:
            raise CnnatlasError(
                f"explain.images.ids: {unknown[:10]} are not image_ids of the manifest "
                f"(0..{len(predictions) - 1})"
            )
        out = predictions[predictions["image_id"].isin(ids)][cols].copy()
        out["reason"] = "listed"
        return out.sort_values("image_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    parts = []
    for label in sorted(predictions["label"].unique()):
        rows = predictions[predictions["label"] == label]
        for correct, n in ((True, correct_per_class), (False, wrong_per_class)):
            pool = rows[rows["correct"] == correct]
            take = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
            part = pool.iloc[np.sort(take)][cols].copy()
            part["reason"] = "correct" if correct else "misclassified"
            parts.append(part)
    out = pd.concat(parts).sort_values("image_id").reset_index(drop=True)
    log.info("selected %d images (%d misclassified)", len(out), (~out["correct"]).sum())
    return out


def sample_images(
    predictions: pd.DataFrame, max_images: int | None, seed: int
) -> pd.DataFrame:
    """At most `max_images` rows, as many per true class as possible (seeded), by image_id.

    Classes take turns, each drawing its images in an order shuffled by
    `numpy.random.default_rng(seed)`; None or a larger number keeps every row.
    """
    if max_images is None or max_images >= len(predictions):
        return predictions.sort_values("image_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    queues = [
        list(rng.permutation(g.index.to_numpy()))
        for _, g in predictions.groupby("label", sort=True)
    ]
    take: list[int] = []
    while len(take) < max_images:
        for q in queues:
            if q and len(take) < max_images:
                take.append(q.pop(0))
    return predictions.loc[take].sort_values("image_id").reset_index(drop=True)


def bound_images(
    predictions: pd.DataFrame,
    max_images: int | None,
    seed: int,
    on_cpu: bool,
    key: str,
    every_device: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The images an explanation job runs over: on the CPU (on every device with
    `every_device`) at most `max_images` (`sample_images`), on a GPU every one. Returns
    them with the Parquet metadata {"cnnatlas.images": "k of N images ..."} that says
    which (also logged); `key` is the config key of the bound."""
    bounded = on_cpu or every_device
    sample = sample_images(predictions, max_images if bounded else None, seed)
    note = f"{len(sample)} of {len(predictions)} images"
    level = logging.INFO
    if len(sample) < len(predictions):
        where = "" if every_device else " on the CPU"
        note += f" (class-stratified sample, seed {seed}: {key}{where})"
        level = logging.WARNING  # the stage's results hold a sample only
    log.log(level, "running over %s", note)
    return sample, {"cnnatlas.images": note}


def read_classes(path: str | Path) -> list[str]:
    """The class list stored in a manifest's or predictions' Parquet metadata."""
    return json.loads(read_parquet_meta(path).get("cnnatlas.classes", "[]"))


def write_selection(
    predictions: str | Path,
    out: str | Path,
    ids: Sequence[int] | None = None,
    *,
    correct_per_class: int,
    wrong_per_class: int,
    seed: int,
) -> pd.DataFrame:
    """Select images from a predictions Parquet and write them (with its class list) to `out`."""
    sel = select_images(
        read_predictions(predictions, COLUMNS + TITLES + ["confidence", "correct"]),
        ids,
        correct_per_class=correct_per_class,
        wrong_per_class=wrong_per_class,
        seed=seed,
    )
    if sel.empty:
        raise CnnatlasError(
            f"{predictions}: no image selected; set explain.images.ids or raise "
            "explain.images.correct_per_class"
        )
    classes = json.dumps(read_classes(predictions))
    write_parquet(sel, out, meta={"cnnatlas.classes": classes})
    return sel
