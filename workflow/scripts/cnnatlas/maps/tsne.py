"""t-SNE maps (openTSNE), swept over perplexity and seed.

Per layer, the PCA pre-step, the PCA that initialises every map and the kNN graph are
computed once: the graph for the largest perplexity, re-calibrated for each smaller one
(`set_perplexity`). Only the optimisation runs per (dim, perplexity, seed).

Gradients: openTSNE's FFT interpolation exists in 1-D/2-D only, so 3-D maps use
openTSNE's own Barnes-Hut (its space-partitioning tree handles 3-D). 2-D maps use
`negative_gradient_method` (`auto`: Barnes-Hut below 10,000 points, FFT above).

Cores: openTSNE's output depends on its thread count (its Annoy kNN graph does, and its
threaded Barnes-Hut gradients differ from run to run), and 2 threads did not make a 2-D FFT
map of 10,000 points faster (21.0 vs 20.0 s wall, 27.3 vs 20.1 CPU-s, idle machine). So
openTSNE always runs on 1 thread, and a job given more cores fits its maps side by side,
one per core, in forked worker processes (`cnnatlas.maps.toolbox.side_by_side`): each map is
computed exactly as on one core, so the bytes never depend on the cores (with
`neighbors: pynndescent` the maps run one after the other: numba code cannot run in a
forked worker).

Large 3-D maps: above `max_points_3d` points, a 3-D map is fitted on a seeded
class-stratified subsample and the other points are placed into it with
`TSNEEmbedding.transform` (a whole 3-D Barnes-Hut map cost 2.3x the CPU of a 2-D FFT map
at 10,000 points, and Barnes-Hut grows as N log N; 1,500 fitted points: 0.47x, as faithful
as 2,500); the metadata's `subsample` says so. `max_points_2d` (off by default) does the
same for 2-D maps: at 100,000 points a map fitted on 25,000 and the rest placed cost 0.41x
the CPU of the whole FFT map, with a lower 10-NN accuracy (0.942 against 0.966).

Reuse (e.g. checkpoint-aligned maps): `prepare_features` -> `tsne_affinities` ->
`fit_tsne(affinities, initialization=rescale(previous_map), ...)`, or `tsne_map` for all
of it in one call.
"""

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnatlas.maps import EvolveJob, FitJob, MapMethod, Maps
from cnnatlas.maps.toolbox import (
    SHARED_STATE,
    FeatureError,
    prepare_features,
    procrustes_align,
    side_by_side,
    stratified_subsample,
    subsample_record,
    versions,
)

if TYPE_CHECKING:
    from openTSNE import TSNEEmbedding
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
    "subsampled_map",
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


def _gradient_method(dim: int, requested: str, n: int) -> str:
    """The gradient method a map gets: Barnes-Hut in 3-D; `auto` resolved as openTSNE
    does (Barnes-Hut below 10,000 points, FFT from there)."""
    if dim > 2:
        return "bh"
    if requested == "auto":
        return "bh" if n < 10_000 else "fft"
    return requested


def _embedding(
    affinities: "PerplexityBasedNN",
    initialization: np.ndarray,
    *,
    n_jobs: int = 1,
    seed: int,
    **fit: Any,
) -> "TSNEEmbedding":
    """The optimised openTSNE embedding of `fit_tsne` (`fit`: its options). `n_jobs`
    threads FFT gradients only (benchmarks); the workflow passes 1."""
    from openTSNE import TSNEEmbedding

    init = np.ascontiguousarray(initialization, dtype=np.float64)
    gradient = _gradient_method(
        init.shape[1], fit["negative_gradient_method"], len(init)
    )
    emb = TSNEEmbedding(
        init,
        affinities,
        negative_gradient_method=gradient,
        learning_rate=fit["learning_rate"],
        # threaded Barnes-Hut gradients differ from run to run (measured)
        n_jobs=n_jobs if gradient == "fft" else 1,
        random_state=seed,
    )
    # openTSNE exaggerates P in place and divides it back afterwards, which leaves it a
    # few ulps off: a graph shared by several maps drifted with every fit, so a map
    # depended on the maps fitted before it in the same process. Each fit optimises on
    # its own copy; the caller's affinities are left as they were.
    shared = affinities.P
    affinities.P = shared.copy()
    try:
        if fit["early_exaggeration_iter"] > 0:
            emb = emb.optimize(
                n_iter=fit["early_exaggeration_iter"],
                exaggeration=fit["early_exaggeration"],
                momentum=0.8,
            )
        return emb.optimize(
            n_iter=fit["n_iter"], exaggeration=fit["exaggeration"], momentum=0.8
        )
    finally:
        affinities.P = shared


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
    seed: int,
) -> tuple[np.ndarray, float]:
    """Optimise one t-SNE map from `affinities` and an initial layout [N, dim].

    The two phases of openTSNE's TSNE.fit (momentum 0.8 in both): `early_exaggeration_iter`
    steps at `early_exaggeration`, then `n_iter` steps at `exaggeration` (set
    `early_exaggeration_iter=0` to continue from an already laid-out map); the options
    are `fit_options(maps.tsne)`. Returns (coordinates float32 [N, dim], final KL divergence).
    """
    emb = _embedding(
        affinities,
        initialization,
        n_iter=n_iter,
        early_exaggeration_iter=early_exaggeration_iter,
        early_exaggeration=early_exaggeration,
        exaggeration=exaggeration,
        learning_rate=learning_rate,
        negative_gradient_method=negative_gradient_method,
        n_jobs=n_jobs,
        seed=seed,
    )
    return np.asarray(emb, dtype=np.float32), _kl(emb)


def _kl(emb: "TSNEEmbedding") -> float:
    # openTSNE sums the KL divergence over threads in whatever order they finish: with
    # n_jobs > 1 its last bits vary from run to run (the coordinates do not). Six
    # significant digits keep the metadata's bytes the same.
    return float(f"{emb.kl_divergence:.6g}")


def subsampled_map(
    xp: np.ndarray,
    fitted: np.ndarray,
    dim: int,
    perplexity: float,
    seed: int,
    options: Mapping[str, Any],
) -> tuple[np.ndarray, float]:
    """A t-SNE map of prepared features `xp` [N, d] fitted on the rows `fitted` only
    (their own kNN graph and PCA initialisation); every other row is placed into it by
    openTSNE's `TSNEEmbedding.transform` (its defaults: 25 neighbours among the fitted
    points, median initialisation, 250 steps). Returns (coordinates float32 [N, dim],
    the fitted points' KL divergence)."""
    opts = METHOD.options(options)
    sub = xp[fitted]
    p = check_perplexity(
        perplexity, len(sub), "subsample", opts["perplexity_too_large"]
    )
    aff = tsne_affinities(sub, p, opts["metric"], opts["neighbors"])
    init = _jitter(pca_initialization(sub, dim), seed)
    emb = _embedding(aff, init, seed=seed, **fit_options(opts))
    out = np.empty((len(xp), dim), np.float32)
    out[fitted] = np.asarray(emb, dtype=np.float32)
    rest = np.setdiff1d(np.arange(len(xp)), fitted, assume_unique=True)
    if len(rest):
        # transform's defaults (25 neighbours, perplexity 5), lowered for a tiny subsample
        k = min(25, len(fitted) - 1)
        placed = emb.transform(xp[rest], perplexity=min(5.0, (k - 1) / 3), k=k)
        out[rest] = np.asarray(placed, dtype=np.float32)
    return out, _kl(emb)


def fit_options(options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The optimisation options of `fit_tsne` from a `maps.tsne` config (defaults filled)."""
    opts = METHOD.options(options)
    return {k: opts[k] for k in FIT_KEYS}


def tsne_map(
    x: np.ndarray,
    dim: int,
    perplexity: float,
    seed: int,
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


def _fit_task(task: tuple) -> tuple[np.ndarray, float]:
    """One map of `tsne_maps`, in a worker or in the job's own process (same bytes):
    ("fit", P, initialisation, seed, fit options) optimises from shared affinities,
    ("subsample", xp, fitted, dim, perplexity, seed, options) is `subsampled_map`."""
    if task[0] == "fit":
        from openTSNE.affinity import PrecomputedAffinities

        _, P, init, seed, fit = task
        return fit_tsne(
            PrecomputedAffinities(P, normalize=False), init, seed=seed, **fit
        )
    return subsampled_map(*task[1:])


def tsne_maps(job: FitJob) -> Maps:
    """Every t-SNE map of a sweep, sharing the prepared features, kNN graph and PCA init.

    Options: maps.tsne. openTSNE runs on 1 thread; with `job.n_jobs` > 1 the maps are
    optimised side by side in that many forked processes (`side_by_side`), each exactly
    as it would be alone, so the bytes do not depend on the cores. 2-D maps of more than
    `max_points_2d` points and 3-D maps of more than `max_points_3d`: `subsampled_map` on
    a class-stratified subsample (`job.labels`). Yields (spec, coordinates, parameters)
    in order of decreasing perplexity.
    """
    opts, specs = dict(job.options), job.specs
    xp = prepare_features(job.x, opts["standardize"], opts["pca_components"])
    n = len(xp)
    # pynndescent's numba code cannot run in a forked worker (see side_by_side)
    numba = opts["neighbors"] == "pynndescent"
    processes = 1 if numba else min(job.n_jobs, len(specs))
    log.info(
        "%s: %d t-SNE maps of %d points, %d side by side (the job's cores%s; "
        "openTSNE on 1 thread each)",
        job.name,
        len(specs),
        n,
        processes,
        ", 1 with neighbors: pynndescent" if numba and job.n_jobs > 1 else "",
    )
    # a map of more points than its dimension's limit is fitted on a subsample
    limits = {2: opts["max_points_2d"], 3: opts["max_points_3d"]}
    full = [s for s in specs if limits[s.dim] is None or n <= limits[s.dim]]
    policy = opts["perplexity_too_large"]
    eff = {
        s.perplexity: check_perplexity(s.perplexity, n, job.name, policy) for s in specs
    }
    aff = None
    if full:
        top = max(eff[s.perplexity] for s in full)
        aff = tsne_affinities(xp, top, opts["metric"], opts["neighbors"])
    inits = {d: pca_initialization(xp, d) for d in sorted({s.dim for s in full})}
    fitted: dict[int, np.ndarray] = {}
    for dim in sorted({s.dim for s in specs if s not in full}):
        fitted[dim] = stratified_subsample(
            n, limits[dim], job.labels, opts["subsample_seed"]
        )
        log.warning(
            "%s: %d points > maps.tsne.max_points_%dd %d: %d-D maps are fitted on a "
            "class-stratified subsample of %d (seed %d) and the other %d points placed "
            "by openTSNE's transform",
            job.name,
            n,
            dim,
            limits[dim],
            dim,
            len(fitted[dim]),
            opts["subsample_seed"],
            n - len(fitted[dim]),
        )
    ordered = sorted(specs, key=lambda s: (-s.perplexity, s.dim, s.seed))
    tasks: list[tuple] = []
    for spec in ordered:
        if spec in full:
            # set_perplexity makes a new P: each task keeps its own perplexity's
            aff.set_perplexity(eff[spec.perplexity])
            init = _jitter(inits[spec.dim], spec.seed)
            tasks.append(("fit", aff.P, init, spec.seed, fit_options(opts)))
        else:
            sub = fitted[spec.dim]
            tasks.append(
                ("subsample", xp, sub, spec.dim, spec.perplexity, spec.seed, opts)
            )
    results = side_by_side(_fit_task, tasks, processes)
    for spec, (coords, kl) in zip(ordered, results, strict=True):
        extra: dict[str, Any] = {}
        if spec not in full:
            extra["subsample"] = subsample_record(
                len(fitted[spec.dim]),
                n,
                opts["subsample_seed"],
                job.labels,
                "openTSNE TSNEEmbedding.transform",
            )
        log.info("t-SNE %s: KL divergence %.4f", spec, kl)
        fit_n = extra["subsample"]["size"] if "subsample" in extra else n
        params = {
            **opts,
            "effective_perplexity": eff[spec.perplexity],
            "gradient": _gradient_method(
                spec.dim, opts["negative_gradient_method"], fit_n
            ),
            "input_dims": int(xp.shape[1]),
            "kl_divergence": kl,
            **extra,
            "versions": versions(*METHOD.packages),
        }
        yield spec, coords, params


def tsne_evolution(job: EvolveJob) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """2-D t-SNE maps of features [N, D] per checkpoint: (aligned, independent).

    Both series share each checkpoint's affinities and the first map; the aligned map of
    checkpoint k+1 starts from `rescale(aligned map k)` and is then rotated onto it
    (`procrustes_align`), the independent one starts from PCA and is left as it is.
    """
    opts, seed = job.options, job.seed
    fit = fit_options(opts)
    names = list(job.names or [f"checkpoint {k}" for k in range(len(job.features))])
    aligned: list[np.ndarray] = []
    independent: list[np.ndarray] = []
    for name, x in zip(names, job.features, strict=True):
        xp = prepare_features(x, opts["standardize"], opts["pca_components"])
        policy = opts["perplexity_too_large"]
        p = check_perplexity(job.perplexity, len(xp), name, policy)
        aff = tsne_affinities(xp, p, opts["metric"], opts["neighbors"])
        pca_init = _jitter(pca_initialization(xp, 2), seed)
        own, _ = fit_tsne(aff, pca_init, seed=seed, **fit)
        independent.append(own)
        if aligned:
            init = rescale(aligned[-1])
            own, kl = fit_tsne(aff, init, seed=seed, **fit)
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
