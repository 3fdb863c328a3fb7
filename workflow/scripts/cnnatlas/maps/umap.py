"""UMAP maps (umap-learn), swept over seeds; seeded runs are single-threaded.

umap-learn compiles its numba code in every new process (~30 s), so the maps of every
layer are made in one job (`batched`).

Large maps: above `max_points` points, a map is fitted on a seeded class-stratified
subsample of that many and the other points are placed into it by the fitted model's
`transform`, in fixed blocks of rows (`cnnatlas.maps.toolbox.neighbor_maps`); the
metadata's `subsample` says so. On 2-D maps of augmented digits (benchmarks/README.md,
`maps_scale.py large-2d`) a whole map cost 15x the CPU at 2.5x the points (100,000 ->
250,000) and its 10-NN accuracy fell from 0.95 to 0.68; fitted on 25,000, the placed
points kept 0.95 at either size, for 0.41x and 0.04x the whole map's CPU. Fitting
100,000 of 250,000 placed less accurately (0.94), hence the default of 25,000.
"""

from functools import partial

from cnnatlas.maps import FitJob, MapMethod, Maps
from cnnatlas.maps.toolbox import neighbor_maps

__all__ = ["METHOD", "umap_maps"]


def umap_maps(job: FitJob) -> Maps:
    """UMAP maps of `job.x` (options: maps.umap); above `max_points` points each is
    fitted on a stratified subsample and the rest placed by `UMAP.transform`."""
    import umap  # numba compilation on first use: import only when needed

    opts = job.options
    build = partial(
        umap.UMAP, min_dist=opts["min_dist"], metric=opts["metric"], n_jobs=1
    )
    return neighbor_maps(job, build, METHOD.packages, "umap-learn UMAP.transform")


METHOD = MapMethod(
    name="umap",
    title="UMAP",
    axes=("seed",),
    packages={"umap-learn": ">=0.5", "numpy": ">=1.26"},
    fit=umap_maps,
    batched=True,
)
