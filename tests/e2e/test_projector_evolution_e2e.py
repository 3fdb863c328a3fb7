import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

CKPTS = ["early", "late"]


@pytest.mark.parametrize("ckpt", CKPTS)
def test_projector_export_of_every_checkpoint(tiny_run, ckpt):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    out = tiny_run / "tiny" / ckpt / "projector"
    cfg = text_format.Parse(
        (out / "projector_config.pbtxt").read_text(), ProjectorConfig()
    )
    names = [e.tensor_name for e in cfg.embeddings]
    assert names[0] == "features.1.3" and "fc1" in names
    maps = [n for n in names if " " in n]
    assert maps, "the maps stage's embeddings are exported as extra tensors"
    for e in cfg.embeddings:
        t = np.loadtxt(out / e.tensor_path, delimiter="\t", dtype=np.float32, ndmin=2)
        assert t.shape == tuple(e.tensor_shape) and t.shape[0] == 30
        assert list(e.sprite.single_image_dim) == [16, 16]
        layer, _, stem = e.tensor_name.partition(" ")
        if not stem:
            feats = np.load(tiny_run / "tiny" / ckpt / "features" / f"{layer}.npy")
            np.testing.assert_array_equal(t, feats)
        else:
            emb = tiny_run / "tiny" / ckpt / "embeddings" / layer / f"{stem}.parquet"
            xy = pd.read_parquet(emb).sort_values("image_id")
            np.testing.assert_array_equal(t[:, :2], xy[["x", "y"]].to_numpy())
    meta = pd.read_csv(out / "metadata.tsv", sep="\t")
    pred = pd.read_parquet(tiny_run / "tiny" / ckpt / "predictions.parquet")
    assert meta["image_id"].tolist() == list(range(30))
    assert meta["pred"].tolist() == pred["pred_name"].tolist()
    assert meta["label"].tolist() == pred["label_name"].tolist()
    with Image.open(out / "sprite.png") as im:
        assert im.size == (6 * 16, 6 * 16)


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_evolution_maps_figures_and_alignment(tiny_run, method):
    from cnnatlas.evolution import META_KEY
    from cnnatlas.io import read_parquet_meta

    out = tiny_run / "tiny" / "evolution" / "fc1" / method
    for k, ckpt in enumerate(CKPTS):
        df = pd.read_parquet(out / "maps" / f"{ckpt}.parquet")
        assert list(df.columns) == ["image_id", "x", "y"] and len(df) == 30
        assert np.isfinite(df[["x", "y"]].to_numpy()).all()
        meta = json.loads(read_parquet_meta(out / "maps" / f"{ckpt}.parquet")[META_KEY])
        assert meta["order"] == k and meta["ckpts"] == CKPTS
    table = pd.read_parquet(out / "alignment.parquet")
    assert sorted(table["kind"]) == ["aligned", "independent"]
    assert (table[["from_ckpt", "to_ckpt"]] == ["early", "late"]).all().all()
    a, i = (table.set_index("kind").loc[k] for k in ("aligned", "independent"))
    if method == "pca":  # a rotation cannot change the disparity, only the displacement
        assert a["displacement"] < i["displacement"]
        assert a["disparity"] == pytest.approx(i["disparity"], rel=1e-6)
    with Image.open(out / "strip.png") as im:
        assert im.size[0] == round(2 * 2.6 * 110)  # two 2.6-inch panels, 110 dpi
    with Image.open(out / "animation.gif") as im:
        assert im.n_frames >= 2 + 3  # the checkpoints and 3 frames between
    html = (out / "slider.html").read_text()
    assert html.count('"name":"early"') >= 1 and html.count('"name":"late"') >= 1


def test_an_unknown_evolution_layer_stops_the_run_naming_it(tmp_path):
    import subprocess

    from tests.conftest import REPO, SNAKEMAKE
    from tests.e2e.conftest import write_tiny_config

    cfg = write_tiny_config(tmp_path) / "config.yaml"
    text = cfg.read_text()
    cfg.write_text(text.replace("layers: [fc1]", "layers: [fc1, fc9]"))
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "evolution.layers ['fc9']" in proc.stdout + proc.stderr
