"""PaCMAP maps (pacmap: Wang et al., JMLR 2021), swept over seeds.

PaCMAP optimises neighbour, mid-near and further pairs in three phases; it keeps local
structure like UMAP and more of the global layout. Seeded runs are single-threaded
(pacmap then builds its kNN index on one thread). Like UMAP it compiles numba code in
every new process, so the maps of every layer are made in one job (`batched`). The
shared PCA pre-step (`pca_components`) replaces pacmap's own (`apply_pca=False`).
"""

from functools import partial
from typing import Any

from cnnatlas.maps import FitJob, MapMethod, Maps
from cnnatlas.maps.toolbox import neighbor_maps

__all__ = ["METHOD", "pacmap_maps"]


class _PaCMAP:
    """pacmap.PaCMAP with the configured initialisation passed to fit_transform."""

    def __init__(self, init: str, **kwargs: Any) -> None:
        import pacmap  # numba compilation on first use: import only when needed

        self.model, self.init = pacmap.PaCMAP(**kwargs), init

    def fit_transform(self, x: Any) -> Any:
        return self.model.fit_transform(x, init=self.init)


def pacmap_maps(job: FitJob) -> Maps:
    """PaCMAP maps of `job.x` (options: maps.pacmap)."""
    opts = job.options
    build = partial(
        _PaCMAP,
        opts["init"],
        MN_ratio=opts["MN_ratio"],
        FP_ratio=opts["FP_ratio"],
        distance=opts["distance"],
        lr=opts["lr"],
        num_iters=tuple(opts["num_iters"]),
        apply_pca=False,
    )
    return neighbor_maps(job, build, METHOD.packages)


METHOD = MapMethod(
    name="pacmap",
    title="PaCMAP",
    axes=("seed",),
    packages={"pacmap": ">=0.7", "numpy": ">=1.26"},
    fit=pacmap_maps,
    batched=True,
)
