"""PaCMAP through the registry: the same path every map method takes."""

import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.io import read_parquet_meta
from cnnatlas.mapping import write_maps
from cnnatlas.maps import get_method
from cnnatlas.metrics import knn_accuracy, trustworthiness

PACMAP = get_method("pacmap")


def blobs(n=90, d=40, centers=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % centers
    x = rng.normal(0, 6, (centers, d))[labels] + rng.normal(0, 1, (n, d))
    return x.astype(np.float32), labels


def test_pacmap_is_registered_with_a_seed_axis_and_batched_jobs():
    method = get_method("pacmap")
    assert method.axes == ("seed",) and method.batched
    assert method.options()["num_iters"] == [100, 100, 250]


def test_pacmap_maps_keep_clusters_and_record_their_options(tmp_path):
    x, labels = blobs()
    np.save(tmp_path / "f.npy", x)
    outputs = {
        PACMAP.spec(d, seed=s): tmp_path / f"{d}-{s}.parquet"
        for d in (2, 3)
        for s in (0, 1)
    }
    write_maps(tmp_path / "f.npy", "pacmap", outputs, {"n_neighbors": 8})
    for spec, path in outputs.items():
        df = pd.read_parquet(path)
        assert list(df.columns) == ["image_id", "x", "y", "z"][: spec.dim + 1]
        y = df[["x", "y", "z"][: spec.dim]].to_numpy()
        assert knn_accuracy(y, labels, k=5, folds=5, seed=0) > 0.95
        assert trustworthiness(x, y, k=5) > 0.8
        meta = json.loads(read_parquet_meta(path)["cnnatlas.map"])
        assert meta["method"] == "pacmap" and meta["seed"] == spec.seed
        assert meta["n_neighbors"] == 8 and meta["effective_n_neighbors"] == 8
        assert meta["FP_ratio"] == 2.0 and "pacmap" in meta["versions"]
    a, b = (pd.read_parquet(outputs[PACMAP.spec(2, seed=s)]) for s in (0, 1))
    assert not a.equals(b)  # the seed changes the map


def test_pacmap_is_reproducible_and_clamps_n_neighbors(caplog):
    x, _ = blobs(n=12, d=5)
    method = get_method("pacmap")
    runs = [
        list(method.maps(x, [PACMAP.spec(2, seed=3)], {"n_neighbors": 20}))
        for _ in "ab"
    ]
    np.testing.assert_array_equal(runs[0][0][1], runs[1][0][1])
    assert runs[0][0][2]["effective_n_neighbors"] == 11
    assert "n_neighbors 20 > N - 1; using 11" in caplog.text


def test_pacmap_options_are_checked_by_the_schema():
    from pathlib import Path

    from snakemake.utils import validate

    schema = str(
        Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"
    )
    model = {"arch": "resnet18", "num_classes": 2, "checkpoints": {"c": "c.pt"}}
    model |= {
        "layers": {"fc": "avg"},
        "transform": {"resize": 8, "crop": 8, "mean": [0], "std": [1]},
    }
    base = {"dataset": {"kind": "imagefolder", "path": "d"}, "models": {"m": model}}
    with pytest.raises(Exception, match="num_iters|too short|\\[100\\]"):
        validate({**base, "maps": {"pacmap": {"num_iters": [100]}}}, schema)
    config = {**base, "maps": {"methods": ["pacmap"]}}
    validate(config, schema)
    assert config["maps"]["pacmap"]["distance"] == "euclidean"
