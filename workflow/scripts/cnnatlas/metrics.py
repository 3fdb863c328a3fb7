"""How faithful a map is to the features it was made from, in numbers and in plain words.

All metrics of one layer are computed on the same seeded subsample of at most
`max_points` points (all points when N is smaller): kNN classification accuracy
(cross-validated) in feature space and in the map, neighbourhood preservation, and the
neighbour overlap between seeds (stability). Trustworthiness and continuity are exact
(scikit-learn's) when N <= `max_points`; above, they are estimated over all N points on
a stratified sample of `max_points` query points (`sampled_trust`), each with its 95 %
confidence interval, so that they measure the whole map rather than the neighbourhoods of
a thinned-out subsample. A map fitted on a subsample with the other points placed into it
(large 3-D t-SNE maps, metadata `subsample`) also gets kNN accuracy and trustworthiness on
the metric points that were fitted and on those that were placed (`*_fitted`,
`*_placed`), so a placement worse than the fit shows.

Memory: the exact metrics build a max_points^2 distance matrix (200 MB at 5,000) and a
rank index (100 MB; the features' index is built once per layer and shared by its maps,
each map's own for continuity); the sampled ones hold a chunk of query rows against all
N at a time (QUERY_CHUNK_BYTES). `feature_neighbors` over all N is scikit-learn's exact
brute-force search, which works in chunks of rows (bounded memory, O(N^2 D) time), up to
`exact_max` images; above, an HNSW index (faiss), with its recall measured against exact
search on a sample of query points.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from cnnatlas.io import atomic_path, read_parquet_meta, write_parquet
from cnnatlas.maps import get_method, map_fields, read_spec
from cnnatlas.maps.toolbox import META_KEY, row_chunks, stratified_subsample
from cnnatlas.schema import with_defaults

__all__ = [
    "COLUMNS",
    "subsample",
    "knn_accuracy",
    "rank_index",
    "nearest",
    "trustworthiness",
    "continuity",
    "sampled_trust",
    "neighbors",
    "neighbor_overlap",
    "feature_neighbors",
    "recall_at_k",
    "RECALL_QUERIES",
    "NOTES",
    "diagnose",
    "diagnosis_notes",
    "map_metrics",
    "layer_metrics",
    "gather_metrics",
    "layer_summary",
    "plot_layer_summary",
]

log = logging.getLogger(__name__)

KEYS = ["model", "ckpt", "layer", "method", "dim", "perplexity", "seed"]
COLUMNS = [
    *KEYS,
    "n_points",
    "n_metric_points",
    "chance",
    "knn_features",
    "knn_map",
    "knn_ratio",
    "trustworthiness",
    "continuity",
    "trust_queries",
    "trustworthiness_ci",
    "continuity_ci",
    "neighbor_preservation",
    "seed_stability",
    "kl_divergence",
    "diagnosis",
    "n_fitted",
    "knn_map_fitted",
    "trustworthiness_fitted",
    "knn_map_placed",
    "trustworthiness_placed",
]


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of at most `max_points` of `n` points."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def knn_accuracy(
    x: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int
) -> float:
    """Mean accuracy of a k-nearest-neighbour classifier under stratified k-fold CV."""
    labels = np.asarray(labels)
    smallest = int(np.bincount(np.unique(labels, return_inverse=True)[1]).min())
    folds = max(2, min(folds, smallest))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    k = min(k, len(x) - len(x) // folds - 1)
    clf = KNeighborsClassifier(n_neighbors=max(1, k))
    return float(cross_val_score(clf, x, labels, cv=cv).mean())


def _k(n: int, k: int) -> int:
    # scikit-learn's trustworthiness needs k < n / 2
    return max(1, min(k, (n - 1) // 2))


def rank_index(x: np.ndarray) -> np.ndarray:
    """[N, N] int32: [i, j] = the rank of j among the points nearest to i (1 = nearest,
    i itself last), scikit-learn's `trustworthiness` inverted index, computed the same
    way. The costly part of trustworthiness (a sort of all N^2 distances): a layer's
    maps share their features' index (`layer_metrics`)."""
    n = len(x)
    dist = pairwise_distances(x)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1)
    del dist
    index = np.zeros((n, n), dtype=np.int32)
    index[np.arange(n)[:, None], order] = np.arange(1, n + 1, dtype=np.int32)
    return index


def nearest(y: np.ndarray, k: int) -> np.ndarray:
    """Each point's k nearest other points as scikit-learn's trustworthiness finds them."""
    return NearestNeighbors(n_neighbors=k).fit(y).kneighbors(return_distance=False)


def _trust(index: np.ndarray, nbrs: np.ndarray, k: int) -> float:
    n = len(index)
    ranks = index[np.arange(n)[:, None], nbrs].astype(np.int64) - k
    t = np.sum(ranks[ranks > 0])
    return float(1.0 - t * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


def trustworthiness(
    x: np.ndarray, y: np.ndarray, k: int, x_index: np.ndarray | None = None
) -> float:
    """Trustworthiness of map `y` w.r.t. features `x`: are the map's neighbours real
    ones? (1 = all). scikit-learn's value, bit for bit; `x_index`: `rank_index(x)`."""
    k = _k(len(x), k)
    return _trust(rank_index(x) if x_index is None else x_index, nearest(y, k), k)


def continuity(
    x: np.ndarray, y: np.ndarray, k: int, x_nearest: np.ndarray | None = None
) -> float:
    """Continuity: are the features' neighbours kept in the map? (trustworthiness with
    roles swapped); `x_nearest`: `nearest(x, k)`."""
    k = _k(len(x), k)
    return _trust(rank_index(y), nearest(x, k) if x_nearest is None else x_nearest, k)


# Two-sided 95 % normal quantile: the intervals of the sampled estimates.
Z95 = 1.959963984540054
# Bytes of distance rows one chunk of query points may hold (features and one map).
QUERY_CHUNK_BYTES = 256 * 2**20
# Rows of the features read at a time for the query chunk's distances.
QUERY_BLOCK_ROWS = 16384


def sampled_trust(
    x: np.ndarray,
    maps: Sequence[np.ndarray],
    labels: np.ndarray,
    k: int,
    size: int,
    seed: int,
) -> list[dict[str, float]]:
    """Trustworthiness and continuity of each map in `maps` ([N, dim] each) w.r.t. the
    features `x` [N, D] over all N points, estimated on a seeded sample of `size` query
    points stratified by `labels` (`stratified_subsample`), each with the half-width of
    its 95 % confidence interval (stratified sampling without replacement; 0 when every
    point is a query, where the value is scikit-learn's over all N).

    Each query's neighbours and ranks are taken among all N points, so the estimate
    targets the full-data value, not that of a subsample's own neighbourhoods. A point
    tied in distance with a neighbour ranks as the nearer one. Cost: size x N x D for the
    features' distances (streamed through `x`, which may be memory-mapped) and
    size x N per map; memory: a chunk of query rows at a time (QUERY_CHUNK_BYTES)."""
    n, labels = len(x), np.asarray(labels)
    k = _k(n, k)
    queries = stratified_subsample(n, size, labels, seed)
    maps = [np.asarray(y, dtype=np.float64) for y in maps]
    rows_t = np.zeros((len(maps), len(queries)))
    rows_c = np.zeros((len(maps), len(queries)))
    step = max(1, QUERY_CHUNK_BYTES // (8 * n))
    for start in range(0, len(queries), step):
        part = slice(start, start + step)
        q = queries[part]
        dx = _squared_distances(x, q)
        nx = _nearest_rows(dx, k)
        for m, y in enumerate(maps):
            dy = _squared_distances(y, q)
            ny = _nearest_rows(dy, k)
            rows_t[m, part] = _penalty(dx, ny, k)
            rows_c[m, part] = _penalty(dy, nx, k)
    scale = 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
    out = []
    for t, c in zip(rows_t, rows_c, strict=True):
        (t_sum, t_var), (c_sum, c_var) = (
            _stratified_total(v, labels, queries) for v in (t, c)
        )
        out.append(
            {
                "trustworthiness": float(1.0 - scale * t_sum),
                "trustworthiness_ci": float(Z95 * scale * np.sqrt(t_var)),
                "continuity": float(1.0 - scale * c_sum),
                "continuity_ci": float(Z95 * scale * np.sqrt(c_var)),
                "trust_queries": len(queries),
            }
        )
    return out


def _squared_distances(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[len(q), N] squared Euclidean distances from the points `q` (indices) to every
    point of `x`, in x's precision (float32 features, float64 maps), read in row
    blocks; each query's distance to itself is inf."""
    xq = np.asarray(x[q])
    xq_sq = np.einsum("ij,ij->i", xq, xq)[:, None]
    out = np.empty((len(q), len(x)), dtype=xq.dtype)
    for part in row_chunks(len(x), QUERY_BLOCK_ROWS):
        blk = np.asarray(x[part], dtype=xq.dtype)
        d = xq_sq + np.einsum("ij,ij->i", blk, blk)[None, :] - 2.0 * (xq @ blk.T)
        out[:, part] = np.maximum(d, 0)
    out[np.arange(len(q)), q] = np.inf
    return out


def _nearest_rows(d: np.ndarray, k: int) -> np.ndarray:
    """[q, k]: the k smallest entries of each row of `d` (in no particular order)."""
    return np.argpartition(d, k - 1, axis=1)[:, :k]


def _penalty(d: np.ndarray, nbrs: np.ndarray, k: int) -> np.ndarray:
    """Per row of `d` [q, N]: the sum over `nbrs` [q, k] of max(0, rank - k), each
    neighbour's rank (1 = nearest) among the row's points by `d`."""
    ranks = 1 + _count_below(d, np.take_along_axis(d, nbrs, axis=1))
    return np.maximum(ranks - k, 0).sum(axis=1)


def _count_below(d: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """[q, m]: how many entries of row r of `d` [q, N] are below thresholds[r, j]. Per
    row, one pass keeps the entries below its largest threshold, and only those are
    sorted (few where the neighbours are near; all, at worst, for a random map)."""
    out = np.empty(thresholds.shape, dtype=np.int64)
    for r, (row, t) in enumerate(zip(d, thresholds, strict=True)):
        near = np.sort(row[row < t.max()])
        out[r] = np.searchsorted(near, t, side="left")
    return out


def _stratified_total(
    values: np.ndarray, labels: np.ndarray, queries: np.ndarray
) -> tuple[float, float]:
    """The total of a per-point quantity over all N points estimated from its values at
    the stratified `queries`, and the estimate's variance (per class: N_h times the
    mean, and N_h^2 (1 - n_h / N_h) s_h^2 / n_h; a class without a query point counts
    at the sample's mean)."""
    classes, inverse = np.unique(labels, return_inverse=True)
    population = np.bincount(inverse, minlength=len(classes))
    sampled = inverse[queries]
    # a class too small to get a query point counts at the sample's mean
    unsampled = population.sum() - population[np.unique(sampled)].sum()
    total, var = unsampled * float(values.mean()), 0.0
    for h in np.unique(sampled):
        v = values[sampled == h]
        big, small = population[h], len(v)
        total += big * v.mean()
        if small > 1:
            var += big**2 * (1 - small / big) * v.var(ddof=1) / small
    return float(total), float(var)


def neighbors(x: np.ndarray, k: int, distances: bool = False):
    """Indices [N, k] of each point's k nearest other points (duplicates handled); with
    `distances`, also their Euclidean distances [N, k] (float32)."""
    k = min(k, len(x) - 1)
    if not distances:
        return _without_self(_search(x, k + 1), last=True)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    own = _own(idx, last=True)
    return idx[~own].reshape(len(x), k), dist[~own].reshape(len(x), k).astype(
        np.float32
    )


def _search(x: np.ndarray, k: int) -> np.ndarray:
    """[N, k]: each point's k nearest points, itself among them (unless duplicates
    displaced it), nearest first."""
    return NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x, return_distance=False)


def _own(idx: np.ndarray, last: bool) -> np.ndarray:
    """[N, k] bool: where each row of `_search` holds the point itself; where a duplicate
    displaced it, the farthest (`last`) or, as scikit-learn does, the nearest."""
    own = idx == np.arange(len(idx))[:, None]
    own[~own.any(axis=1), -1 if last else 0] = True
    return own


def _without_self(idx: np.ndarray, last: bool) -> np.ndarray:
    """Each row of `_search` without the point itself (`_own`)."""
    return idx[~_own(idx, last)].reshape(len(idx), idx.shape[1] - 1)


def _feature_neighbors(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`neighbors(x, k)` and `nearest(x, _k(len(x), k))` of a layer's features: from
    one search when both ask for as many neighbours (N > 2k), the same indices as two."""
    n_neighbors, n_nearest = min(k, len(x) - 1), _k(len(x), k)
    if n_neighbors != n_nearest:
        return neighbors(x, k), nearest(x, n_nearest)
    idx = _search(x, n_neighbors + 1)
    return _without_self(idx, last=True), _without_self(idx, last=False)


# Query points on which an approximate search's recall is measured against exact search.
RECALL_QUERIES = 1000


def feature_neighbors(
    features: np.ndarray | str | Path,
    out: str | Path,
    k: int,
    distances_out: str | Path | None = None,
    exact_max: int | None = None,
    *,
    seed: int,
) -> dict[str, Any]:
    """Each image's k nearest other images in feature space, over all N points (not the
    metrics subsample), saved to `out` as .npy [N, k] of uint16 (uint32 above 65,536
    images), and their distances to `distances_out` as .npy [N, k] of float32: the atlas
    page rings them around a pinned point and shows them in its gallery. `features`: the
    array or its .npy file.

    Exact up to `exact_max` images (None: always); above, from an HNSW index (faiss, one
    thread), whose recall@k against exact search on a sample of RECALL_QUERIES points
    (seeded by `seed`) is measured. Returns {"search", "k", "recall_at_k",
    "recall_queries"} (recall 1.0 for an exact search) and, as "ids", the neighbours."""
    x = np.asarray(_load(features), dtype=np.float32)
    n = len(x)
    if exact_max is None or n <= exact_max:
        idx, dist = neighbors(x, k, distances=True)
        info = {"search": "exact", "recall_at_k": 1.0, "recall_queries": 0}
    else:
        idx, dist = _approximate(x, min(k, n - 1))
        queries = subsample(n, RECALL_QUERIES, seed)
        info = {
            "search": "hnsw",
            "recall_at_k": recall_at_k(x, idx, queries),
            "recall_queries": len(queries),
        }
    dtype = np.uint16 if n <= 2**16 else np.uint32
    for path, array in ((out, idx.astype(dtype)), (distances_out, dist)):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, array)
    return {**info, "k": int(idx.shape[1]), "ids": idx}


def _approximate(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, k] ids and float32 distances of each point's approximate nearest other points:
    a faiss HNSW graph (32 links per point, 80 candidates while building, max(64, 2k + 1)
    while searching), built and searched on one thread, so the same input gives the same
    graph (faiss seeds its level draws); nearest first, self dropped."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index = faiss.IndexHNSWFlat(x.shape[1], 32)
        index.hnsw.efConstruction = 80
        index.add(np.ascontiguousarray(x))
        index.hnsw.efSearch = max(64, 2 * k + 1)
        squared, ids = index.search(np.ascontiguousarray(x), k + 1)
    finally:
        faiss.omp_set_num_threads(threads)
    keep = ~_own(ids, last=True)
    ids = ids[keep].reshape(len(x), k).astype(np.int64)
    dist = np.sqrt(np.maximum(squared[keep], 0)).reshape(len(x), k).astype(np.float32)
    return ids, dist


def recall_at_k(x: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    """Share of the exact k nearest other points of each query point found in its row of
    `ids` [N, k], averaged over `queries` (exact search over all N for those only)."""
    k = ids.shape[1]
    exact = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x[queries])[1]
    own = exact == queries[:, None]
    own[~own.any(axis=1), -1] = True
    exact = exact[~own].reshape(len(queries), k)
    hits = [len(np.intersect1d(a, b)) for a, b in zip(ids[queries], exact, strict=True)]
    return float(np.mean(hits) / k)


def _load(features: np.ndarray | str | Path) -> np.ndarray:
    # A file is mapped, not read: the metrics read only their subsample's rows.
    if isinstance(features, np.ndarray):
        return features
    return np.load(features, mmap_mode="r")


def neighbor_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of each row's neighbours in `a` that are also in `b` (both [N, k])."""
    hits = [
        len(np.intersect1d(ra, rb, assume_unique=True))
        for ra, rb in zip(a, b, strict=True)
    ]
    return float(np.mean(hits) / a.shape[1])


def _fmt(v: float) -> str:
    return f"{v:.2f}"


# What `diagnose` can find wrong with a map: each note opens with one of these.
NOTES = (
    "the features themselves barely separate the classes",
    "the map loses class structure the features have",
    "map neighbours are often not feature neighbours",
    "unstable across seeds",
)


def diagnose(row: Mapping[str, Any]) -> str:
    """A plain-words verdict on one map from its metrics (a row of metrics.parquet)."""
    feat, mapped, chance = row["knn_features"], row["knn_map"], row["chance"]
    barely, loses, invents, unstable = NOTES
    notes = []
    if feat < chance + 0.25 * (1 - chance):
        notes.append(
            f"{barely} (kNN {_fmt(feat)}, chance {_fmt(chance)}): no map can show "
            "class structure this layer lacks"
        )
    elif row["knn_ratio"] < 0.9:
        notes.append(
            f"{loses} (kNN {_fmt(feat)} → {_fmt(mapped)}): "
            f"{get_method(row['method']).advice}"
        )
    if row["trustworthiness"] < 0.85:
        notes.append(
            f"{invents} (trustworthiness {_fmt(row['trustworthiness'])}): distances "
            "in the map mislead"
        )
    stab = row.get("seed_stability")
    if stab is not None and np.isfinite(stab) and stab < 0.5:
        notes.append(
            f"{unstable} (neighbour overlap {_fmt(stab)}): trust only structure every "
            "seed shows"
        )
    return "; ".join(notes) if notes else "faithful"


def diagnosis_notes(diagnosis: str) -> list[str]:
    """Which of `NOTES` a `diagnose` verdict holds, without their numbers and advice;
    none for a faithful map."""
    return [note for note in NOTES if note in diagnosis]


def map_metrics(
    x: np.ndarray,
    y: np.ndarray,
    labels: np.ndarray,
    k: int,
    folds: int,
    seed: int,
    x_neighbors: np.ndarray | None = None,
    x_index: np.ndarray | None = None,
    x_nearest: np.ndarray | None = None,
) -> dict[str, float]:
    """kNN accuracy in the map, trustworthiness, continuity and 10-NN preservation of
    map `y`; the features' `neighbors`, `rank_index` and `nearest`, when given, are
    reused (a layer's maps share them)."""
    if x_neighbors is None:
        x_neighbors = neighbors(x, k)
    return {
        "knn_map": knn_accuracy(y, labels, k, folds, seed),
        "trustworthiness": trustworthiness(x, y, k, x_index),
        "continuity": continuity(x, y, k, x_nearest),
        "neighbor_preservation": neighbor_overlap(x_neighbors, neighbors(y, k)),
    }


def _float(v: Any) -> float:
    return np.nan if v is None else float(v)


def _read_map(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    meta = json.loads(read_parquet_meta(path)[META_KEY])
    df = pd.read_parquet(path)
    return meta, df[[c for c in "xyz" if c in df.columns]].to_numpy(np.float64)


def _stability(rows: pd.DataFrame, nbrs: dict[int, np.ndarray]) -> pd.Series:
    """Per map: mean neighbour overlap with the other seeds of its configuration."""
    out = pd.Series(np.nan, index=rows.index)
    for _, group in rows.groupby(["method", "dim", "perplexity"]):
        if len(group) < 2:
            continue
        for i in group.index:
            others = [neighbor_overlap(nbrs[i], nbrs[j]) for j in group.index if j != i]
            out[i] = float(np.mean(others))
    return out


def _placement(
    meta: Mapping[str, Any],
    idx: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    labels: np.ndarray,
    k: int,
    folds: int,
    seed: int,
) -> dict[str, float]:
    """n_fitted and the metrics of the fitted and of the placed metric points of a map
    fitted on a subsample (metadata `subsample`); NaN for a map of every point."""
    n = len(labels)
    out = dict.fromkeys(COLUMNS[COLUMNS.index("knn_map_fitted") :], np.nan)
    sub = meta.get("subsample")
    if not sub:
        return {"n_fitted": n, **out}
    strata = np.asarray(labels) if sub.get("stratified_by") else None
    fitted = np.isin(idx, stratified_subsample(n, sub["size"], strata, sub["seed"]))
    ls = np.asarray(labels)[idx]
    for name, rows in (("fitted", fitted), ("placed", ~fitted)):
        # kNN accuracy needs 2 points of a class per fold; a tiny part gets NaN.
        if (
            rows.sum() > 2 * k
            and np.bincount(np.unique(ls[rows], return_inverse=True)[1]).min() >= 2
        ):
            out[f"knn_map_{name}"] = knn_accuracy(ys[rows], ls[rows], k, folds, seed)
            out[f"trustworthiness_{name}"] = trustworthiness(xs[rows], ys[rows], k)
    return {"n_fitted": int(sub["size"]), **out}


def layer_metrics(
    features: np.ndarray | str | Path,
    labels: np.ndarray,
    embeddings: Sequence[str | Path],
    keys: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """metrics.parquet rows of every embedding of one layer (`keys`: model, ckpt, layer);
    `features`: the layer's array or its .npy file."""
    opts = with_defaults(options, "maps.metrics")
    x = _load(features)
    k, folds, seed = opts["k"], opts["folds"], opts["seed"]
    idx = subsample(len(x), opts["max_points"], seed)
    xs, ls = np.asarray(x[idx], dtype=np.float64), np.asarray(labels)[idx]
    x_nbrs, x_nearest = _feature_neighbors(xs, k)
    feat_acc = knn_accuracy(xs, ls, k, folds, seed)
    chance = float(np.bincount(np.unique(ls, return_inverse=True)[1]).max() / len(ls))
    maps = [_read_map(path) for path in embeddings]
    sampled = len(idx) < len(x)
    if sampled:
        # over all N on a stratified sample of query points, not the subsample's own
        trust = sampled_trust(
            x, [y for _, y in maps], labels, k, opts["max_points"], seed
        )
    else:
        x_index = rank_index(xs)
        exact = {
            "trust_queries": len(x),
            "trustworthiness_ci": 0.0,
            "continuity_ci": 0.0,
        }
    rows, map_nbrs = [], {}
    for i, (meta, y) in enumerate(maps):
        ys = y[idx]
        map_nbrs[i] = neighbors(ys, k)
        if sampled:
            m = trust[i] | {
                "knn_map": knn_accuracy(ys, ls, k, folds, seed),
                "neighbor_preservation": neighbor_overlap(x_nbrs, map_nbrs[i]),
            }
        else:
            m = exact | map_metrics(
                xs, ys, ls, k, folds, seed, x_nbrs, x_index, x_nearest
            )
        rows.append(
            {
                **keys,
                "method": meta["method"],
                **map_fields(read_spec(meta["method"], meta)),
                "n_points": len(x),
                "n_metric_points": len(idx),
                "chance": chance,
                "knn_features": feat_acc,
                **m,
                "knn_ratio": m["knn_map"] / feat_acc if feat_acc > 0 else np.nan,
                "kl_divergence": _float(meta.get("kl_divergence")),
                **_placement(meta, idx, xs, ys, labels, k, folds, seed),
            }
        )
    df = pd.DataFrame(rows)
    df["seed_stability"] = _stability(df, map_nbrs)
    df["diagnosis"] = [diagnose(r) for r in df.to_dict("records")]
    return df[COLUMNS]


def gather_metrics(parts: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Concatenate per-layer metrics files into one table, sorted by its keys."""
    df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    df = df.sort_values(KEYS, kind="stable", ignore_index=True)
    write_parquet(df, out)
    return df


def layer_summary(
    metrics: pd.DataFrame, layers: Sequence[str], ckpts: Sequence[str]
) -> pd.DataFrame:
    """Per (ckpt, layer): kNN accuracy in feature space and in the layer's best map.

    `layers` and `ckpts` give the order (depth, training); the best map is the one with
    the highest kNN accuracy.
    """
    best = metrics.loc[metrics.groupby(["model", "ckpt", "layer"])["knn_map"].idxmax()]
    out = best.rename(
        columns={"knn_map": "knn_best_map", "method": "best_method", "dim": "best_dim"}
    )
    out = out.rename(columns={"perplexity": "best_perplexity", "seed": "best_seed"})
    out["depth"] = out["layer"].map({name: i for i, name in enumerate(layers)})
    cols = ["model", "ckpt", "depth", "layer", "chance", "knn_features", "knn_best_map"]
    cols += ["best_method", "best_dim", "best_perplexity", "best_seed"]
    out = out.assign(_c=out["ckpt"].map({c: i for i, c in enumerate(ckpts)}))
    return out.sort_values(["_c", "depth"], ignore_index=True)[cols]


def plot_layer_summary(
    summary: pd.DataFrame, png: str | Path, pdf: str | Path, ckpts: Sequence[str]
) -> None:
    """Line plot: kNN accuracy per layer (x, depth order), one colour per checkpoint;
    solid = features, dashed = best map, dotted = chance. PNG and PDF, fixed metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=150)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(1, len(ckpts))))
    for ckpt, color in zip(ckpts, colors, strict=True):
        s = summary[summary["ckpt"] == ckpt].sort_values("depth")
        ax.plot(
            s["layer"], s["knn_features"], "-o", color=color, label=f"{ckpt} features"
        )
        ax.plot(
            s["layer"], s["knn_best_map"], "--s", color=color, label=f"{ckpt} best map"
        )
    ax.axhline(summary["chance"].max(), color="grey", ls=":", lw=1, label="chance")
    ax.set(xlabel="layer (input → output)", ylabel="10-NN accuracy (cross-validated)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    with atomic_path(pdf) as tmp:
        fig.savefig(
            tmp, format="pdf", metadata={"CreationDate": None, "Producer": None}
        )
    plt.close(fig)
