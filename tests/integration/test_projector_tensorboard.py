"""The real TensorBoard server loads an export in its Projector tab (no TensorFlow)."""

import json
import os
import urllib.parse
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.tensorboard_server import get, serve
from tests.conftest import make_imagefolder, save_tiny_checkpoints

pytestmark = pytest.mark.integration

LAYERS = {"features.1.3": "avg", "fc1": "avg"}
TRANSFORM = dict(resize=32, crop=32, mean=[0.5] * 3, std=[0.25] * 3, channels=3)


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("tensorboard is not installed: pip install -e '.[test]'")
        return False
    return True


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A projector folder from a real forward pass of a tiny DigitNet over 45 images,
    with a class name and a metadata column holding tabs and newlines; fc1 (45 x 128)
    is above a tiny `max_values` (45 x 20), so it is exported as 20 PCA components."""
    from cnnatlas.data import build_manifest
    from cnnatlas.extract import extract
    from cnnatlas.models import load_model
    from cnnatlas.projector import export_projector

    root = tmp_path_factory.mktemp("projector")
    images = make_imagefolder(root / "images", per_class=15)
    paths = sorted(str(p) for p in images.rglob("*.png"))
    pd.DataFrame(
        {
            "path": paths,
            "label": [p.split("/")[-2].replace("square", "sq\tuare") for p in paths],
            "site": [f"site\n{i % 4}" for i in range(len(paths))],
        }
    ).to_csv(root / "m.csv", index=False)
    build_manifest({"kind": "manifest", "path": str(root / "m.csv")}, root / "man.pq")
    spec = dict(
        arch="cnnatlas.demo:DigitNet",
        num_classes=3,
        kwargs={"in_channels": 3, "width": 4},
    )
    ckpt = save_tiny_checkpoints(root / "ckpt", names=("a",))["a"]
    extract(
        root / "man.pq", load_model(spec, ckpt), LAYERS, root / "pred.pq",
        root / "features", TRANSFORM, batch_size=16,
    )  # fmt: skip
    xy = pd.DataFrame({"image_id": np.arange(45), "x": np.arange(45.0)})
    xy = xy.assign(y=-xy["x"]).astype({"x": "float32", "y": "float32"})
    xy.to_parquet(root / "tsne-2d-p30-s0.parquet")
    export_projector(
        root / "pred.pq", root / "man.pq",
        {layer: root / "features" / f"{layer}.npy" for layer in LAYERS},
        root / "projector", maps={"fc1": [root / "tsne-2d-p30-s0.parquet"]},
        max_values=45 * 20, reduce="pca", pca_dims=128,
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(export):
    """Base URL of a TensorBoard serving export/projector; stopped by pid afterwards."""
    if not _tensorboard_available():
        pytest.skip("tensorboard not installed")
    with serve(export / "projector", export / "tensorboard.log") as (base, _):
        yield base


def _plugin(base: str, route: str, **query) -> bytes:
    q = urllib.parse.urlencode(query)
    return get(f"{base}/data/plugin/projector/{route}?{q}")


def test_projector_serves_every_layer_and_map(server, export):
    assert json.loads(_plugin(server, "runs")) == ["."]
    config = json.loads(_plugin(server, "info", run="."))
    shapes = {e["tensorName"]: e["tensorShape"] for e in config["embeddings"]}
    assert shapes == {
        "features.1.3": [45, 8],
        "fc1 (PCA 20 of 128)": [45, 20],
        "fc1 tsne-2d-p30-s0": [45, 2],
    }
    paths = {e["tensorName"]: e["tensorPath"] for e in config["embeddings"]}
    for name, (n, d) in shapes.items():
        raw = _plugin(server, "tensor", run=".", name=name)
        tensor = np.frombuffer(raw, dtype=np.float32).reshape(n, d)
        if name == "features.1.3":
            np.testing.assert_array_equal(
                tensor, np.load(export / "features" / f"{name}.npy")
            )
        tsv = export / "projector" / paths[name]
        np.testing.assert_array_equal(tensor, np.loadtxt(tsv, dtype=np.float32))
    fc1 = np.load(export / "features" / "fc1.npy").astype(np.float64)
    pcs = np.frombuffer(
        _plugin(server, "tensor", run=".", name="fc1 (PCA 20 of 128)"), np.float32
    ).reshape(45, 20)
    # the served columns are fc1's top principal components: their variances are the
    # covariance's largest eigenvalues
    eig = np.linalg.eigvalsh(np.cov(fc1.T))[::-1]
    np.testing.assert_allclose(pcs.var(0, ddof=1), eig[:20], rtol=1e-3)
    xy = np.frombuffer(
        _plugin(server, "tensor", run=".", name="fc1 tsne-2d-p30-s0"), np.float32
    )
    np.testing.assert_array_equal(xy.reshape(45, 2)[:, 0], np.arange(45))


def test_projector_serves_metadata_rows_and_a_fitting_sprite(server, export):
    text = _plugin(server, "metadata", run=".", name="fc1 (PCA 20 of 128)").decode()
    lines = text.rstrip("\n").split("\n")
    assert lines[0].split("\t") == [
        "label", "pred", "correct", "confidence", "path", "image_id", "site",
    ]  # fmt: skip
    assert len(lines) == 46
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 7 for r in rows)
    assert [int(r[5]) for r in rows] == list(range(45))
    assert {r[0] for r in rows} == {"circle", "sq\\tuare", "stripes"}
    pred = pd.read_parquet(export / "pred.pq")
    assert [r[1] for r in rows] == [s.replace("\t", "\\t") for s in pred["pred_name"]]
    png = _plugin(server, "sprite_image", run=".", name="fc1 (PCA 20 of 128)")
    with Image.open(BytesIO(png)) as im:
        assert im.format == "PNG"
        assert im.size == (7 * 64, 7 * 64)  # ceil(sqrt(45)) thumbnails of 64 px a side
        tile = np.asarray(im.convert("RGB"))[:64, :64]
    first = Image.open(pred["path"][0]).convert("RGB").resize((64, 64))
    assert np.abs(tile.astype(int) - np.asarray(first).astype(int)).mean() < 30
