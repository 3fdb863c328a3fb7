"""UMAP maps above maps.umap.max_points: fitted on a class-stratified subsample, the
other points placed by the fitted model's transform, in fixed blocks of rows."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.io import read_parquet_meta
from cnnatlas.mapping import write_maps
from cnnatlas.maps import get_method
from cnnatlas.maps.toolbox import place_points, stratified_subsample
from cnnatlas.metrics import layer_metrics

from tests.unit.test_mapping import blobs

UMAP = get_method("umap")
SPECS = [UMAP.spec(2, seed=0), UMAP.spec(3, seed=1)]
KEYS = {"model": "m", "ckpt": "c", "layer": "l"}


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def meta(path):
    return json.loads(read_parquet_meta(path)["cnnatlas.map"])


def _run(tmp_path, name, x, labels, options):
    (tmp_path / name).mkdir()
    feats = tmp_path / name / "layer.npy"
    np.save(feats, x)
    out = {s: tmp_path / name / f"umap-{s.dim}d-s{s.seed}.parquet" for s in SPECS}
    write_maps(feats, "umap", out, options, 1, labels)
    return out


@pytest.fixture(scope="module")
def data():
    return blobs(n=300, d=20, centers=4)


def test_large_maps_are_fitted_on_a_subsample_and_the_rest_placed(tmp_path, data):
    x, labels = data
    opts = {"n_neighbors": 10, "max_points": 120, "subsample_seed": 2}
    a = _run(tmp_path, "a", x, labels, opts)
    b = _run(tmp_path, "b", x, labels, opts)
    fitted = stratified_subsample(300, 120, labels, 2)
    assert np.bincount(labels[fitted]).tolist() == [30, 30, 30, 30]
    placed = np.setdiff1d(np.arange(300), fitted)
    for spec in SPECS:
        assert sha(a[spec]) == sha(b[spec]), spec  # seeded: the same bytes
        y = pd.read_parquet(a[spec])[["x", "y", "z"][: spec.dim]].to_numpy()
        assert y.shape == (300, spec.dim) and np.isfinite(y).all()
        m = meta(a[spec])
        assert m["subsample"] == {
            "size": 120,
            "of": 300,
            "seed": 2,
            "stratified_by": "label",
            "method": "class-stratified fit, rest placed by umap-learn UMAP.transform",
        }
        assert (m["max_points"], m["effective_n_neighbors"]) == (120, 10)
        # a placed point's 10 nearest fitted points in the map are of its class
        d = ((y[placed, None] - y[None, fitted]) ** 2).sum(-1)
        near = labels[fitted][np.argsort(d, axis=1)[:, :10]]
        assert (near == labels[placed, None]).mean() > 0.9  # chance: 0.25
    df = layer_metrics(
        tmp_path / "a" / "layer.npy", labels, [a[s] for s in SPECS], KEYS, {"k": 5}
    )
    assert df["n_fitted"].tolist() == [120, 120]
    assert df["knn_map_placed"].between(0.9, 1).all()


def test_maps_of_at_most_max_points_fit_every_point_as_without_the_route(
    tmp_path, data
):
    """A map of N <= max_points (the default's 25,000, or N itself) is the map of every
    point, byte for byte the same as with max_points null; its metadata names neither
    routing option."""
    x, labels = data
    assert UMAP.options()["max_points"] == 25000
    whole = _run(tmp_path, "whole", x, labels, {"n_neighbors": 10, "max_points": None})
    default = _run(tmp_path, "default", x, labels, {"n_neighbors": 10})
    at_n = _run(tmp_path, "at_n", x, labels, {"n_neighbors": 10, "max_points": 300})
    for spec in SPECS:
        assert sha(whole[spec]) == sha(default[spec]) == sha(at_n[spec])
        m = meta(whole[spec])
        assert not {"subsample", "max_points", "subsample_seed"} & set(m)


class _Recorder:
    """A fitted model whose transform records its batch sizes (column 0: the row)."""

    def __init__(self):
        self.batches = []

    def transform(self, x):
        self.batches.append(len(x))
        return np.stack([x[:, 0], -x[:, 0]], axis=1)


@pytest.mark.parametrize(
    ("rows", "batches"),
    [(5, [5]), (8, [8]), (9, [5, 4]), (17, [6, 6, 5])],
)
def test_points_are_placed_in_near_equal_blocks_in_row_order(
    monkeypatch, rows, batches
):
    """Blocks of at most PLACE_ROWS rows, each more than half of it when there are
    several (umap-learn's transform gives a small batch more epochs)."""
    import cnnatlas.maps.toolbox

    monkeypatch.setattr(cnnatlas.maps.toolbox, "PLACE_ROWS", 8)
    x = np.arange(40, dtype=np.float64)[:, None]
    idx = np.arange(0, 2 * rows, 2)
    model = _Recorder()
    out = place_points(model, x, idx)
    assert model.batches == batches
    assert out.dtype == np.float32 and out.shape == (rows, 2)
    assert np.array_equal(out[:, 0], idx)
