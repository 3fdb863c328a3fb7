"""PCA maps (scikit-learn): deterministic, so no sweep axis (files `pca-{dim}d-p0-s0`).

One PCA for the largest dim; smaller dims are its first components. The explained
variance goes into each map's metadata.
"""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from cnnatlas.maps import MapMethod, MapSpec
from cnnatlas.reduce import SHARED_STATE, prepare_features, procrustes_align, versions

__all__ = ["METHOD", "pca_maps", "pca_evolution"]


def pca_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any],
    n_jobs: int = 1,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """PCA maps of features [N, D] (`options`: maps.pca with its defaults)."""
    from sklearn.decomposition import PCA

    opts = dict(options)
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
            "versions": versions(*METHOD.packages),
        }
        yield spec, out, params


def pca_evolution(
    features: Sequence[np.ndarray],
    perplexity: float = 0,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    names: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """2-D PCA maps per checkpoint: (Procrustes-aligned to the previous, as computed).

    PCA has no perplexity or seed; the arguments keep the registry's `evolve` signature.
    """
    opts = METHOD.options(options)
    independent = [next(pca_maps(x, [MapSpec(2)], opts))[1] for x in features]
    aligned = independent[:1]
    for coords in independent[1:]:
        aligned.append(procrustes_align(aligned[-1], coords))
    return aligned, independent


METHOD = MapMethod(
    name="pca",
    title="PCA",
    axes=(),
    packages={"scikit-learn": ">=1.4", "numpy": ">=1.26"},
    fit=pca_maps,
    advice="PCA is linear; a t-SNE or UMAP map keeps more",
    evolve=pca_evolution,
)
