import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from cnnatlas.data import ImageDataset, build_manifest
from cnnatlas.extract import extract, forward_pass, pool, predictions_table
from cnnatlas.torchutil import LOGITS, make_transform, tap_layers

TF = {"resize": 32, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
LAYERS = {"layer1.0.relu_1": "avg", "layer3": "max", "avgpool": "flatten", "fc": "avg"}


def test_pooling_shapes_and_values():
    t = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(pool(t, "avg"), t.mean((2, 3)))
    assert torch.equal(pool(t, "max"), t[:, :, 1, 1])
    assert pool(t, "flatten").shape == (2, 12)
    assert pool(torch.ones(2, 5), "avg").shape == (2, 5)
    with pytest.raises(ValueError, match="pooling"):
        pool(t, "median")


def test_tap_layers_matches_the_model_output():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with tap_layers(model, list(LAYERS)) as tapped, torch.inference_mode():
        out = tapped(x)
        ref = model(x)
    torch.testing.assert_close(out[LOGITS], ref)
    assert out["layer3"].shape == (2, 256, 2, 2)


class _Untraceable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = self.conv(x).relu()
        if h.sum() > 0:  # data-dependent control flow: FX cannot trace this
            h = h * 2
        return self.fc(h.mean((2, 3)))


def test_untraceable_model_falls_back_to_hooks_and_releases_them():
    model = _Untraceable().eval()
    x = torch.randn(2, 3, 8, 8)
    with tap_layers(model, ["conv"]) as tapped, torch.inference_mode():
        out = tapped(x)
        assert len(model.conv._forward_hooks) == 1
    assert out["conv"].shape == (2, 4, 6, 6)
    torch.testing.assert_close(out[LOGITS], model(x))
    assert len(model.conv._forward_hooks) == 0


def test_features_equal_with_batch_size_1_and_64(imagefolder, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder)}, tmp_path / "m.parquet"
    )
    ds = ImageDataset(manifest["path"], make_transform(TF))
    logits = {}
    for bs in (1, 64):
        logits[bs] = forward_pass(model, ds, LAYERS, tmp_path / f"b{bs}", batch_size=bs)
    np.testing.assert_allclose(logits[1], logits[64], rtol=1e-4, atol=1e-5)
    for layer in LAYERS:
        a, b = (np.load(tmp_path / f"b{bs}" / f"{layer}.npy") for bs in (1, 64))
        assert (
            a.shape
            == b.shape
            == (
                30,
                {"layer1.0.relu_1": 64, "layer3": 256, "avgpool": 512, "fc": 3}[layer],
            )
        )
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not list((tmp_path / "b64").glob(".*tmp*")), (
        "temporary memmaps are cleaned up"
    )


def test_prediction_values():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4)).astype(np.float32)
    manifest = pd.DataFrame(
        {
            "image_id": range(50),
            "path": [f"{i}.png" for i in range(50)],
            "label": rng.integers(0, 4, 50),
            "label_name": "x",
            "site": ["a", "b"] * 25,
        }
    )
    p = predictions_table(manifest, logits, ["w", "x", "y", "z"], topk=3)
    probs = np.stack(p["probs"])
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    assert (p["pred"] == logits.argmax(1)).all()
    assert (p["correct"] == (p["pred"] == p["label"])).all()
    top = np.stack(p["topk_probs"])
    assert (np.diff(top, axis=1) <= 0).all(), "top-k is ordered"
    assert (np.stack(p["topk_ids"])[:, 0] == p["pred"]).all()
    assert (
        p["in_topk"]
        == [lab in ids for lab, ids in zip(p["label"], p["topk_ids"], strict=True)]
    ).all()
    np.testing.assert_allclose(
        p["loss"], -np.log(probs[np.arange(50), p["label"]]), rtol=1e-5
    )
    np.testing.assert_allclose(p["margin"], top[:, 0] - top[:, 1], rtol=1e-5)
    assert (p["entropy"] > 0).all() and (p["entropy"] <= np.log(4) + 1e-6).all()
    assert p["site"].tolist() == ["a", "b"] * 25
    assert p["pred_name"].tolist() == [["w", "x", "y", "z"][i] for i in p["pred"]]


def test_extract_writes_predictions_and_every_layer(imagefolder, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = tmp_path / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    extract(
        manifest,
        model,
        LAYERS,
        tmp_path / "pred.parquet",
        tmp_path / "features",
        TF,
        batch_size=7,
    )
    p = pd.read_parquet(tmp_path / "pred.parquet")
    assert len(p) == 30 and set(p["pred_name"]) <= {"circle", "square", "stripes"}
    fc = np.load(tmp_path / "features" / "fc.npy")
    # the fc features are the logits: softmax of them is the probs column
    e = np.exp(fc - fc.max(1, keepdims=True))
    np.testing.assert_allclose(
        e / e.sum(1, keepdims=True), np.stack(p["probs"]), rtol=1e-4, atol=1e-6
    )
