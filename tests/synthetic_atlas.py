"""A synthetic run for the atlas tests: the figures tests' run (real images, manifest,
predictions, a 2-D map with a `<b>cls</b>` class and an `<img src=x onerror=...>` file)
plus two checkpoints, features and their feature-space neighbours, a second map, an
aligned pair of maps, Grad-CAM overlays of two images and the thumbnail sheets."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from cnnatlas import thumbnails
from cnnatlas.io import write_parquet
from cnnatlas.metrics import feature_neighbors
from cnnatlas.viewer import write_atlas
from cnnatlas.viewer.atlas import read_block
from PIL import Image

from benchmarks.synthetic_maps import write_run

CKPTS = ("early", "late")
GRADCAM_IDS = (0, 5)


def atlas_header(page: str) -> dict:
    """The data header of an atlas page's text (checked to hold no markup character)."""
    data = re.search(r'id="cnnatlas-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    return json.loads(data)


def atlas_block(header: dict, ref: dict):
    """One block of the header: a list (json) or a numpy array."""
    return read_block(header, ref)


def _map(xy: np.ndarray, path: Path) -> Path:
    df = pd.DataFrame({"image_id": np.arange(len(xy)), "x": xy[:, 0], "y": xy[:, 1]})
    write_parquet(df.astype({"x": np.float32, "y": np.float32}), path)
    return path


def write_atlas_run(root: Path, per_class: int = 8, seed: int = 0) -> dict:
    """Write the run and its atlas (root/atlas.html); returns the paths and inputs."""
    run = write_run(root, per_class=per_class, dims=(2,), xss=True, seed=seed)
    rng = np.random.default_rng(seed)
    emb = pd.read_parquet(run["embedding2"])
    n = len(emb)
    labels = pd.read_parquet(run["manifest"])["label"].to_numpy()
    sheets = root / "thumbnails"
    thumbnails.write_thumbnail_sheets(run["manifest"], sheets, 16)
    maps, neighbors, explain, predictions = [], [], [], {}
    for k, ckpt in enumerate(CKPTS):
        predictions[f"net/{ckpt}"] = run["predictions"]
        feats = rng.normal(size=(n, 6)) + 3 * np.eye(6)[labels % 6]
        np.save(root / f"{ckpt}-features.npy", feats.astype(np.float32))
        nb = root / f"{ckpt}-neighbors.npy"
        dist = root / f"{ckpt}-neighbor_distances.npy"
        feature_neighbors(
            root / f"{ckpt}-features.npy", nb, 5, distances_out=dist, seed=0
        )
        neighbors.append(
            {"model": "net", "ckpt": ckpt, "layer": "fc", "path": nb, "distances": dist}
        )
        xy = emb[["x", "y"]].to_numpy() if k == 0 else rng.normal(size=(n, 2)) * 4
        for method, perp in (("tsne", 30.0), ("pca", 0.0)):
            path = _map(
                xy if method == "tsne" else xy[:, ::-1],
                root / f"{ckpt}-{method}.parquet",
            )
            maps.append({"model": "net", "ckpt": ckpt, "layer": "fc", "method": method,
                         "perplexity": perp, "seed": 0, "embedding": path})  # fmt: skip
        cam = root / ckpt / "gradcam"
        cam.mkdir(parents=True)
        for i in GRADCAM_IDS:
            Image.new("RGB", (20, 20), (200, 30 * k, 0)).save(cam / f"{i:05d}.png")
        explain.append({"model": "net", "ckpt": ckpt, "dir": cam})
    aligned = root / "aligned"
    aligned.mkdir()
    for k, ckpt in enumerate(CKPTS):
        _map(emb[["x", "y"]].to_numpy() + k, aligned / f"{ckpt}.parquet")
    evolution = [{"model": "net", "layer": "fc", "method": "tsne", "perplexity": 30,
                  "seed": 0, "ckpts": list(CKPTS), "dir": aligned}]  # fmt: skip
    inputs = {
        "manifest": run["manifest"],
        "predictions": predictions,
        "maps": maps,
        "neighbors": neighbors,
        "evolution": evolution,
        "explain": explain,
        "sheets": sheets,
        "links": [{"label": "3-D map", "href": "net/figures/map3d.html"}],
        "title": "atlas of <b>cls</b>",
    }
    atlas = root / "atlas.html"
    size = write_atlas(atlas, **inputs)
    return {**run, "atlas": atlas, "size": size, "inputs": inputs, "n": n}
