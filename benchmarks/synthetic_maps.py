"""A synthetic run for the figures tests and benchmarks/outputs.py: real images,
manifest, predictions and embeddings.

The manifest comes from a CSV through the real `build_manifest` (so a class may be named
`<b>cls</b>`, which no folder can be), with a `domain` metadata column; predictions come
from the real `predictions_table` on seeded logits; embeddings are seeded Gaussian blobs
per class, written like the maps stage writes them.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from cnnatlas.data import build_manifest
from cnnatlas.extract import predictions_table
from cnnatlas.io import read_parquet_meta, write_parquet
from PIL import Image

CLASSES = ("circle", "square", "stripes")


def draw(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy RGB image of one of three easy shapes, so class structure is learnable."""
    yy, xx = np.mgrid[:size, :size] / size
    cx, cy = rng.uniform(0.35, 0.65, 2)
    if kind == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < 0.08
    elif kind == "square":
        mask = (abs(xx - cx) < 0.25) & (abs(yy - cy) < 0.25)
    else:
        mask = (np.floor(xx * 6 + rng.uniform(0, 1)) % 2) == 0
    img = rng.normal(40, 10, (size, size, 3))
    img[mask] = rng.normal([200, 120, 60], 10, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


XSS_FILE = "<img src=x onerror=alert(1)>.png"
XSS_CLASS = "<b>cls</b>"


def write_images(root: Path, per_class: int, xss: bool, seed: int = 0) -> pd.DataFrame:
    """Images under root/ and the CSV rows (path, label, domain) describing them."""
    rng = np.random.default_rng(seed)
    classes = [*CLASSES, XSS_CLASS] if xss else list(CLASSES)
    rows = []
    for k, name in enumerate(classes):
        folder = root / f"class{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            kind = CLASSES[k % len(CLASSES)]
            file = (
                XSS_FILE
                if (xss and k == len(classes) - 1 and i == 0)
                else f"img_{i:02d}.png"
            )
            Image.fromarray(draw(kind, 24, rng)).save(folder / file)
            rows.append((f"class{k}/{file}", name, ["source", "target"][i % 2]))
    return pd.DataFrame(rows, columns=["file", "diagnosis", "domain"])


def write_run(
    root: Path, per_class: int = 8, dims=(2,), xss: bool = False, seed: int = 0
) -> dict:
    """Paths of a synthetic run under root: manifest, predictions, one embedding per dim."""
    table = write_images(root / "images", per_class, xss, seed)
    csv = root / "images" / "manifest.csv"
    table.to_csv(csv, index=False)
    classes = list(dict.fromkeys(table["diagnosis"]))
    manifest = root / "manifest.parquet"
    man = build_manifest(
        {
            "kind": "manifest",
            "path": str(csv),
            "path_column": "file",
            "label_column": "diagnosis",
            "classes": classes,
        },
        manifest,
    )
    rng = np.random.default_rng(seed)
    n, c = len(man), len(classes)
    labels = man["label"].to_numpy()
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    classes = json.loads(read_parquet_meta(manifest)["cnnatlas.classes"])
    predictions = root / "predictions.parquet"
    write_parquet(
        predictions_table(man, logits, classes, topk=2),
        predictions,
        meta={"cnnatlas.classes": json.dumps(classes)},
    )
    out = {
        "root": root,
        "manifest": manifest,
        "predictions": predictions,
        "classes": classes,
    }
    for dim in dims:
        centres = rng.normal(scale=6, size=(c, dim))
        xyz = centres[labels] + rng.normal(size=(n, dim))
        emb = pd.DataFrame({"image_id": man["image_id"].to_numpy()})
        for axis, name in enumerate("xyz"[:dim]):
            emb[name] = xyz[:, axis].astype(np.float32)
        out[f"embedding{dim}"] = root / f"tsne-{dim}d-p30-s0.parquet"
        write_parquet(emb, out[f"embedding{dim}"], meta={"cnnatlas.method": "tsne"})
    return out
