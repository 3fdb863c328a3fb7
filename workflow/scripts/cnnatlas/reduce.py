"""What every map method shares: loading and checking a layer's features, the
standardisation and PCA pre-step, the contract's embedding table and its metadata, and
writing every map of one layer and method (the methods themselves: `cnnatlas.maps`).

Work that does not depend on the seed is done once per layer and method: the
standardisation and the PCA pre-step here, and e.g. t-SNE's kNN graph in
`cnnatlas.maps.tsne` (built once for the largest perplexity, re-calibrated for each
smaller one). Only the optimisation runs per (dim, perplexity, seed).
"""

import json
import logging
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnnatlas.errors import CnnatlasError
from cnnatlas.io import write_parquet
from cnnatlas.maps import MapSpec, get_method

__all__ = [
    "FeatureError",
    "SHARED_STATE",
    "load_features",
    "check_features",
    "prepare_features",
    "procrustes_align",
    "versions",
    "embedding_frame",
    "write_embedding",
    "write_maps",
]

log = logging.getLogger(__name__)

META_KEY = "cnnatlas.map"
# Seed-independent steps (PCA pre-step, kNN graph) use this fixed random state, so that
# every seed of a sweep shares them; the map's seed drives the initialisation's jitter.
SHARED_STATE = 0


class FeatureError(CnnatlasError):
    """A layer's features cannot be mapped (non-finite values, too few points)."""


def load_features(path: str | Path) -> np.ndarray:
    """A layer's `.npy` features [N, D], checked by `check_features`, as float32."""
    x = np.load(path, mmap_mode="r")
    return check_features(np.asarray(x, dtype=np.float32), name=str(path))


def check_features(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Raise on non-finite values; log zero-variance columns and duplicate rows.

    Returns `x` as a 2-D float32 array. `name` (the layer file) appears in every message.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise FeatureError(
            f"{name}: expected a 2-D array of at least 2 points, got shape {x.shape}"
        )
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        rows = int((~np.isfinite(x)).any(axis=1).sum())
        raise FeatureError(
            f"{name}: {bad} NaN/Inf values in {rows} of {x.shape[0]} rows; "
            "the model produced non-finite activations (check the checkpoint, the "
            "transform's mean/std, or disable autocast) and re-run the extraction"
        )
    const = int((np.ptp(x, axis=0) == 0).sum())
    if const:
        log.warning(
            "%s: %d of %d features are constant (zero variance); they carry no "
            "information and are kept as they are",
            name,
            const,
            x.shape[1],
        )
    dups = x.shape[0] - np.unique(x, axis=0).shape[0]
    if dups:
        log.warning("%s: %d duplicate points (identical feature rows)", name, dups)
    return x


def prepare_features(
    x: np.ndarray,
    standardize: bool = False,
    pca_components: int | None = 50,
    random_state: int = SHARED_STATE,
) -> np.ndarray:
    """Optionally z-score each feature, then PCA to `pca_components` when D exceeds it.

    Constant features stay 0 after standardisation (no division by zero).
    """
    x = np.asarray(x, dtype=np.float64)
    if standardize:
        sd = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    if pca_components and x.shape[1] > pca_components:
        k = min(pca_components, x.shape[0])
        log.info("PCA pre-step: %d -> %d dimensions", x.shape[1], k)
        from sklearn.decomposition import PCA  # 2 s to import: only when needed

        x = PCA(n_components=k, random_state=random_state).fit_transform(x)
    return np.ascontiguousarray(x)


def procrustes_align(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x` rotated/reflected (no scaling) to best match `reference`, on its centroid."""
    from scipy.linalg import orthogonal_procrustes

    xc = x - x.mean(axis=0)
    rotation, _ = orthogonal_procrustes(xc, reference - reference.mean(axis=0))
    return (xc @ rotation + reference.mean(axis=0)).astype(np.float32)


def versions(*packages: str) -> dict[str, str]:
    """{package: installed version}, recorded in each map's metadata."""
    return {p: version(p) for p in packages}


def embedding_frame(coords: np.ndarray) -> pd.DataFrame:
    """The contract's table: image_id (int64, row order), x, y[, z] (float32)."""
    coords = np.asarray(coords, dtype=np.float32)
    df = pd.DataFrame({"image_id": np.arange(len(coords), dtype=np.int64)})
    for i, axis in enumerate("xyz"[: coords.shape[1]]):
        df[axis] = coords[:, i]
    return df


def write_embedding(
    coords: np.ndarray, path: str | Path, method: str, spec: MapSpec, params: dict
) -> None:
    """Write one embedding Parquet; its parameters go to the metadata key `cnnatlas.map` (JSON)."""
    meta = {
        "method": method,
        "dim": spec.dim,
        "perplexity": spec.perplexity,
        "seed": spec.seed,
        **params,
    }
    write_parquet(
        embedding_frame(coords), path, {META_KEY: json.dumps(meta, sort_keys=True)}
    )


def write_maps(
    features: str | Path,
    method: str,
    outputs: Mapping[MapSpec, str | Path],
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
) -> None:
    """Compute every map of one layer and method and write each to its output path."""
    fit = get_method(method)
    x = load_features(features)
    log.info(
        "%s: %d points x %d features, %d %s maps",
        features,
        *x.shape,
        len(outputs),
        method,
    )
    for spec, coords, params in fit.maps(
        x, list(outputs), options, n_jobs, str(features)
    ):
        write_embedding(
            coords,
            outputs[spec],
            method,
            spec,
            {"features": Path(features).name, **params},
        )
