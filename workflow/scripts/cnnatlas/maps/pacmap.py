"""PaCMAP maps (pacmap: Wang et al., JMLR 2021), swept over seeds.

PaCMAP optimises neighbour, mid-near and further pairs in three phases; it keeps local
structure like UMAP and more of the global layout. Seeded runs are single-threaded
(pacmap then builds its kNN index on one thread). Like UMAP it compiles numba code in
every new process, so the maps of every layer are made in one job (`batched`). The
shared PCA pre-step (`pca_components`) replaces pacmap's own (`apply_pca=False`).
"""

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from cnnatlas.maps import MapMethod, MapSpec
from cnnatlas.reduce import prepare_features, versions

__all__ = ["METHOD", "pacmap_maps"]

log = logging.getLogger(__name__)


def pacmap_maps(
    x: np.ndarray,
    specs: Sequence[MapSpec],
    options: Mapping[str, Any],
    n_jobs: int = 1,
    name: str = "features",
) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
    """PaCMAP maps of features [N, D] (`options`: maps.pacmap with its defaults)."""
    import pacmap  # numba compilation on first use: import only when needed

    opts = dict(options)
    xp = prepare_features(x, opts["standardize"], opts["pca_components"])
    k = min(opts["n_neighbors"], len(xp) - 1)
    if k < opts["n_neighbors"]:
        log.warning(
            "%s: n_neighbors %d > N - 1; using %d", name, opts["n_neighbors"], k
        )
    for spec in specs:
        model = pacmap.PaCMAP(
            n_components=spec.dim,
            n_neighbors=k,
            MN_ratio=opts["MN_ratio"],
            FP_ratio=opts["FP_ratio"],
            distance=opts["distance"],
            lr=opts["lr"],
            num_iters=tuple(opts["num_iters"]),
            apply_pca=False,
            random_state=spec.seed,
        )
        coords = model.fit_transform(xp, init=opts["init"]).astype(np.float32)
        params = {
            **opts,
            "effective_n_neighbors": k,
            "versions": versions(*METHOD.packages),
        }
        yield spec, coords, params


METHOD = MapMethod(
    name="pacmap",
    title="PaCMAP",
    axes=("seed",),
    packages={"pacmap": ">=0.7", "numpy": ">=1.26"},
    fit=pacmap_maps,
    batched=True,
)
