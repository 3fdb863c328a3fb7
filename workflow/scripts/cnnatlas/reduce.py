"""Low-dimensional maps of one layer's features: t-SNE (openTSNE), PCA and UMAP.

Work that does not depend on the seed is done once per layer: the standardisation and the
PCA pre-step, the PCA that initialises t-SNE, and the t-SNE kNN graph, built once for the
largest perplexity and re-calibrated for each smaller one. Only the optimisation runs per
(dim, perplexity, seed).

t-SNE gradients: openTSNE's FFT interpolation exists in 1-D/2-D only, so 3-D maps use
openTSNE's own Barnes-Hut (its space-partitioning tree handles 3-D). 2-D maps use
`negative_gradient_method` (`auto`: Barnes-Hut below 10,000 points, FFT above).

Reuse (e.g. checkpoint-aligned maps): `prepare_features` -> `tsne_affinities` ->
`fit_tsne(affinities, initialization=rescale(previous_map), ...)`, or `tsne_map` for all
of it in one call.
"""

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openTSNE import TSNEEmbedding, initialization
from openTSNE.affinity import PerplexityBasedNN
from sklearn.decomposition import PCA

from cnnatlas.errors import CnnatlasError
from cnnatlas.io import write_parquet

__all__ = [
    "FeatureError",
    "TSNE_DEFAULTS",
    "TSNE_FIT_KEYS",
    "tsne_fit_options",
    "UMAP_DEFAULTS",
    "PCA_DEFAULTS",
    "MapSpec",
    "load_features",
    "check_features",
    "check_perplexity",
    "prepare_features",
    "tsne_affinities",
    "pca_initialization",
    "rescale",
    "fit_tsne",
    "tsne_map",
    "tsne_maps",
    "pca_maps",
    "umap_maps",
    "embedding_frame",
    "write_embedding",
    "write_maps",
]

log = logging.getLogger(__name__)

META_KEY = "cnnatlas.map"
# Seed-independent steps (PCA pre-step, kNN graph) use this fixed random state, so that
# every seed of a sweep shares them; the map's seed drives the initialisation's jitter.
SHARED_STATE = 0

# The options of fit_tsne (the optimisation); the others shape the affinities.
TSNE_FIT_KEYS = (
    "n_iter",
    "early_exaggeration_iter",
    "early_exaggeration",
    "exaggeration",
    "learning_rate",
    "negative_gradient_method",
)
TSNE_DEFAULTS: dict[str, Any] = {
    "metric": "euclidean",
    "standardize": False,
    "pca_components": 50,
    "neighbors": "auto",
    "n_iter": 500,
    "early_exaggeration_iter": 250,
    "early_exaggeration": 12,
    "exaggeration": None,
    "learning_rate": "auto",
    "negative_gradient_method": "auto",
    "perplexity_too_large": "error",
}
PCA_DEFAULTS: dict[str, Any] = {"standardize": False}
UMAP_DEFAULTS: dict[str, Any] = {
    "n_neighbors": 15,
    "min_dist": 0.1,
    "metric": "euclidean",
    "standardize": False,
    "pca_components": 50,
}


class FeatureError(CnnatlasError):
    """A layer's features cannot be mapped (non-finite values, too few points)."""


@dataclass(frozen=True)
class MapSpec:
    """One map of a sweep: its dimension, perplexity (t-SNE only) and seed."""

    dim: int
    perplexity: float = 0.0
    seed: int = 0


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


def check_perplexity(
    perplexity: float, n: int, name: str = "features", policy: str = "error"
) -> float:
    """The perplexity to use for `n` points: t-SNE needs 3 x perplexity < n.

    Too large: raise FeatureError naming both numbers (`policy="error"`), or return the
    largest usable value with a warning (`policy="clamp"`).
    """
    limit = (n - 1) / 3
    if perplexity <= limit:
        return float(perplexity)
    msg = (
        f"{name}: perplexity {perplexity:g} is too large for {n} points "
        f"(t-SNE needs 3 x perplexity < N, at most {limit:.4g} here)"
    )
    if policy != "clamp":
        raise FeatureError(
            f"{msg}; lower maps.perplexities or set "
            "maps.tsne.perplexity_too_large: clamp"
        )
    log.warning("%s; clamped to %.4g", msg, limit)
    return float(limit)


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
        x = PCA(n_components=k, random_state=random_state).fit_transform(x)
    return np.ascontiguousarray(x)


def tsne_affinities(
    x: np.ndarray,
    perplexity: float,
    metric: str = "euclidean",
    neighbors: str = "auto",
    n_jobs: int = 1,
    random_state: int = SHARED_STATE,
) -> PerplexityBasedNN:
    """openTSNE affinities of prepared features; `set_perplexity(p)` re-calibrates for p <= perplexity."""
    return PerplexityBasedNN(
        x,
        perplexity=perplexity,
        method=neighbors,
        metric=metric,
        n_jobs=n_jobs,
        random_state=random_state,
    )


def pca_initialization(x: np.ndarray, dim: int) -> np.ndarray:
    """The first `dim` principal components of `x`, rescaled for t-SNE (std 1e-4), unjittered."""
    coords = PCA(n_components=dim, random_state=SHARED_STATE).fit_transform(x)
    return initialization.rescale(coords)


def rescale(coords: np.ndarray) -> np.ndarray:
    """An existing map rescaled to t-SNE's initial scale (openTSNE.initialization.rescale)."""
    return initialization.rescale(np.asarray(coords, dtype=np.float64))


def _gradient_method(dim: int, requested: str) -> str:
    return "bh" if dim > 2 else requested


def fit_tsne(
    affinities: PerplexityBasedNN,
    initialization: np.ndarray,
    *,
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
    early_exaggeration: float = 12,
    exaggeration: float | None = None,
    learning_rate: float | str = "auto",
    negative_gradient_method: str = "auto",
    n_jobs: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Optimise one t-SNE map from `affinities` and an initial layout [N, dim].

    The two phases of openTSNE's TSNE.fit (momentum 0.8 in both): `early_exaggeration_iter`
    steps at `early_exaggeration`, then `n_iter` steps at `exaggeration` (set
    `early_exaggeration_iter=0` to continue from an already laid-out map). Returns (coordinates float32 [N, dim], final KL divergence).
    """
    init = np.ascontiguousarray(initialization, dtype=np.float64)
    emb = TSNEEmbedding(
        init,
        affinities,
        negative_gradient_method=_gradient_method(
            init.shape[1], negative_gradient_method
        ),
        learning_rate=learning_rate,
        n_jobs=n_jobs,
        random_state=seed,
    )
    if early_exaggeration_iter > 0:
        emb = emb.optimize(
            n_iter=early_exaggeration_iter,
            exaggeration=early_exaggeration,
            momentum=0.8,
        )
    emb = emb.optimize(n_iter=n_iter, exaggeration=exaggeration, momentum=0.8)
    return np.asarray(emb, dtype=np.float32), float(emb.kl_divergence)


def tsne_fit_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The optimisation options of `fit_tsne` from a `maps.tsne` config (defaults filled)."""
    opts = {**TSNE_DEFAULTS, **options}
    return {k: opts[k] for k in TSNE_FIT_KEYS}


def tsne_map(
    x: np.ndarray,
    dim: int = 2,
    perplexity: float = 30,
    seed: int = 0,
    init: np.ndarray | None = None,
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
) -> tuple[np.ndarray, float]:
    """One t-SNE map of raw features [N, D]: prepare, affinities, PCA (or given) init, fit.

    `init` (e.g. `rescale(previous_map)`) replaces the jittered PCA initialisation.
    Returns (coordinates float32 [N, dim], KL divergence).
    """
    opts = {**TSNE_DEFAULTS, **(options or {})}
    xp = prepare_features(x, opts["standardize"], opts["pca_components"])
    p = check_perplexity(perplexity, len(xp), policy=opts["perplexity_too_large"])
    aff = tsne_affinities(xp, p, opts["metric"], opts["neighbors"], n_jobs)
    if init is None:
        init = initialization.jitter(pca_initialization(xp, dim), random_state=seed)
    return fit_tsne(aff, init, n_jobs=n_jobs, seed=seed, **tsne_fit_options(opts))


def _versions(*packages: str) -> dict[str, str]:
    return {p: version(p) for p in packages}


def tsne_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """Every t-SNE map of a sweep, sharing the prepared features, kNN graph and PCA init.

    Yields (spec, coordinates, parameters) in order of decreasing perplexity.
    """
    opts = {**TSNE_DEFAULTS, **(options or {})}
    xp = prepare_features(x, opts["standardize"], opts["pca_components"])
    policy = opts["perplexity_too_large"]
    eff = {
        s.perplexity: check_perplexity(s.perplexity, len(xp), name, policy)
        for s in specs
    }
    aff = tsne_affinities(
        xp, max(eff.values()), opts["metric"], opts["neighbors"], n_jobs
    )
    inits = {d: pca_initialization(xp, d) for d in sorted({s.dim for s in specs})}
    ordered = sorted(specs, key=lambda s: (-s.perplexity, s.dim, s.seed))
    for spec in ordered:
        aff.set_perplexity(eff[spec.perplexity])
        init = initialization.jitter(inits[spec.dim], random_state=spec.seed)
        coords, kl = fit_tsne(
            aff, init, n_jobs=n_jobs, seed=spec.seed, **tsne_fit_options(opts)
        )
        log.info("t-SNE %s: KL divergence %.4f", spec, kl)
        params = {
            **opts,
            "effective_perplexity": eff[spec.perplexity],
            "gradient": _gradient_method(spec.dim, opts["negative_gradient_method"]),
            "input_dims": int(xp.shape[1]),
            "kl_divergence": kl,
            "n_jobs": n_jobs,
            "versions": _versions("openTSNE", "scikit-learn", "numpy"),
        }
        yield spec, coords, params


def pca_maps(
    x: np.ndarray, specs: Sequence[MapSpec], options: Mapping[str, Any] | None = None
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """PCA maps (one PCA for the largest dim; smaller dims are its first components)."""
    opts = {**PCA_DEFAULTS, **(options or {})}
    xp = prepare_features(x, opts["standardize"], pca_components=None)
    k = min(max(s.dim for s in specs), *xp.shape)
    pca = PCA(n_components=k, random_state=SHARED_STATE).fit(xp)
    coords = pca.transform(xp).astype(np.float32)
    for spec in specs:
        out = np.zeros((len(xp), spec.dim), np.float32)
        out[:, : min(k, spec.dim)] = coords[:, : spec.dim]
        ratio = [float(r) for r in pca.explained_variance_ratio_[: spec.dim]]
        params = {
            **opts,
            "explained_variance_ratio": ratio,
            "explained_variance_total": float(sum(ratio)),
            "versions": _versions("scikit-learn", "numpy"),
        }
        yield spec, out, params


def umap_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any] | None = None,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """UMAP maps (umap-learn; seeded, hence single-threaded) of prepared features."""
    import umap  # numba compilation on first use: import only when needed

    opts = {**UMAP_DEFAULTS, **(options or {})}
    xp = prepare_features(x, opts["standardize"], opts["pca_components"])
    k = min(opts["n_neighbors"], len(xp) - 1)
    if k < opts["n_neighbors"]:
        log.warning(
            "%s: n_neighbors %d > N - 1; using %d", name, opts["n_neighbors"], k
        )
    for spec in specs:
        model = umap.UMAP(
            n_components=spec.dim,
            n_neighbors=k,
            min_dist=opts["min_dist"],
            metric=opts["metric"],
            random_state=spec.seed,
            n_jobs=1,
        )
        coords = model.fit_transform(xp).astype(np.float32)
        params = {
            **opts,
            "effective_n_neighbors": k,
            "versions": _versions("umap-learn", "numpy"),
        }
        yield spec, coords, params


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


_METHODS = {"tsne": tsne_maps, "pca": pca_maps, "umap": umap_maps}


def write_maps(
    features: str | Path,
    method: str,
    outputs: Mapping[MapSpec, str | Path],
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
) -> None:
    """Compute every map of one layer and method and write each to its output path."""
    x = load_features(features)
    log.info(
        "%s: %d points x %d features, %d %s maps",
        features,
        *x.shape,
        len(outputs),
        method,
    )
    specs = list(outputs)
    if method == "tsne":
        maps = tsne_maps(x, specs, options, n_jobs=n_jobs, name=str(features))
    elif method == "umap":
        maps = umap_maps(x, specs, options, name=str(features))
    elif method == "pca":
        maps = pca_maps(x, specs, options)
    else:
        raise ValueError(
            f"unknown method {method!r}; expected one of {sorted(_METHODS)}"
        )
    for spec, coords, params in maps:
        write_embedding(
            coords,
            outputs[spec],
            method,
            spec,
            {"features": Path(features).name, **params},
        )
