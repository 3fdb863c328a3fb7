"""PCA maps (scikit-learn): deterministic, so no sweep axis (files `pca-{dim}d-p0-s0`).

One PCA for the largest dim; smaller dims are its first components. The explained
variance goes into each map's metadata. The PCA is exact and memory-flat
(`cnnatlas.maps.toolbox.principal_components`: covariance over chunks of rows), so a
50,000 x 2,048 layer is never copied to float64 whole.
"""

import numpy as np

from cnnatlas.maps import EvolveJob, FitJob, MapMethod, Maps, MapSpec
from cnnatlas.maps.toolbox import principal_components, procrustes_align, versions

__all__ = ["METHOD", "pca_maps", "pca_evolution"]


def pca_maps(job: FitJob) -> Maps:
    """PCA maps of `job.x` (options: maps.pca)."""
    opts, specs, x = dict(job.options), job.specs, job.x
    k = min(max(s.dim for s in specs), *x.shape)
    coords, ratios = principal_components(x, k, opts["standardize"])
    coords = coords.astype(np.float32)
    for spec in specs:
        out = np.zeros((len(x), spec.dim), np.float32)
        out[:, : min(k, spec.dim)] = coords[:, : spec.dim]
        ratio = [float(r) for r in ratios[: spec.dim]]
        params = {
            **opts,
            "explained_variance_ratio": ratio,
            "explained_variance_total": float(sum(ratio)),
            "solver": "covariance_eigh_chunked",
            "versions": versions(*METHOD.packages),
        }
        yield spec, out, params


def pca_evolution(job: EvolveJob) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """2-D PCA maps per checkpoint: (Procrustes-aligned to the previous, as computed).

    PCA has no perplexity or seed; the job's are not used.
    """
    fits = (pca_maps(FitJob(x, [MapSpec(2)], job.options)) for x in job.features)
    independent = [next(maps)[1] for maps in fits]
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
