import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e


def test_manifest_lists_every_image_in_path_order(tiny_run):
    m = pd.read_parquet(tiny_run / "manifest.parquet")
    assert len(m) == 30
    assert m["image_id"].tolist() == list(range(30))
    assert m["path"].tolist() == sorted(m["path"])
    assert sorted(m["label_name"].unique()) == ["circle", "square", "stripes"]
    meta = pq.read_schema(tiny_run / "manifest.parquet").metadata
    assert json.loads(meta[b"cnnatlas.classes"]) == ["circle", "square", "stripes"]


@pytest.mark.parametrize("ckpt", ["early", "late"])
def test_predictions_and_features_of_every_checkpoint(tiny_run, ckpt):
    p = pd.read_parquet(tiny_run / "tiny" / ckpt / "predictions.parquet")
    assert len(p) == 30
    assert p["image_id"].tolist() == list(range(30))
    for col in [
        "pred",
        "pred_name",
        "confidence",
        "correct",
        "topk_ids",
        "topk_probs",
        "in_topk",
        "probs",
        "loss",
        "entropy",
        "margin",
    ]:
        assert col in p.columns
    probs = np.stack(p["probs"])
    assert probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (p["correct"] == (p["pred"] == p["label"])).all()
    assert not p[["confidence", "loss", "entropy", "margin"]].isna().any().any()
    for layer, dim in (("features.1.3", 8), ("fc1", 128)):
        f = np.load(tiny_run / "tiny" / ckpt / "features" / f"{layer}.npy")
        assert f.shape == (30, dim) and f.dtype == np.float32
        assert np.isfinite(f).all()


def test_jobs_import_this_checkouts_library(tiny_run):
    """A script job is a new process: the workflow puts its own library first on
    PYTHONPATH, so an installed cnnatlas (e.g. another checkout's editable install in a
    shared venv) is not the one that runs. This checkout's forward pass logs its decode."""
    log = (tiny_run / "logs/extract_features/tiny/late.log").read_text()
    assert "decode by PIL" in log, log[-2000:]
