"""benchmarks/simulate_features.py: a simulated run of N images from a real run's files,
read by the import route (`features_from`) as the workflow reads it."""

import json
import os

import numpy as np
import yaml
from cnnatlas.data import build_manifest
from cnnatlas.extract import predictions_table
from cnnatlas.io import read_parquet_meta, write_parquet
from cnnatlas.precomputed import open_folder, read_logits, row_order
from PIL import Image

from benchmarks.simulate_features import simulate

CLASSES = ("cat", "cat-b", "dog")  # "cat-b/" sorts before "cat/": the manifest's order


def _source(root, per_class=6):
    """A finished run's manifest, predictions and two layers' features."""
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / "images" / c).mkdir(parents=True)
        for i in range(per_class):
            px = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(px).save(root / "images" / c / f"{i}.png")
    man = build_manifest(
        {"kind": "imagefolder", "path": str(root / "images")}, root / "manifest.parquet"
    )
    labels = man["label"].to_numpy()
    classes = json.loads(
        read_parquet_meta(root / "manifest.parquet")["cnnatlas.classes"]
    )
    logits = rng.normal(size=(len(man), 3)) + 3 * np.eye(3)[labels]
    run = root / "m" / "c"
    (run / "features").mkdir(parents=True)
    write_parquet(
        predictions_table(man, logits, classes, 2), run / "predictions.parquet"
    )
    centres = rng.normal(0, 5, (3, 4))
    for layer, d in (("a", 4), ("b.1", 16)):
        x = np.repeat(centres, d // 4, axis=1)[labels] + rng.normal(size=(len(man), d))
        np.save(run / "features" / f"{layer}.npy", x.astype(np.float32))
    return man


def test_a_simulated_run_is_imported_row_for_row(tmp_path):
    src = _source(tmp_path / "run")
    out = tmp_path / "sim"
    res = simulate(tmp_path / "run", "m", "c", 50, out, 0.25, 0)
    assert res["arrays"] == {"a": [50, 4], "b.1": [50, 16], "logits": [50, 3]}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["models"]["m"]["features_from"] == {"c": str(out / "features")}
    man = build_manifest(config["dataset"], out / "manifest.parquet")
    assert len(man) == 50 and man["label_name"].value_counts().min() >= 16
    folder = open_folder(out / "features", ["a", "b.1"], "models.m.features_from.c")
    # rows are in the manifest's order, and paths.txt says so
    assert np.array_equal(row_order(folder, man["path"].tolist(), "k"), np.arange(50))
    # every row is a noisy copy of a source image of its own class
    feats = np.load(tmp_path / "run" / "m" / "c" / "features" / "b.1.npy")
    rows = {p: j for j, p in enumerate(src["path"])}
    for i, p in enumerate(man["path"]):
        j = rows[os.path.realpath(p)]
        assert src["label_name"][j] == man["label_name"][i]
        assert 0 < np.abs(folder.layers["b.1"][i] - feats[j]).max() < 3
    # the logits keep each image's class most of the time
    pred = read_logits(folder, np.arange(50)).argmax(1)
    assert (pred == man["label"].to_numpy()).mean() > 0.8
    # the same seed gives the same bytes, another seed other noise
    simulate(tmp_path / "run", "m", "c", 50, tmp_path / "again", 0.25, 0)
    simulate(tmp_path / "run", "m", "c", 50, tmp_path / "other", 0.25, 1)
    for name in ("a", "b.1", "logits"):
        a, b, c = (
            np.load(d / "features" / f"{name}.npy")
            for d in (out, tmp_path / "again", tmp_path / "other")
        )
        assert (
            a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
        )
