"""t-SNE maps (openTSNE), swept over perplexity and seed.

Per layer, the PCA pre-step, the PCA that initialises every map and the kNN graph are
computed once: the graph for the largest perplexity, re-calibrated for each smaller one
(`set_perplexity`). Only the optimisation runs per (dim, perplexity, seed).

Gradients: openTSNE's FFT interpolation exists in 1-D/2-D only, so 3-D maps use
openTSNE's own Barnes-Hut (its space-partitioning tree handles 3-D). 2-D maps use
`negative_gradient_method` (`auto`: Barnes-Hut below 10,000 points, FFT above).

Reuse (e.g. checkpoint-aligned maps): `prepare_features` -> `tsne_affinities` ->
`fit_tsne(affinities, initialization=rescale(previous_map), ...)`, or `tsne_map` for all
of it in one call.
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnatlas.maps import MapMethod, MapSpec
from cnnatlas.reduce import (
    SHARED_STATE,
    FeatureError,
    prepare_features,
    procrustes_align,
    versions,
)

if TYPE_CHECKING:
    from openTSNE.affinity import PerplexityBasedNN

__all__ = [
    "METHOD",
    "FIT_KEYS",
    "fit_options",
    "check_perplexity",
    "tsne_affinities",
    "pca_initialization",
    "rescale",
    "fit_tsne",
    "tsne_map",
    "tsne_maps",
    "tsne_evolution",
]

log = logging.getLogger(__name__)

# The options of fit_tsne (the optimisation); the others shape the affinities.
FIT_KEYS = (
    "n_iter",
    "early_exaggeration_iter",
    "early_exaggeration",
    "exaggeration",
    "learning_rate",
    "negative_gradient_method",
)


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


def tsne_affinities(
    x: np.ndarray,
    perplexity: float,
    metric: str = "euclidean",
    neighbors: str = "auto",
    n_jobs: int = 1,
    random_state: int = SHARED_STATE,
) -> "PerplexityBasedNN":
    """openTSNE affinities of prepared features; `set_perplexity(p)` re-calibrates for p <= perplexity."""
    from openTSNE.affinity import PerplexityBasedNN

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
    from openTSNE import initialization
    from sklearn.decomposition import PCA

    coords = PCA(n_components=dim, random_state=SHARED_STATE).fit_transform(x)
    return initialization.rescale(coords)


def rescale(coords: np.ndarray) -> np.ndarray:
    """An existing map rescaled to t-SNE's initial scale (openTSNE.initialization.rescale)."""
    from openTSNE import initialization

    return initialization.rescale(np.asarray(coords, dtype=np.float64))


def _jitter(coords: np.ndarray, seed: int) -> np.ndarray:
    from openTSNE import initialization

    return initialization.jitter(coords, random_state=seed)


def _gradient_method(dim: int, requested: str) -> str:
    return "bh" if dim > 2 else requested


def fit_tsne(
    affinities: "PerplexityBasedNN",
    initialization: np.ndarray,
    *,
    n_iter: int,
    early_exaggeration_iter: int,
    early_exaggeration: float,
    exaggeration: float | None,
    learning_rate: float | str,
    negative_gradient_method: str,
    n_jobs: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Optimise one t-SNE map from `affinities` and an initial layout [N, dim].

    The two phases of openTSNE's TSNE.fit (momentum 0.8 in both): `early_exaggeration_iter`
    steps at `early_exaggeration`, then `n_iter` steps at `exaggeration` (set
    `early_exaggeration_iter=0` to continue from an already laid-out map); the options
    are `fit_options(maps.tsne)`. Returns (coordinates float32 [N, dim], final KL divergence).
    """
    from openTSNE import TSNEEmbedding

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


def fit_options(options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The optimisation options of `fit_tsne` from a `maps.tsne` config (defaults filled)."""
    opts = METHOD.options(options)
    return {k: opts[k] for k in FIT_KEYS}


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
    opts = METHOD.options(options)
    xp = prepare_features(x, opts["standardize"], opts["pca_components"])
    p = check_perplexity(perplexity, len(xp), policy=opts["perplexity_too_large"])
    aff = tsne_affinities(xp, p, opts["metric"], opts["neighbors"], n_jobs)
    if init is None:
        init = _jitter(pca_initialization(xp, dim), seed)
    return fit_tsne(aff, init, n_jobs=n_jobs, seed=seed, **fit_options(opts))


def tsne_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any],
    n_jobs: int = 1,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """Every t-SNE map of a sweep, sharing the prepared features, kNN graph and PCA init.

    `options`: maps.tsne with its defaults. Yields (spec, coordinates, parameters) in
    order of decreasing perplexity.
    """
    opts = dict(options)
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
        init = _jitter(inits[spec.dim], spec.seed)
        coords, kl = fit_tsne(
            aff, init, n_jobs=n_jobs, seed=spec.seed, **fit_options(opts)
        )
        log.info("t-SNE %s: KL divergence %.4f", spec, kl)
        params = {
            **opts,
            "effective_perplexity": eff[spec.perplexity],
            "gradient": _gradient_method(spec.dim, opts["negative_gradient_method"]),
            "input_dims": int(xp.shape[1]),
            "kl_divergence": kl,
            "n_jobs": n_jobs,
            "versions": versions(*METHOD.packages),
        }
        yield spec, coords, params


def tsne_evolution(
    features: Sequence[np.ndarray],
    perplexity: float = 30,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """2-D t-SNE maps of features [N, D] per checkpoint: (aligned, independent).

    Both series share each checkpoint's affinities and the first map; the aligned map of
    checkpoint k+1 starts from `rescale(aligned map k)` and is then rotated onto it
    (`procrustes_align`), the independent one starts from PCA and is left as it is.
    """
    opts = METHOD.options(options)
    fit = fit_options(opts)
    names = list(names or [f"checkpoint {k}" for k in range(len(features))])
    aligned: list[np.ndarray] = []
    independent: list[np.ndarray] = []
    for name, x in zip(names, features, strict=True):
        xp = prepare_features(x, opts["standardize"], opts["pca_components"])
        p = check_perplexity(perplexity, len(xp), name, opts["perplexity_too_large"])
        aff = tsne_affinities(xp, p, opts["metric"], opts["neighbors"], n_jobs)
        pca_init = _jitter(pca_initialization(xp, 2), seed)
        own, _ = fit_tsne(aff, pca_init, n_jobs=n_jobs, seed=seed, **fit)
        independent.append(own)
        if aligned:
            init = rescale(aligned[-1])
            own, kl = fit_tsne(aff, init, n_jobs=n_jobs, seed=seed, **fit)
            log.info("%s: t-SNE from the previous map, KL %.4f", name, kl)
            # Early exaggeration can still turn or mirror the layout as a whole; t-SNE
            # is blind to rotations, so undoing one changes nothing but the view.
            own = procrustes_align(aligned[-1], own)
        aligned.append(own)
    return aligned, independent


METHOD = MapMethod(
    name="tsne",
    title="t-SNE",
    axes=("perplexity", "seed"),
    packages={"openTSNE": ">=1.0", "scikit-learn": ">=1.4", "numpy": ">=1.26"},
    fit=tsne_maps,
    evolve=tsne_evolution,
)
