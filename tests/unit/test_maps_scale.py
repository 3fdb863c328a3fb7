"""The maps stage at scale, at tiny N with tiny thresholds: t-SNE maps side by side on
the job's cores with the same bytes, 3-D maps fitted on a stratified subsample with the rest placed, the
memory-flat exact PCA, and the metrics of placed points."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.io import read_parquet_meta
from cnnatlas.mapping import write_maps
from cnnatlas.maps import MapSpec, get_method
from cnnatlas.maps.toolbox import (
    check_features,
    prepare_features,
    principal_components,
    stratified_subsample,
)
from cnnatlas.metrics import layer_metrics

from tests.unit.test_mapping import blobs

FAST = {"n_iter": 40, "early_exaggeration_iter": 20}
KEYS = {"model": "m", "ckpt": "c", "layer": "l"}


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meta(path):
    return json.loads(read_parquet_meta(path)["cnnatlas.map"])


def _run(tmp_path, name, x, labels, options, specs, n_jobs=1):
    (tmp_path / name).mkdir()
    feats = tmp_path / name / "layer.npy"  # its name goes into the metadata
    np.save(feats, x)
    out = {s: tmp_path / name / f"{s.dim}-{s.perplexity}-{s.seed}.pq" for s in specs}
    write_maps(feats, "tsne", out, options, n_jobs, labels)
    return out


def test_maps_side_by_side_on_more_cores_are_the_same_bytes(tmp_path):
    """A job given 2 or 3 cores fits its maps in forked workers: every map (2-D FFT and
    Barnes-Hut, whole 3-D, subsampled 3-D) has the bytes it has on 1 core."""
    x, labels = blobs(n=120, d=60)
    specs = [MapSpec(d, p, s) for d in (2, 3) for p in (5.0, 10.0) for s in (0, 1)]
    opts = {**FAST, "max_points_3d": 100}
    one = _run(tmp_path, "one", x, labels, opts, specs, n_jobs=1)
    two = _run(tmp_path, "two", x, labels, opts, specs, n_jobs=2)
    three = _run(tmp_path, "three", x, labels, opts, specs, n_jobs=3)
    for s in specs:
        assert sha(one[s]) == sha(two[s]) == sha(three[s]), s
        assert "n_jobs" not in meta(one[s])  # every fit runs on one thread
    assert meta(one[specs[0]])["gradient"] == "bh"
    assert meta(one[specs[-1]])["subsample"]["size"] == 100
    # seeds and perplexities give different maps (each task kept its own P and init)
    ys = [pd.read_parquet(one[s])[["x", "y"]].to_numpy() for s in specs[:4]]
    assert all(not np.array_equal(ys[i], ys[j]) for i in range(4) for j in range(i))
    fft = {**FAST, "negative_gradient_method": "fft"}
    a = _run(tmp_path, "fa", x, labels, fft, specs[:4], n_jobs=1)
    b = _run(tmp_path, "fb", x, labels, fft, specs[:4], n_jobs=2)
    assert all(sha(a[s]) == sha(b[s]) for s in specs[:4])
    assert meta(a[specs[0]])["gradient"] == "fft"
    # pynndescent (numba) cannot run in a forked worker: its maps run one after the other
    nnd = {**FAST, "neighbors": "pynndescent"}
    a = _run(tmp_path, "na", x, labels, nnd, specs[:2], n_jobs=1)
    b = _run(tmp_path, "nb", x, labels, nnd, specs[:2], n_jobs=2)
    assert all(sha(a[s]) == sha(b[s]) for s in specs[:2])


def test_stratified_subsample_keeps_class_shares_and_is_seeded():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_subsample(100, 20, labels, seed=3)
    assert np.array_equal(idx, stratified_subsample(100, 20, labels, seed=3))
    assert not np.array_equal(idx, stratified_subsample(100, 20, labels, seed=4))
    assert np.bincount(labels[idx]).tolist() == [12, 6, 2]
    assert np.all(np.diff(idx) > 0)
    assert len(stratified_subsample(100, 20, None, 0)) == 20
    assert np.array_equal(stratified_subsample(10, 20, labels[:10], 0), np.arange(10))


def test_large_3d_maps_are_fitted_on_a_subsample_and_the_rest_placed(tmp_path):
    x, labels = blobs(n=120, d=60)
    specs = [MapSpec(2, 10.0, 0), MapSpec(3, 10.0, 0), MapSpec(3, 10.0, 1)]
    opts = {**FAST, "max_points_3d": 45, "subsample_seed": 5}
    a = _run(tmp_path, "a", x, labels, opts, specs)
    b = _run(tmp_path, "b", x, labels, opts, specs)
    assert all(sha(a[s]) == sha(b[s]) for s in specs)
    assert "subsample" not in meta(a[specs[0]])  # 2-D: every point fitted
    sub = meta(a[specs[1]])["subsample"]
    assert sub["size"] == 45 and sub["of"] == 120 and sub["seed"] == 5
    assert sub["stratified_by"] == "label" and "transform" in sub["method"]
    y = pd.read_parquet(a[specs[1]])[["x", "y", "z"]].to_numpy()
    assert y.shape == (120, 3) and np.isfinite(y).all()
    # the placed points land by their class: nearest fitted centroid is their own
    fitted = stratified_subsample(120, 45, labels, 5)
    placed = np.setdiff1d(np.arange(120), fitted)
    cents = np.stack([y[fitted][labels[fitted] == c].mean(0) for c in range(3)])
    nearest = np.argmin(((y[placed, None] - cents) ** 2).sum(-1), axis=1)
    assert (nearest == labels[placed]).mean() > 0.9
    # the metrics show what was done
    feats = tmp_path / "a" / "layer.npy"
    df = layer_metrics(feats, labels, [a[s] for s in specs], KEYS, {"k": 5})
    assert df["n_fitted"].tolist() == [120, 45, 45]
    assert df.loc[0, ["knn_map_fitted", "knn_map_placed"]].isna().all()
    for col in ["knn_map_fitted", "trustworthiness_fitted", "knn_map_placed"]:
        assert df.loc[1:, col].between(0.5, 1).all(), col


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 16 rows: the chunked passes run over several chunks at tiny N."""
    import cnnatlas.maps.toolbox

    monkeypatch.setattr(cnnatlas.maps.toolbox, "CHUNK", 16)
    return 16


def test_pca_is_exact_deterministic_and_chunked(tmp_path, small_chunks):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    n = 2 * small_chunks + 7  # three chunks
    # correlated columns of unequal scales: distinct eigenvalues, raw and z-scored
    mix = rng.normal(size=(12, 12)) * np.arange(1, 13)
    x = (rng.normal(size=(n, 12)) * np.arange(12, 0, -1) @ mix).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ours, ratio = principal_components(mm, 4, False)
    ref = PCA(n_components=4, svd_solver="full").fit(x.astype(np.float64))
    want = ref.transform(x.astype(np.float64))
    assert np.allclose(ours, want, atol=1e-8)  # same signs as scikit-learn's svd_flip
    assert np.allclose(ratio, ref.explained_variance_ratio_)
    assert np.array_equal(ours, principal_components(x, 4, False)[0])  # memmap = array
    # the pre-step, standardised: the same as z-scoring then PCA
    x64 = x.astype(np.float64)
    z = (x64 - x64.mean(0)) / x64.std(0)
    want = PCA(n_components=5, svd_solver="full").fit_transform(z)
    assert np.allclose(prepare_features(mm, True, 5), want, atol=1e-6)
    # check_features keeps a float32 memmap as it is (no copy)
    assert check_features(mm) is mm


def test_pca_maps_record_the_solver_and_explained_variance(tmp_path):
    x, _ = blobs(n=40, d=8)
    maps = list(get_method("pca").maps(x, [MapSpec(2), MapSpec(3)]))
    (s2, c2, p2), (s3, c3, p3) = maps
    assert np.array_equal(c2, c3[:, :2])
    assert p3["solver"] == "covariance_eigh_chunked"
    assert 0 < p2["explained_variance_total"] < p3["explained_variance_total"] <= 1


def test_pca_of_few_wide_points_uses_the_gram_matrix_and_stays_exact(small_chunks):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    n = 3 * small_chunks + 5  # four chunks of rows, D > N
    x = (rng.normal(size=(n, 6)) @ rng.normal(size=(6, n + 30))).astype(np.float32)
    x += rng.normal(0, 0.1, x.shape).astype(np.float32)
    ours, ratio = principal_components(x, 3, False)
    ref = PCA(n_components=3, svd_solver="full").fit(x.astype(np.float64))
    assert np.allclose(ours, ref.transform(x.astype(np.float64)), atol=1e-6)
    assert np.allclose(ratio, ref.explained_variance_ratio_)


def test_labels_of_another_length_stop_the_job_naming_both_files(tmp_path):
    from cnnatlas.maps.toolbox import FeatureError

    x, labels = blobs(n=30, d=8)
    np.save(tmp_path / "layer.npy", x)
    out = {MapSpec(2, 5.0, 0): tmp_path / "m.parquet"}
    with pytest.raises(FeatureError, match=r"layer.npy: 30 rows but .*predictions"):
        write_maps(tmp_path / "layer.npy", "tsne", out, FAST, 1, labels[:29])
    assert not out[MapSpec(2, 5.0, 0)].exists()


def test_a_job_reads_each_checkpoints_labels_once(tmp_path, monkeypatch):
    """A job of every layer of a checkpoint (or of every checkpoint, a batched method)
    reads each predictions.parquet once and writes what write_maps writes per layer."""
    from cnnatlas import mapping

    x, labels = blobs(n=40, d=8)
    preds = tmp_path / "predictions.parquet"
    pd.DataFrame({"image_id": np.arange(40), "label": labels}).to_parquet(preds)
    jobs = []
    for layer in ("a", "b"):
        np.save(tmp_path / f"{layer}.npy", x + (layer == "b"))
        maps = [[2, 5, 0, str(tmp_path / f"{layer}-job.parquet")]]
        jobs.append({"features": tmp_path / f"{layer}.npy", "predictions": str(preds)})
        jobs[-1]["maps"] = maps
        write_maps(
            tmp_path / f"{layer}.npy",
            "tsne",
            {MapSpec(2, 5.0, 0): tmp_path / f"{layer}-one.parquet"},
            FAST,
            1,
            labels,
        )
    reads = []
    read_labels = mapping.read_labels
    monkeypatch.setattr(
        mapping, "read_labels", lambda p: reads.append(p) or read_labels(p)
    )
    mapping.write_job_maps(jobs, "tsne", FAST, 1)
    assert reads == [str(preds)]
    for layer in ("a", "b"):
        assert sha(tmp_path / f"{layer}-job.parquet") == sha(
            tmp_path / f"{layer}-one.parquet"
        )


def test_a_fit_leaves_the_shared_knn_graph_as_it_was():
    """openTSNE exaggerates P in place and divides it back (a few ulps off): a shared
    graph drifted with every fit, so a map depended on the maps fitted before it in the
    process, and a job's maps differed between 1 and 2 cores (seen at 4,000 points)."""
    from cnnatlas.maps.tsne import (
        fit_options,
        fit_tsne,
        pca_initialization,
        tsne_affinities,
    )

    x, _ = blobs(n=90, d=20)
    xp = prepare_features(x)
    aff = tsne_affinities(xp, 10)
    before = aff.P.copy()
    first, _ = fit_tsne(aff, pca_initialization(xp, 2), seed=1, **fit_options(FAST))
    assert (aff.P != before).nnz == 0
    # the same map again, after another fit in this process: the same bytes
    again, _ = fit_tsne(aff, pca_initialization(xp, 2), seed=1, **fit_options(FAST))
    assert np.array_equal(first, again)
    # what the copy guards against: exaggerating in place does not round-trip
    drifted = before.copy()
    drifted *= 12.0
    drifted /= 12.0
    assert (drifted != before).nnz > 0


def test_large_2d_maps_are_fitted_on_a_subsample_only_with_max_points_2d(tmp_path):
    """max_points_2d bounds 2-D maps as max_points_3d does 3-D ones, each its own size;
    by default (null) a 2-D map fits every point."""
    x, labels = blobs(n=120, d=60)
    specs = [MapSpec(2, 10.0, 0), MapSpec(3, 10.0, 0)]
    opts = {**FAST, "max_points_2d": 60, "max_points_3d": 45}
    a = _run(tmp_path, "a", x, labels, opts, specs)
    sub2, sub3 = (meta(a[s])["subsample"] for s in specs)
    assert (sub2["size"], sub3["size"]) == (60, 45) and sub2["of"] == 120
    y = pd.read_parquet(a[specs[0]])[["x", "y"]].to_numpy()
    fitted = stratified_subsample(120, 60, labels, 0)
    placed = np.setdiff1d(np.arange(120), fitted)
    cents = np.stack([y[fitted][labels[fitted] == c].mean(0) for c in range(3)])
    nearest = np.argmin(((y[placed, None] - cents) ** 2).sum(-1), axis=1)
    assert (nearest == labels[placed]).mean() > 0.9
    df = layer_metrics(
        tmp_path / "a" / "layer.npy", labels, [a[s] for s in specs], KEYS, {"k": 5}
    )
    assert df["n_fitted"].tolist() == [60, 45]
    whole = _run(tmp_path, "w", x, labels, {**FAST, "max_points_3d": 45}, specs[:1])
    assert "subsample" not in meta(whole[specs[0]])
