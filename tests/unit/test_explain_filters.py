import numpy as np
import pandas as pd
import pytest
import torch
from cnnatlas.data import build_manifest
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.filters import (
    FourierImage,
    channel_stats,
    maximize,
    random_transform,
    visualize_filters,
)
from cnnatlas.schema import defaults
from cnnatlas.torchutil import ImageDataset, make_transform
from PIL import Image
from torch.utils.data import DataLoader

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RGB = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3}
GRAY = {"resize": 32, "crop": 32, "mean": [0.5], "std": [0.5], "channels": 1}
LAYER = "features.1.3"
CHANNELS = [0, 1, 2, 3]
# explain.filters' settings as the workflow passes them (its optional bounds, None,
# left out); a test overrides a few.
OPTIONS = {
    key: value
    for key, value in defaults("explain.filters").items()
    if key not in ("max_images", "size", "budget_gflop")
}
MAXIMIZE = {k: OPTIONS[k] for k in ("steps", "lr", "seed", "jitter", "scale", "rotate")}


def _model(channels: int, width: int = 4) -> DigitNet:
    torch.manual_seed(0)
    return DigitNet(num_classes=3, in_channels=channels, width=width).eval()


@pytest.fixture(scope="module")
def manifest(imagefolder, tmp_path_factory):
    path = tmp_path_factory.mktemp("filters") / "m.parquet"
    return build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, path)


def _real_stats(model, manifest, tf):
    ds = ImageDataset(manifest["path"].tolist(), make_transform(tf))
    return channel_stats(model, DataLoader(ds, batch_size=16), [LAYER])[LAYER]


@pytest.mark.parametrize("tf", [RGB, GRAY], ids=["rgb", "gray"])
def test_maximization_far_above_random_start_and_real_mean(manifest, tf):
    model = _model(tf["channels"], width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, start, reached = maximize(
        model, LAYER, CHANNELS, tf, **(MAXIMIZE | {"steps": 48, "lr": 0.1})
    )
    assert images.shape == (4, tf["channels"], 32, 32)
    assert images.min() >= 0 and images.max() <= 1
    real = _real_stats(model, manifest, tf)[:, CHANNELS]
    assert (reached > 3 * start + 0.05).all(), (start, reached)
    assert (reached.numpy() > real.mean(0)).all(), (reached, real.mean(0))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert all(p.requires_grad for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_same_seed_same_images_other_seed_other_images():
    model = _model(3)
    a = maximize(model, LAYER, [0, 1], RGB, **(MAXIMIZE | {"steps": 5, "seed": 1}))[0]
    b = maximize(model, LAYER, [0, 1], RGB, **(MAXIMIZE | {"steps": 5, "seed": 1}))[0]
    c = maximize(model, LAYER, [0, 1], RGB, **(MAXIMIZE | {"steps": 5, "seed": 2}))[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_fourier_image_starts_gray_and_is_smooth():
    gen = torch.Generator().manual_seed(0)
    img = FourierImage(2, 3, 32, gen)()
    assert img.shape == (2, 3, 32, 32)
    assert (img - 0.5).abs().max() < 0.1
    # the 1/f scaling makes neighbouring pixels correlated, unlike white noise
    d = img - img.mean(dim=(2, 3), keepdim=True)
    corr = (d[..., 1:] * d[..., :-1]).mean() / d.pow(2).mean()
    assert corr > 0.5


def test_random_transform_keeps_shape_and_moves_pixels():
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = random_transform(x, torch.Generator().manual_seed(0), 0.1, 0.05, 5.0)
    assert y.shape == x.shape and not torch.equal(x, y)
    same = random_transform(
        x, torch.Generator().manual_seed(0), jitter=0, scale=0, rotate=0
    )
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)


def test_visualize_filters_writes_grids_and_a_table(manifest, tmp_path):
    model = _model(3)
    preds = manifest
    table = visualize_filters(
        preds,
        model,
        RGB,
        ["features.0.3", LAYER],
        tmp_path / "grids",
        tmp_path / "f.parquet",
        **(OPTIONS | {"channels": 3, "steps": 4, "topk": 2}),
        device="cpu",
    )
    t = pd.read_parquet(tmp_path / "f.parquet")
    assert list(t.columns) == [
        "layer",
        "channel",
        "start",
        "reached",
        "real_mean",
        "real_max",
        "top_image_ids",
    ]
    assert len(t) == len(table) == 6 and t["channel"].tolist() == [0, 1, 2] * 2
    real = _real_stats(model, manifest, RGB)
    sub = t[t["layer"] == LAYER]
    np.testing.assert_allclose(sub["real_mean"], real[:, :3].mean(0), rtol=1e-5)
    np.testing.assert_allclose(sub["real_max"], real[:, :3].max(0), rtol=1e-5)
    for r in sub.itertuples():  # the first top image is the one with the maximum
        assert len(r.top_image_ids) == 2
        assert real[r.top_image_ids[0], r.channel] == pytest.approx(r.real_max)
    for layer in ("features.0.3", LAYER):
        with Image.open(tmp_path / "grids" / f"{layer}.png") as im:
            assert im.mode == "RGB" and im.size[0] >= 2 * 3 * 64
    # same config, same threads: same bytes
    visualize_filters(
        preds,
        model,
        RGB,
        [LAYER],
        tmp_path / "again",
        tmp_path / "again.parquet",
        **(OPTIONS | {"channels": 3, "steps": 4, "topk": 2}),
        device="cpu",
    )
    first = (tmp_path / "grids" / f"{LAYER}.png").read_bytes()
    assert (tmp_path / "again" / f"{LAYER}.png").read_bytes() == first
    again = pd.read_parquet(tmp_path / "again.parquet")
    pd.testing.assert_frame_equal(again, t[t["layer"] == LAYER].reset_index(drop=True))


def test_unknown_channel_is_named(manifest, tmp_path):
    with pytest.raises(CnnatlasError, match="explain.filters.channels"):
        visualize_filters(
            manifest,
            _model(3),
            RGB,
            [LAYER],
            tmp_path,
            tmp_path / "f.parquet",
            **(OPTIONS | {"channels": [0, 99], "steps": 1}),
            device="cpu",
        )


def test_channels_are_measured_on_a_bounded_stratified_sample_on_the_cpu(
    manifest, tmp_path
):
    from cnnatlas.explain.select import sample_images
    from cnnatlas.io import read_parquet_meta

    model = _model(3)
    table = visualize_filters(
        manifest, model, RGB, [LAYER], tmp_path / "grids", tmp_path / "f.parquet",
        **(OPTIONS | {"channels": 3, "steps": 2, "topk": 2, "seed": 1}),
        max_images=7, device="cpu",
    )  # fmt: skip
    sample = sample_images(manifest, 7, seed=1)
    assert read_parquet_meta(tmp_path / "f.parquet")["cnnatlas.images"] == (
        f"7 of {len(manifest)} images (class-stratified sample, seed 1: "
        "explain.filters.max_images on the CPU)"
    )
    real = _real_stats(model, sample, RGB)
    np.testing.assert_allclose(table["real_max"], real[:, :3].max(0), rtol=1e-5)
    ids = set(sample["image_id"])
    assert all(set(t) <= ids for t in table["top_image_ids"])


def test_budget_cuts_channels_then_steps_and_flops_grow_with_depth():
    import torchvision
    from cnnatlas.explain.filters import fit_budget, step_gflop

    assert fit_budget([0.01], 16, 256, 2500) == (16, 256)  # a small CNN: untouched
    assert fit_budget([1.0, 2.0], 16, 256, None) == (16, 256)
    assert fit_budget([1.0, 2.0], 16, 256, 3 * 8 * 256) == (8, 256)
    assert fit_budget([1.0, 2.0], 16, 256, 3 * 4 * 64) == (4, 64)
    assert fit_budget([1.0, 2.0], 16, 256, 1) == (4, 32)  # the floor
    assert fit_budget([1.0, 2.0], [3, 7], 256, 3 * 2 * 100) == ([3, 7], 100)
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    g2, g4 = (step_gflop(model, layer, 3, 64, "cpu") for layer in ("layer2", "layer4"))
    # truncated at the layer: layer2 costs well under layer4; resnet18's forward at
    # 64 px is ~0.15 GFLOP (2 x MACs), and a step is a forward and an input backward
    assert 0.05 < g2 < g4 < 0.6, (g2, g4)
