"""UMAP maps (umap-learn), swept over seeds; seeded runs are single-threaded.

umap-learn compiles its numba code in every new process (~30 s), so the maps of every
layer are made in one job (`batched`).
"""

from functools import partial

from cnnatlas.maps import FitJob, MapMethod, Maps
from cnnatlas.maps.toolbox import neighbor_maps

__all__ = ["METHOD", "umap_maps"]


def umap_maps(job: FitJob) -> Maps:
    """UMAP maps of `job.x` (options: maps.umap)."""
    import umap  # numba compilation on first use: import only when needed

    opts = job.options
    build = partial(
        umap.UMAP, min_dist=opts["min_dist"], metric=opts["metric"], n_jobs=1
    )
    return neighbor_maps(job, build, METHOD.packages)


METHOD = MapMethod(
    name="umap",
    title="UMAP",
    axes=("seed",),
    packages={"umap-learn": ">=0.5", "numpy": ">=1.26"},
    fit=umap_maps,
    batched=True,
)
