import hashlib
import json
import logging

import numpy as np
import pandas as pd
import pytest
from cnnatlas.io import read_parquet_meta
from cnnatlas.mapping import write_maps
from cnnatlas.maps import MapSpec, get_method, map_fields
from cnnatlas.maps.toolbox import FeatureError, check_features, prepare_features
from cnnatlas.maps.tsne import (
    check_perplexity,
    fit_options,
    fit_tsne,
    pca_initialization,
    rescale,
    tsne_affinities,
    tsne_map,
)

FAST = {"n_iter": 60, "early_exaggeration_iter": 30}


def blobs(n=60, d=80, centers=3, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 6, (centers, d))
    labels = np.arange(n) % centers
    return (means[labels] + rng.normal(0, 1, (n, d))).astype(np.float32), labels


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sweep(method, dims=(2, 3), perplexities=(5.0, 10.0), seeds=(0, 1)):
    config = {"dims": dims, "perplexities": perplexities, "seeds": seeds}
    return get_method(method).sweep(config)


OPTIONS = {"tsne": FAST, "pca": {}, "umap": {"n_neighbors": 8}}


@pytest.mark.parametrize("method", ["tsne", "pca", "umap"])
def test_every_map_has_the_contract_shape_and_is_reproducible(tmp_path, method):
    x, _ = blobs()
    feats = tmp_path / "layer.npy"
    np.save(feats, x)
    specs = sweep(method)
    runs = []
    for run in ("a", "b"):
        outputs = {
            s: tmp_path / run / f"{s.dim}-{s.perplexity}-{s.seed}.parquet"
            for s in specs
        }
        write_maps(feats, method, outputs, OPTIONS[method], n_jobs=1)
        runs.append(outputs)
    for spec in specs:
        path = runs[0][spec]
        df = pd.read_parquet(path)
        assert list(df.columns) == ["image_id", "x", "y", "z"][: spec.dim + 1]
        assert df["image_id"].tolist() == list(range(len(x)))
        assert df["image_id"].dtype == np.int64 and df["x"].dtype == np.float32
        coords = df[["x", "y", "z"][: spec.dim]].to_numpy()
        assert np.isfinite(coords).all() and coords.std(axis=0).min() > 0
        meta = json.loads(read_parquet_meta(path)["cnnatlas.map"])
        # the sweep point as the contract records it: 0 for an axis the method lacks
        assert {k: meta[k] for k in ("method", "dim", "perplexity", "seed")} == {
            "method": method,
            **map_fields(spec),
        }
        assert sha(path) == sha(runs[1][spec])  # same config, same threads: same bytes
    if method != "pca":  # specs[0] and specs[1] differ only in their seed
        assert specs[0].seed != specs[1].seed
        a, b = (pd.read_parquet(runs[0][s]) for s in specs[:2])
        assert not a.equals(b)


def test_tsne_metadata_records_kl_and_gradient_method(tmp_path):
    x, _ = blobs()
    np.save(tmp_path / "f.npy", x)
    outputs = {
        MapSpec(2, 5.0, 0): tmp_path / "2d.parquet",
        MapSpec(3, 5.0, 0): tmp_path / "3d.parquet",
    }
    write_maps(tmp_path / "f.npy", "tsne", outputs, FAST)
    m2 = json.loads(read_parquet_meta(tmp_path / "2d.parquet")["cnnatlas.map"])
    m3 = json.loads(read_parquet_meta(tmp_path / "3d.parquet")["cnnatlas.map"])
    assert m2["kl_divergence"] > 0 and m3["kl_divergence"] > 0
    assert m3["gradient"] == "bh" and m2["input_dims"] == 50  # D=80 -> PCA-50 first


def test_pca_map_records_explained_variance(tmp_path):
    x, _ = blobs()
    np.save(tmp_path / "f.npy", x)
    write_maps(tmp_path / "f.npy", "pca", {MapSpec(2): tmp_path / "p.parquet"})
    meta = json.loads(read_parquet_meta(tmp_path / "p.parquet")["cnnatlas.map"])
    ratio = meta["explained_variance_ratio"]
    assert len(ratio) == 2 and 0 < ratio[1] <= ratio[0] < 1
    assert meta["explained_variance_total"] == pytest.approx(sum(ratio))


def test_recalibrated_affinities_equal_fresh_ones():
    x, _ = blobs()
    xp = prepare_features(x)
    shared = tsne_affinities(xp, 15)
    shared.set_perplexity(5)
    fresh = tsne_affinities(xp, 5)
    np.testing.assert_allclose(shared.P.toarray(), fresh.P.toarray(), atol=1e-12)


def test_fit_from_a_given_initialisation_keeps_the_layout():
    """The reuse path of checkpoint-aligned maps: init from a rescaled earlier map."""
    x, _ = blobs()
    first, _ = tsne_map(x, 2, 10, seed=0, options=FAST)
    drifted = x + np.random.default_rng(1).normal(0, 0.1, x.shape).astype(np.float32)
    aff = tsne_affinities(prepare_features(drifted), 10)
    fit = fit_options({"early_exaggeration_iter": 0, "n_iter": 50})
    second, kl = fit_tsne(aff, rescale(first), seed=0, **fit)
    assert second.shape == first.shape and np.isfinite(kl)
    assert np.corrcoef(first[:, 0], second[:, 0])[0, 1] > 0.9


def test_pca_initialization_is_rescaled():
    x, _ = blobs()
    init = pca_initialization(prepare_features(x), 3)
    assert init.shape == (60, 3)
    assert init[:, 0].std() == pytest.approx(1e-4)


def test_nan_features_are_an_error_naming_file_and_count():
    x, _ = blobs()
    x[3, 1] = np.nan
    x[7, :2] = np.inf
    with pytest.raises(
        FeatureError, match=r"layer\.npy: 3 NaN/Inf values in 2 of 60 rows"
    ):
        check_features(x, name="layer.npy")


def test_constant_features_and_duplicates_are_logged_not_fatal(tmp_path, caplog):
    x, _ = blobs(d=20)
    x[:, 4] = 1.5
    x[10] = x[11]
    x[12] = x[11]
    with caplog.at_level(logging.WARNING):
        check_features(x, name="f.npy")
    assert "1 of 20 features are constant" in caplog.text
    assert "2 duplicate points" in caplog.text
    z = prepare_features(x, standardize=True)
    assert np.isfinite(z).all() and (z[:, 4] == 0).all()
    np.save(tmp_path / "f.npy", x)
    out = {MapSpec(2, 5.0, 0): tmp_path / "t.parquet"}
    write_maps(tmp_path / "f.npy", "tsne", out, {**FAST, "standardize": True})
    assert np.isfinite(pd.read_parquet(tmp_path / "t.parquet")[["x", "y"]]).all().all()


def test_perplexity_too_large_errors_or_clamps(tmp_path, caplog):
    with pytest.raises(
        FeatureError, match=r"f\.npy: perplexity 30 is too large for 30 points"
    ):
        check_perplexity(30, 30, "f.npy")
    with caplog.at_level(logging.WARNING):
        assert check_perplexity(30, 30, "f.npy", policy="clamp") == pytest.approx(
            29 / 3
        )
    assert "clamped" in caplog.text
    x, _ = blobs(n=30)
    np.save(tmp_path / "f.npy", x)
    out = {MapSpec(2, 30.0, 0): tmp_path / "t.parquet"}
    with pytest.raises(FeatureError, match="30 points"):
        write_maps(tmp_path / "f.npy", "tsne", out, FAST)
    write_maps(
        tmp_path / "f.npy", "tsne", out, {**FAST, "perplexity_too_large": "clamp"}
    )
    meta = json.loads(read_parquet_meta(tmp_path / "t.parquet")["cnnatlas.map"])
    assert meta["perplexity"] == 30 and meta["effective_perplexity"] == pytest.approx(
        29 / 3
    )
