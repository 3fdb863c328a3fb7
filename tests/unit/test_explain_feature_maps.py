import math

import numpy as np
import pandas as pd
import pytest
import torch
from cnnatlas.data import build_manifest
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CnnatlasError, LayerError
from cnnatlas.explain.feature_maps import (
    DEAD,
    channel_grid,
    layer_figure,
    normalize_channels,
    render_feature_maps,
    tile_origin,
)
from cnnatlas.explain.inputs import load_inputs, spatial_layers
from cnnatlas.explain.select import select_images
from cnnatlas.torchutil import tap_layers
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TF = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3}


def _model() -> DigitNet:
    torch.manual_seed(0)
    return DigitNet(num_classes=3, in_channels=3, width=4).eval()


def _activation(imagefolder, layer="features.0.3") -> np.ndarray:
    paths = sorted(str(p) for p in imagefolder.rglob("*.png"))[:1]
    with tap_layers(_model(), [layer]) as tapped, torch.inference_mode():
        return tapped(load_inputs(paths, TF))[layer][0].numpy()


@pytest.mark.parametrize("how", ["standard", "minmax"])
@pytest.mark.parametrize("per_row", [3, 16])
def test_grid_has_one_tile_per_channel_matching_its_activation(
    imagefolder, how, per_row
):
    act = _activation(imagefolder)  # [4, 16, 16] of a real image
    act = np.concatenate([act, act * 0.5 + 1])  # 8 channels, the last 4 rescaled copies
    tiles, dead = normalize_channels(act, how)
    grid = channel_grid(tiles, per_row)
    c, h, w = act.shape
    rows = math.ceil(c / per_row)
    assert grid.shape == (rows * (h + 1) - 1, min(c, per_row) * (w + 1) - 1)
    for i in range(c):
        y, x = tile_origin(i, h, w, per_row)
        tile = grid[y : y + h, x : x + w].astype(np.float64)
        a = act[i].astype(np.float64)
        if how == "minmax":
            expected = (a - a.min()) / (a.max() - a.min()) * 255
        else:
            expected = np.clip((a - a.mean()) / a.std() * 64 + 128, 0, 255)
        np.testing.assert_allclose(tile, expected, atol=0.5 + 1e-9)
    # per-channel scaling: a channel and its affine copy give the same tile
    np.testing.assert_array_equal(tiles[:4], tiles[4:])
    assert not dead.any()


def test_dead_channels_are_found_and_crossed_out(imagefolder):
    act = _activation(imagefolder)
    act[1] = 0.0  # a dead ReLU
    act[2] = 3.0  # constant: no information either
    tiles, dead = normalize_channels(act)
    assert dead.tolist() == [False, True, True, False]
    assert (tiles[1] == 0).all()
    image = np.zeros((32, 32, 3), np.uint8)
    fig, n_dead = layer_figure(image, act, "test", "standard", 4, 16, cmap="viridis")
    assert n_dead == 2
    red = np.all(fig == DEAD, axis=-1)
    assert red.sum() >= 2 * 4 * 16  # two crossed tiles: borders and diagonals


def test_unknown_normalisation_is_named():
    with pytest.raises(CnnatlasError, match="explain.feature_maps.normalize"):
        normalize_channels(np.zeros((1, 2, 2)), "zscore")


def test_spatial_layers_leave_out_flat_ones_and_reject_requested_flat_ones():
    model = _model()
    configured = ["features.0.3", "features.1.3", "fc1"]
    assert spatial_layers(model, TF, configured) == ["features.0.3", "features.1.3"]
    with pytest.raises(LayerError, match="fc1"):
        spatial_layers(model, TF, configured, requested=["features.1.3", "fc1"])


def test_render_writes_one_png_per_image_and_layer(imagefolder, tmp_path):
    manifest = build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder)}, tmp_path / "m.parquet"
    )
    preds = manifest.assign(
        pred=0, pred_name="circle", confidence=0.5, correct=manifest["label"] == 0
    )
    sel = select_images(preds, [0, 17], correct_per_class=1, wrong_per_class=1, seed=0)
    model = _model()
    layers = ["features.0.3", "features.1.3"]
    index = render_feature_maps(
        sel, model, TF, layers, tmp_path / "fm", 4, "standard", "viridis", "cpu"
    )
    assert len(index) == 2 * (len(layers) + 1)
    assert pd.read_parquet(tmp_path / "fm" / "index.parquet").equals(index)
    for r in index.itertuples():
        with Image.open(tmp_path / "fm" / r.file) as im:
            assert im.mode == "RGB"
            width, height = im.size
        if r.layer != "overview":
            assert r.channels == {"features.0.3": 4, "features.1.3": 8}[r.layer]
            # the grid (4 tiles of >= 32 px per row) and the input image beside it
            assert width >= 4 * 32 + 64 and height >= math.ceil(r.channels / 4) * 32
    assert all(not m._forward_hooks for m in model.modules())


def test_a_global_poolings_one_by_one_map_is_not_explained_unless_asked_for():
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    tf = {"resize": 64, "crop": 64, "mean": [0.5] * 3, "std": [0.25] * 3}
    # avgpool's output is [512, 1, 1]: the same channels as layer4's, averaged
    assert spatial_layers(model, tf, ["layer3", "layer4", "avgpool"]) == [
        "layer3",
        "layer4",
    ]
    assert spatial_layers(model, tf, ["layer3"], requested=["avgpool"]) == ["avgpool"]
