"""What the map methods share, below them: loading and checking a layer's features, the
standardisation and exact PCA (the pre-step and PCA maps), class-stratified subsamples,
a kNN-graph method's input and maps (of every point, or fitted on a subsample with the
other points placed), worker processes that fit maps side by side, Procrustes alignment,
the images' labels, package versions, and the contract's embedding table.

Work that does not depend on the seed is done once per layer and method: the
standardisation and the PCA pre-step here, and e.g. t-SNE's kNN graph in
`cnnatlas.maps.tsne` (built once for the largest perplexity, re-calibrated for each
smaller one). Only the optimisation runs per (dim, perplexity, seed). A job's maps are
written by `cnnatlas.mapping`, above the methods.
"""

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from hashlib import blake2b
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnnatlas.errors import CnnatlasError
from cnnatlas.maps import FitJob, Maps

__all__ = [
    "FeatureError",
    "map_pool",
    "side_by_side",
    "SHARED_STATE",
    "load_features",
    "check_features",
    "prepare_features",
    "principal_components",
    "row_chunks",
    "stratified_subsample",
    "subsample_record",
    "place_points",
    "neighbor_features",
    "neighbor_maps",
    "procrustes_align",
    "read_labels",
    "versions",
    "META_KEY",
    "embedding_frame",
]

log = logging.getLogger(__name__)

# The Parquet metadata key of an embedding's parameters (JSON).
META_KEY = "cnnatlas.map"
# Seed-independent steps (PCA pre-step, kNN graph) use this fixed random state, so that
# every seed of a sweep shares them; the map's seed drives the initialisation's jitter.
SHARED_STATE = 0


class FeatureError(CnnatlasError):
    """A layer's features cannot be mapped (non-finite values, too few points)."""


# Rows per chunk of the passes over a layer's features: a fixed number (not one derived
# from free memory), so that sums, hence bytes, never depend on the machine. 2,048 rows of
# 2,048 float64 features are 32 MiB.
CHUNK = 2048


def row_chunks(n: int, rows: int | None = None) -> Iterable[slice]:
    """Slices of `rows` (CHUNK if None) consecutive rows, the last one shorter, covering
    range(n)."""
    rows = CHUNK if rows is None else rows
    return (slice(s, min(n, s + rows)) for s in range(0, n, rows))


def load_features(path: str | Path) -> np.ndarray:
    """A layer's `.npy` features [N, D], checked by `check_features`, as float32: the file
    itself (a read-only memmap) when it holds float32, so that nothing reads it whole."""
    x = np.load(path, mmap_mode="r")
    if x.dtype != np.float32:
        x = np.asarray(x, dtype=np.float32)
    return check_features(x, name=str(path))


def check_features(x: np.ndarray, name: str = "features") -> np.ndarray:
    """Raise on non-finite values; log zero-variance columns and duplicate rows.

    Returns `x` as a 2-D float32 array (a float32 memmap as it is). `name` (the layer
    file) appears in every message. Reads `x` in chunks of rows: memory stays flat in N.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32):
        x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise FeatureError(
            f"{name}: expected a 2-D array of at least 2 points, got shape {x.shape}"
        )
    bad = rows = 0
    lo = np.full(x.shape[1], np.inf, np.float32)
    hi = np.full(x.shape[1], -np.inf, np.float32)
    digests = set()
    for part in row_chunks(len(x)):
        c = np.asarray(x[part])
        finite = np.isfinite(c)
        bad += int(c.size - np.count_nonzero(finite))
        rows += int((~finite).any(axis=1).sum())
        np.minimum(lo, c.min(axis=0), out=lo)
        np.maximum(hi, c.max(axis=0), out=hi)
        # Duplicate rows by a 128-bit digest of each row's bytes: exact but for a
        # collision (~N^2 / 2^129), without sorting a copy of all N x D values.
        digests.update(blake2b(r.tobytes(), digest_size=16).digest() for r in c)
    if bad:
        raise FeatureError(
            f"{name}: {bad} NaN/Inf values in {rows} of {x.shape[0]} rows; "
            "the model produced non-finite activations (check the checkpoint, the "
            "transform's mean/std, or set extract.precision: fp32) and re-run the extraction"
        )
    const = int((hi == lo).sum())
    if const:
        log.warning(
            "%s: %d of %d features are constant (zero variance); they carry no "
            "information and are kept as they are",
            name,
            const,
            x.shape[1],
        )
    dups = x.shape[0] - len(digests)
    if dups:
        log.warning("%s: %d duplicate points (identical feature rows)", name, dups)
    return x


def _moments(x: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and the divisor of the z-score (1 where not standardising or
    constant), float64, in chunks."""
    n, total = len(x), np.zeros(x.shape[1])
    for part in row_chunks(n):
        total += np.asarray(x[part], dtype=np.float64).sum(axis=0)
    mean = total / n
    if not standardize:
        return mean, np.ones_like(mean)
    sq = np.zeros_like(mean)
    for part in row_chunks(n):
        sq += ((np.asarray(x[part], dtype=np.float64) - mean) ** 2).sum(axis=0)
    sd = np.sqrt(sq / n)
    return mean, np.where(sd > 0, sd, 1.0)


# Beyond this many points AND features, the exact PCA's min(N, D)^2 matrix (2 GiB here)
# is too large: scikit-learn's randomized PCA on a float64 copy of the features is used.
MAX_EXACT_SIDE = 16384


def _centred(x: np.ndarray, part: slice, mean: np.ndarray, scale: np.ndarray):
    return (np.asarray(x[part], dtype=np.float64) - mean) / scale


def _top(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest eigenvalues (descending, >= 0) and eigenvectors of a symmetric
    matrix, of which only the upper triangle is read."""
    from scipy.linalg import eigh

    m = len(matrix)
    # evx (bisection + inverse iteration) for a few eigenpairs: 1.7 CPU-s for 50 of
    # 2,048 here, against 9.7 s with scipy's default evr driver
    values, vectors = eigh(
        matrix, lower=False, subset_by_index=[m - k, m - 1], driver="evx"
    )
    order = np.argsort(values, kind="stable")[::-1]
    return np.maximum(values[order], 0), vectors[:, order]


def principal_components(
    x: np.ndarray, k: int, standardize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The first `k` principal components of `x` [N, D] (optionally z-scored first):
    (coordinates float64 [N, k], explained variance ratio [k]).

    Exact PCA, summed over fixed chunks of rows in float64: from the D x D covariance
    when D <= N (a 50,000 x 2,048 layer: a 32 MiB matrix), else from the N x N Gram
    matrix (few images of a wide, e.g. flattened, layer); then diagonalised (`eigh`) and
    each chunk projected. Memory: that matrix, two chunks and the output, never a
    float64 copy of `x`. Deterministic (no random solver); each component's sign puts its
    largest loading positive, as scikit-learn's `svd_flip` does. When both N and D
    exceed MAX_EXACT_SIDE: scikit-learn's randomized PCA (seeded), with a warning.
    """
    n, d = x.shape
    k = min(k, n, d)
    if min(n, d) > MAX_EXACT_SIDE:
        return _randomized(x, k, standardize)
    mean, scale = _moments(x, standardize)
    if d <= n:
        from scipy.linalg.blas import dsyrk

        # upper triangle of the sum of c^T c: BLAS syrk, half the work of a matmul
        cov = np.zeros((d, d), order="F")
        for part in row_chunks(n):
            c = _centred(x, part, mean, scale)
            cov = dsyrk(1.0, c.T, beta=1.0, c=cov, overwrite_c=1)
        values, loadings = _top(cov, k)
        total = float(np.trace(cov))
    else:
        gram = np.zeros((n, n))
        for a in row_chunks(n):
            ca = _centred(x, a, mean, scale)
            for b in row_chunks(n):
                if b.start >= a.start:
                    gram[a, b] = ca @ _centred(x, b, mean, scale).T
                    gram[b, a] = gram[a, b].T
        values, u = _top(gram, k)
        total = float(np.trace(gram))
        # loadings = Xc^T u / sqrt(value): the components, for their signs and projection
        inv = np.divide(1.0, np.sqrt(values), out=np.zeros(k), where=values > 0)
        loadings = np.zeros((d, k))
        for part in row_chunks(n):
            loadings += _centred(x, part, mean, scale).T @ u[part]
        loadings *= inv
    big = np.argmax(np.abs(loadings), axis=0)
    loadings *= np.where(loadings[big, np.arange(k)] < 0, -1.0, 1.0)
    ratio = values / total if total > 0 else np.zeros(k)
    out = np.empty((n, k))
    for part in row_chunks(n):
        out[part] = _centred(x, part, mean, scale) @ loadings
    return out, ratio


def _randomized(
    x: np.ndarray, k: int, standardize: bool
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    log.warning(
        "PCA of %d x %d features: both exceed %d, so scikit-learn's randomized PCA runs "
        "on a float64 copy (%.1f GiB); lower the layer's width (pooling avg) to avoid it",
        *x.shape,
        MAX_EXACT_SIDE,
        x.size * 8 / 2**30,
    )
    mean, scale = _moments(x, standardize)
    xc = (np.asarray(x, dtype=np.float64) - mean) / scale
    pca = PCA(n_components=k, svd_solver="randomized", random_state=SHARED_STATE)
    return pca.fit_transform(xc), pca.explained_variance_ratio_


def prepare_features(
    x: np.ndarray,
    standardize: bool = False,
    pca_components: int | None = 50,
) -> np.ndarray:
    """Optionally z-score each feature, then PCA to `pca_components` when D exceeds it
    (`principal_components`: exact, memory-flat, deterministic); float64 [N, D or k].

    Constant features stay 0 after standardisation (no division by zero).
    """
    if pca_components and x.shape[1] > pca_components:
        k = min(pca_components, x.shape[0])
        log.info("PCA pre-step: %d -> %d dimensions (exact, in chunks)", x.shape[1], k)
        return principal_components(x, k, standardize)[0]
    if not standardize:
        return np.ascontiguousarray(x, dtype=np.float64)
    mean, scale = _moments(x, True)
    out = np.empty(x.shape)
    for part in row_chunks(len(x)):
        out[part] = (np.asarray(x[part], dtype=np.float64) - mean) / scale
    return out


def stratified_subsample(
    n: int, size: int, labels: np.ndarray | None, seed: int
) -> np.ndarray:
    """Sorted indices of a seeded subsample of `size` of `n` points (all when n <= size),
    each class of `labels` [n] represented in proportion to its size (largest
    remainders; uniform when `labels` is None). A function of (n, size, labels, seed)
    only, so the metrics recompute the subsample a map's metadata names."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=size, replace=False))
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    share = counts * size / n
    take = np.floor(share).astype(int)
    extra = np.argsort(-(share - take), kind="stable")[: size - int(take.sum())]
    take[extra] += 1
    picked = [
        rng.choice(np.flatnonzero(inverse == c), size=t, replace=False)
        for c, t in enumerate(take)
    ]
    return np.sort(np.concatenate(picked))


def subsample_record(
    size: int, n: int, seed: int, labels: np.ndarray | None, placed_by: str
) -> dict[str, Any]:
    """A subsampled map's metadata `subsample`: what the metrics need to recompute the
    fitted rows (`stratified_subsample`) and, in words, how the others were placed."""
    return {
        "size": int(size),
        "of": int(n),
        "seed": int(seed),
        "stratified_by": "label" if labels is not None else None,
        "method": f"class-stratified fit, rest placed by {placed_by}",
    }


# Rows per call of a fitted estimator's `transform` (`place_points`). umap-learn's holds
# about 1.5 KB per new point (its kNN query and graph: peak RSS +138 MiB for 95,000 rows
# in one call, +26 MiB in blocks of 19,000), so a block bounds the memory. It also
# optimises a batch of more than 10,000 new points for 30 epochs and a smaller one for
# 100: blocks of more than PLACE_ROWS / 2 rows each keep every point of a large
# placement on 30, as one call would.
PLACE_ROWS = 32768


def place_points(model: Any, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`model.transform` of the rows `rows` of `x`: float32 [len(rows), dim], computed
    in near-equal blocks of at most PLACE_ROWS rows (a split fixed by len(rows) alone,
    so the bytes do not depend on the machine)."""
    blocks = np.array_split(rows, max(1, -(-len(rows) // PLACE_ROWS)))
    return np.concatenate(
        [np.asarray(model.transform(x[b]), dtype=np.float32) for b in blocks]
    )


def neighbor_features(job: FitJob) -> tuple[np.ndarray, int]:
    """A kNN-graph method's input: prepared features (`standardize`, `pca_components` of
    its options) and its `n_neighbors`, lowered to N - 1 with a warning when N is small."""
    opts = job.options
    xp = prepare_features(job.x, opts["standardize"], opts["pca_components"])
    k = min(opts["n_neighbors"], len(xp) - 1)
    if k < opts["n_neighbors"]:
        log.warning(
            "%s: n_neighbors %d > N - 1; using %d", job.name, opts["n_neighbors"], k
        )
    return xp, k


# One pool of forked workers per process and size (map_pool).
_POOLS: dict[int, Any] = {}


def map_pool(processes: int):
    """A pool of `processes` forked worker processes that fit maps (None for 1), made
    once per process and size (fork, not spawn: a Snakemake script's main module would
    run its job again in a spawned worker). Workers are daemonic: they end with the
    process."""
    if processes <= 1:
        return None
    if processes not in _POOLS:
        import multiprocessing

        _POOLS[processes] = multiprocessing.get_context("fork").Pool(processes)
    return _POOLS[processes]


def _one_thread(fit: Callable[[Any], Any], task: Any) -> Any:
    # OpenMP (libgomp: openTSNE, scikit-learn) and BLAS on 1 thread, in a worker and in
    # the job's own process alike, so both compute the same bytes. libgomp is not
    # fork-safe once a parent has started OpenMP threads (a forked worker's parallel
    # region would wait for threads it does not have); on 1 thread it never uses them.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return fit(task)


def side_by_side(
    fit: Callable[[Any], Any], tasks: Sequence[Any], processes: int = 1
) -> Iterator[Any]:
    """`fit(task)` of every task, in order: in this process, or (`processes` > 1 and
    more than one task) in that many forked workers at once. `fit` must be a
    module-level function (it is pickled) that computes on one thread; each task runs
    under a 1-thread limit either way, so the results do not depend on `processes`.
    Not for numba code (UMAP, PaCMAP, pynndescent): numba stops a forked worker once
    the parent has used its OpenMP threads."""
    pool = map_pool(processes) if len(tasks) > 1 else None
    run = partial(_one_thread, fit)
    return map(run, tasks) if pool is None else pool.imap(run, tasks)


# The options of a kNN-graph method's subsample route, absent from the metadata of a
# map of every point: such a map does not depend on them, and its file stays the same as
# one made by a method without the route.
SUBSAMPLE_KEYS = ("max_points", "subsample_seed")


def neighbor_maps(
    job: FitJob, build: Callable[..., Any], packages: Iterable[str], placed_by: str = ""
) -> Maps:
    """The maps of a kNN-graph method (UMAP, PaCMAP): `build(n_components=,
    n_neighbors=, random_state=)` makes the estimator of one map (seeded with the map's
    seed), whose `fit_transform` lays out the prepared features; the metadata records
    the options, the n_neighbors used and the versions of `packages`. One map after the
    other: their numba code cannot run in forked workers once the job's process has
    used numba's OpenMP threads (numba stops the worker: "fork() called from a process
    already using GNU OpenMP").

    Options `max_points` (not null) and `subsample_seed`, for an estimator with a
    `transform` (named by `placed_by`): a map of more points is fitted on a
    class-stratified subsample of `max_points` (`job.labels`) and the other points are
    placed with `place_points`; the metadata's `subsample` says so."""
    xp, k = neighbor_features(job)
    n, limit = len(xp), job.options.get("max_points")
    fitted = None
    if limit is not None and n > limit:
        seed = job.options["subsample_seed"]
        fitted = stratified_subsample(n, limit, job.labels, seed)
        k = min(k, len(fitted) - 1)
        log.warning(
            "%s: %d points > max_points %d: maps are fitted on a class-stratified "
            "subsample of %d (seed %d) and the other %d points placed by %s",
            job.name,
            n,
            limit,
            len(fitted),
            seed,
            n - len(fitted),
            placed_by,
        )
    for spec in job.specs:
        model = build(n_components=spec.dim, n_neighbors=k, random_state=spec.seed)
        params = {**job.options, "effective_n_neighbors": k}
        if fitted is None:
            coords = model.fit_transform(xp).astype(np.float32)
            params = {p: v for p, v in params.items() if p not in SUBSAMPLE_KEYS}
        else:
            coords = _fit_and_place(model, xp, fitted)
            params["subsample"] = subsample_record(
                len(fitted), n, seed, job.labels, placed_by
            )
        yield spec, coords, {**params, "versions": versions(*packages)}


def _fit_and_place(model: Any, xp: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """float32 [N, dim]: `model` fitted on the rows `fitted` of `xp`, the rest placed."""
    sub = model.fit_transform(xp[fitted]).astype(np.float32)
    out = np.empty((len(xp), sub.shape[1]), np.float32)
    out[fitted] = sub
    rest = np.setdiff1d(np.arange(len(xp)), fitted, assume_unique=True)
    out[rest] = place_points(model, xp, rest)
    return out


def procrustes_align(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`x` rotated/reflected (no scaling) to best match `reference`, on its centroid."""
    from scipy.linalg import orthogonal_procrustes

    xc = x - x.mean(axis=0)
    rotation, _ = orthogonal_procrustes(xc, reference - reference.mean(axis=0))
    return (xc @ rotation + reference.mean(axis=0)).astype(np.float32)


def read_labels(predictions: str | Path) -> np.ndarray:
    """The class label of every image, in image_id order, from a predictions.parquet."""
    df = pd.read_parquet(predictions, columns=["image_id", "label"])
    return df.sort_values("image_id")["label"].to_numpy()


def versions(*packages: str) -> dict[str, str]:
    """{package: installed version}, recorded in each map's metadata."""
    return {p: version(p) for p in packages}


def embedding_frame(coords: np.ndarray) -> pd.DataFrame:
    """The contract's table: image_id (int64, row order), x, y[, z] (float32)."""
    coords = np.asarray(coords, dtype=np.float32)
    df = pd.DataFrame({"image_id": np.arange(len(coords), dtype=np.int64)})
    for i, axis in enumerate("xyz"[: coords.shape[1]]):
        df[axis] = coords[:, i]
    return df
