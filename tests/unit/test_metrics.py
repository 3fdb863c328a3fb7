import numpy as np
import pandas as pd
import pytest
from cnnatlas.mapping import write_embedding
from cnnatlas.maps import MapSpec, get_method
from cnnatlas.metrics import (
    COLUMNS,
    RECALL_QUERIES,
    continuity,
    diagnose,
    feature_neighbors,
    gather_metrics,
    knn_accuracy,
    layer_metrics,
    layer_summary,
    neighbor_overlap,
    neighbors,
    plot_layer_summary,
    sampled_trust,
    subsample,
    trustworthiness,
)
from PIL import Image


def blobs(n=150, d=20, centers=5, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 8, (centers, d))
    labels = np.arange(n) % centers
    return means[labels] + rng.normal(0, 1, (n, d)), labels


def test_a_map_equal_to_the_features_is_perfectly_faithful():
    x, y = blobs(d=2)
    assert trustworthiness(x, x, 10) == pytest.approx(1.0)
    assert continuity(x, x, 10) == pytest.approx(1.0)
    assert neighbor_overlap(neighbors(x, 10), neighbors(x, 10)) == 1.0


def test_a_random_map_is_near_chance():
    x, y = blobs()
    noise = np.random.default_rng(1).normal(size=(len(x), 2))
    assert knn_accuracy(x, y, 10, 5, 0) > 0.95
    assert abs(knn_accuracy(noise, y, 10, 5, 0) - 0.2) < 0.1  # 5 balanced classes
    assert trustworthiness(x, noise, 10) < 0.65
    assert neighbor_overlap(neighbors(x, 10), neighbors(noise, 10)) < 0.2


def test_neighbors_exclude_the_point_itself_even_with_duplicates():
    x, _ = blobs(n=40)
    x[5] = x[6]
    idx = neighbors(x, 4)
    assert idx.shape == (40, 4)
    assert not (idx == np.arange(40)[:, None]).any()
    assert 6 in idx[5] and 5 in idx[6]


def test_subsample_is_seeded_and_bounded():
    assert subsample(10, 50, 0).tolist() == list(range(10))
    a, b = subsample(1000, 100, seed=3), subsample(1000, 100, seed=3)
    assert len(a) == 100 and (a == b).all() and (np.diff(a) > 0).all()


def test_diagnosis_names_the_problem_in_numbers():
    row = dict(
        knn_features=0.93,
        knn_map=0.41,
        knn_ratio=0.44,
        chance=0.1,
        trustworthiness=0.95,
        seed_stability=0.8,
        method="tsne",
    )
    text = diagnose(row)
    assert "loses class structure" in text and "0.93 → 0.41" in text
    assert "perplexity" in text
    assert diagnose({**row, "knn_map": 0.92, "knn_ratio": 0.99}) == "faithful"
    weak = diagnose({**row, "knn_features": 0.15, "knn_map": 0.14, "knn_ratio": 0.93})
    assert "features themselves barely separate" in weak
    unstable = diagnose(
        {**row, "knn_map": 0.92, "knn_ratio": 0.99, "seed_stability": 0.3}
    )
    assert "unstable across seeds" in unstable


def test_layer_metrics_rows_stability_and_summary(tmp_path):
    x, y = blobs()
    np.save(tmp_path / "f.npy", x.astype(np.float32))
    rng = np.random.default_rng(0)
    paths = []
    for seed in (0, 1):  # a faithful "map" (2 features) and noise
        for method, coords in (
            ("umap", x[:, :2]),
            ("tsne", rng.normal(size=(len(x), 2))),
        ):
            p = tmp_path / f"{method}-{seed}.parquet"
            spec = get_method(method).spec(2, perplexity=5.0, seed=seed)
            write_embedding(coords, p, method, spec, {})
            paths.append(p)
    keys = {"model": "m", "ckpt": "c", "layer": "l"}
    df = layer_metrics(tmp_path / "f.npy", y, paths, keys, {"k": 10})
    assert list(df.columns) == COLUMNS and len(df) == 4
    umap = df[df.method == "umap"]
    tsne = df[df.method == "tsne"]
    # the sweep point from each map's metadata; 0 for UMAP's perplexity (no such axis)
    assert umap.perplexity.tolist() == [0.0, 0.0] and tsne.perplexity.tolist() == [5, 5]
    assert df.seed.tolist() == [0, 0, 1, 1]
    assert (umap.seed_stability == 1.0).all()  # identical maps across seeds
    assert (tsne.seed_stability < 0.3).all()
    assert (tsne.knn_map < 0.45).all() and (tsne.diagnosis != "faithful").all()
    assert np.isnan(df.kl_divergence).all()
    # the array itself (as measure_maps passes it, read once) gives the same rows
    same = layer_metrics(np.load(tmp_path / "f.npy"), y, paths, keys, {"k": 10})
    pd.testing.assert_frame_equal(same, df)
    part = tmp_path / "part.parquet"
    df.to_parquet(part)
    gathered = gather_metrics([part], tmp_path / "metrics.parquet")
    assert gathered.equals(pd.read_parquet(tmp_path / "metrics.parquet"))
    summary = layer_summary(gathered, ["l"], ["c"])
    assert len(summary) == 1 and summary.loc[0, "best_method"] == "umap"
    assert summary.loc[0, "knn_best_map"] == pytest.approx(umap.knn_map.max())


def test_layer_summary_plot_is_reproducible(tmp_path):
    summary = pd.DataFrame(
        {
            "model": "m",
            "ckpt": ["a", "a", "b", "b"],
            "depth": [0, 1, 0, 1],
            "layer": ["conv", "fc", "conv", "fc"],
            "chance": 0.1,
            "knn_features": [0.3, 0.5, 0.6, 0.95],
            "knn_best_map": [0.25, 0.45, 0.6, 0.93],
        }
    )
    for run in ("1", "2"):
        plot_layer_summary(
            summary, tmp_path / f"{run}.png", tmp_path / f"{run}.pdf", ["a", "b"]
        )
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()
    assert (tmp_path / "1.pdf").read_bytes() == (tmp_path / "2.pdf").read_bytes()
    assert Image.open(tmp_path / "1.png").size[0] > 500
    assert (tmp_path / "1.pdf").read_bytes().startswith(b"%PDF")


def test_trustworthiness_and_continuity_are_scikit_learns_bit_for_bit():
    from cnnatlas.metrics import continuity, nearest, rank_index, trustworthiness
    from sklearn.manifold import trustworthiness as sk_trust

    rng = np.random.default_rng(4)
    # ties: integer features with repeated rows, and a map on a coarse grid
    x = rng.integers(0, 3, (300, 6)).astype(np.float64)
    y = np.round(rng.normal(size=(300, 2)), 1)
    for k in (5, 10):
        assert trustworthiness(x, y, k) == sk_trust(x, y, n_neighbors=k)
        assert continuity(x, y, k) == sk_trust(y, x, n_neighbors=k)
        shared = trustworthiness(x, y, k, x_index=rank_index(x))
        assert shared == sk_trust(x, y, n_neighbors=k)
        assert continuity(x, y, k, x_nearest=nearest(x, k)) == sk_trust(
            y, x, n_neighbors=k
        )
    assert 0.4 < trustworthiness(x, y, 10) < 0.7  # a random map of real structure
    assert trustworthiness(x, x[:, :2] * 0 + x[:, :2], 10) < 1.0


@pytest.mark.parametrize("d", [6, 40])  # a tree search and a brute-force one
def test_a_layers_two_neighbour_lists_come_from_one_search(d):
    """layer_metrics searches the features once for `neighbors` (neighbour
    preservation) and `nearest` (continuity, scikit-learn's bit for bit): the same
    indices as two searches, with ties, duplicates and a point with more than k
    duplicates; and fewer points than 2k + 1 (two searches, the counts differ)."""
    from cnnatlas.metrics import _feature_neighbors, _k, nearest

    rng = np.random.default_rng(d)
    x = rng.integers(0, 3, (300, d)).astype(np.float64)
    x[:15] = x[15]  # 16 copies of one point, more than k
    for data, k in ((x, 10), (x, 5), (x[:12], 10)):
        nbrs, near = _feature_neighbors(data, k)
        np.testing.assert_array_equal(nbrs, neighbors(data, k))
        np.testing.assert_array_equal(near, nearest(data, _k(len(data), k)))


def test_layer_metrics_search_the_features_once(tmp_path, monkeypatch):
    from cnnatlas import metrics

    x, y = blobs()
    p = tmp_path / "pca.parquet"
    write_embedding(x[:, :2], p, "pca", MapSpec(2), {})
    fitted = []

    class Counting(metrics.NearestNeighbors):
        def fit(self, data, *args, **kwargs):
            fitted.append(np.shape(data)[1])
            return super().fit(data, *args, **kwargs)

    monkeypatch.setattr(metrics, "NearestNeighbors", Counting)
    layer_metrics(x, y, [p], {"model": "m", "ckpt": "c", "layer": "l"}, {"k": 10})
    assert fitted.count(x.shape[1]) == 1


def test_feature_neighbors_above_exact_max_come_from_an_hnsw_index(tmp_path):
    """Above exact_max the neighbours come from the HNSW index: their distances are the
    true ones, nearest first, no image is its own neighbour, the recall is the share of
    exact neighbours found (computed here from all pairwise distances), and a second
    search writes the same bytes."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 24)) * 4
    x = (centres[rng.integers(0, 8, 1500)] + rng.normal(size=(1500, 24))).astype(
        np.float32
    )
    k = 10
    runs = []
    for run in ("a", "b"):
        ids_path, dist_path = tmp_path / f"{run}.npy", tmp_path / f"{run}.d.npy"
        found = feature_neighbors(x, ids_path, k, dist_path, exact_max=1000, seed=3)
        runs.append((ids_path.read_bytes(), dist_path.read_bytes()))
    assert runs[0] == runs[1]
    ids, dist = np.load(tmp_path / "a.npy").astype(int), np.load(tmp_path / "a.d.npy")
    assert found["search"] == "hnsw" and found["k"] == k and ids.shape == (1500, k)
    assert not (ids == np.arange(1500)[:, None]).any()
    true = np.linalg.norm(x[:, None] - x[ids], axis=2)
    assert np.allclose(dist, true, rtol=1e-4, atol=1e-4)
    assert (np.diff(dist, axis=1) >= -1e-4).all()
    queries = subsample(1500, RECALL_QUERIES, 3)
    assert found["recall_queries"] == len(queries) == 1000
    d = np.linalg.norm(x[queries, None] - x[None], axis=2)
    d[np.arange(len(queries)), queries] = np.inf
    exact = np.argsort(d, axis=1)[:, :k]
    hits = [len(set(a) & set(b)) for a, b in zip(ids[queries], exact, strict=True)]
    assert found["recall_at_k"] == pytest.approx(np.mean(hits) / k)
    assert found["recall_at_k"] >= 0.95
    # at or below exact_max the search is exact
    exact_run = feature_neighbors(x, tmp_path / "e.npy", k, exact_max=1500, seed=0)
    assert exact_run["search"] == "exact" and exact_run["recall_at_k"] == 1.0
    assert np.array_equal(exact_run["ids"], neighbors(x, k))


def _noisy_map(x, seed=0):
    rng = np.random.default_rng(seed)
    return x[:, :2] + rng.normal(0, 2.0, (len(x), 2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sampled_trust_with_every_point_a_query_is_scikit_learns(dtype):
    x, labels = blobs(n=300)
    y = _noisy_map(x)
    (got,) = sampled_trust(x.astype(dtype), [y], labels, 10, len(x), 0)
    assert got["trust_queries"] == 300
    assert got["trustworthiness_ci"] == got["continuity_ci"] == 0.0
    assert got["trustworthiness"] == pytest.approx(trustworthiness(x, y, 10), abs=1e-9)
    assert got["continuity"] == pytest.approx(continuity(x, y, 10), abs=1e-9)


def test_count_below_counts_ties_and_skips_the_point_itself():
    from cnnatlas.metrics import _count_below

    rng = np.random.default_rng(1)
    d = rng.integers(0, 6, (7, 40)).astype(np.float64)  # many ties
    d[np.arange(7), np.arange(7)] = np.inf  # each row's own point
    t = np.take_along_axis(d, rng.integers(7, 40, (7, 5)), axis=1)
    want = (d[:, None, :] < t[:, :, None]).sum(axis=2)
    assert np.array_equal(_count_below(d, t), want)


def test_sampled_trust_intervals_cover_the_values_over_all_points():
    # 40 seeded samples of 150 of 600 points: the 95 % intervals hold the exact value
    # about 95 % of the time (a wrong variance formula gives far less or far more)
    x, labels = blobs(n=600, centers=6)
    maps = [_noisy_map(x), x[:, 2:4]]
    exact = sampled_trust(x, maps, labels, 10, len(x), 0)
    hits, widths = [], []
    for seed in range(40):
        for got, want in zip(
            sampled_trust(x, maps, labels, 10, 150, seed), exact, strict=True
        ):
            assert got["trust_queries"] == 150
            for key in ("trustworthiness", "continuity"):
                ci = got[f"{key}_ci"]
                widths.append(ci)
                hits.append(abs(got[key] - want[key]) <= ci)
    assert 0.85 <= np.mean(hits) <= 1.0 and 0 < np.median(widths) < 0.05
    again = sampled_trust(x, maps, labels, 10, 150, 3)
    assert again == sampled_trust(x, maps, labels, 10, 150, 3)


def test_layer_metrics_above_max_points_estimate_trust_over_all_points(tmp_path):
    x, labels = blobs(n=400)
    y = _noisy_map(x)
    p = tmp_path / "tsne.parquet"
    write_embedding(y, p, "tsne", MapSpec(2, 5.0, 0), {})
    keys = {"model": "m", "ckpt": "c", "layer": "l"}
    small = layer_metrics(x, labels, [p], keys, {"k": 10, "max_points": 200})
    full = layer_metrics(x, labels, [p], keys, {"k": 10, "max_points": 400})
    row, ref = small.iloc[0], full.iloc[0]
    assert row.n_metric_points == 200 and row.trust_queries == 200
    assert ref.trust_queries == 400 and ref.trustworthiness_ci == 0.0
    assert ref.trustworthiness == trustworthiness(x, y, 10)  # exact, bit for bit
    assert 0 < row.trustworthiness_ci < 0.05
    for key in ("trustworthiness", "continuity"):
        # read back from the map file (float32 coordinates), within the interval
        assert abs(row[key] - ref[key]) <= 1.5 * row[f"{key}_ci"]
