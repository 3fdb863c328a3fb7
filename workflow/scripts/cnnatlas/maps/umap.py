"""UMAP maps (umap-learn), swept over seeds; seeded runs are single-threaded.

umap-learn compiles its numba code in every new process (~30 s), so the maps of every
layer are made in one job (`batched`).
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from cnnatlas.maps import MapMethod, MapSpec
from cnnatlas.reduce import prepare_features, versions

__all__ = ["METHOD", "umap_maps"]

log = logging.getLogger(__name__)


def umap_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any],
    n_jobs: int = 1,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """UMAP maps of features [N, D] (`options`: maps.umap with its defaults)."""
    import umap  # numba compilation on first use: import only when needed

    opts = dict(options)
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
            "versions": versions(*METHOD.packages),
        }
        yield spec, coords, params


METHOD = MapMethod(
    name="umap",
    title="UMAP",
    axes=("seed",),
    packages={"umap-learn": ">=0.5", "numpy": ">=1.26"},
    fit=umap_maps,
    batched=True,
)
