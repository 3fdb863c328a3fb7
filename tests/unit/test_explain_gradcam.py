import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from cnnatlas.demo import DigitNet
from cnnatlas.errors import LayerError
from cnnatlas.explain.gradcam import (
    faithfulness,
    find_target_layer,
    gaussian_blur,
    replace_pixels,
    summarize_faithfulness,
)
from cnnatlas.explain.saliency import METHODS, open_methods, saliency_maps
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
REGIONS = {
    "top_left": (slice(0, 12), slice(0, 12)),
    "bottom": (slice(20, 32), slice(6, 26)),
}


class RegionNet(nn.Module):
    """Sees only one region of the image: everything outside it is multiplied by 0.

    Convolutions have no bias, so activations outside the region's receptive field are 0;
    the head's weights make class 0 the one the region's features vote for.
    """

    def __init__(self, region: tuple[slice, slice], seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[:, :, region[0], region[1]] = 1
        self.register_buffer("mask", mask)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, bias=False),
            nn.ReLU(),
        )
        self.fc = nn.Linear(8, 3, bias=False)
        with torch.no_grad():
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.3)
            w = torch.rand(3, 8, generator=gen)
            self.fc.weight.copy_(torch.cat([w[:1], -w[1:]]))

    def forward(self, x):
        h = self.features(x * self.mask)
        return self.fc(h.mean(dim=(2, 3)))


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
        for m in model.modules()
    )


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("region", list(REGIONS))
@pytest.mark.parametrize("method", list(METHODS))
def test_saliency_mass_lies_in_the_region_the_prediction_depends_on(region, method):
    model = RegionNet(REGIONS[region]).eval()
    x = _images(8)
    with METHODS[method](model, "features", batch_size=3) as cam:
        logits, maps = cam(x, {"pred": None})
    assert (logits.argmax(1) == 0).all()
    m = maps["pred"]
    assert m.shape == (8, SIZE, SIZE) and (m >= 0).all()
    rows, cols = REGIONS[region]
    inside = m[:, rows, cols].sum(dim=(1, 2)) / m.sum(dim=(1, 2))
    assert (inside >= 0.8).all(), inside


def test_hooks_are_removed_after_use_and_after_an_error():
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    with open_methods(model, "layer4", ["gradcam", "hirescam"]) as cams:
        assert len(model.layer4._forward_hooks) == 2
        saliency_maps(cams, _images(2), {"pred": None, "true": torch.tensor([0, 1])})
    assert _no_hooks(model)
    cls = METHODS["gradcam"]
    with pytest.raises(RuntimeError, match="boom"), cls(model, "layer4"):
        raise RuntimeError("boom")
    assert _no_hooks(model)
    with pytest.raises(RuntimeError, match="with"):
        cls(model, "layer4")(_images(1), {"pred": None})


def test_unknown_layer_is_named():
    with pytest.raises(LayerError, match="layer9"):
        METHODS["gradcam"](DigitNet(), "layer9")


def test_batched_maps_equal_one_image_at_a_time():
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    x = _images(5)
    targets = torch.tensor([0, 1, 2, 0, 1])
    with open_methods(model, "features.1", list(METHODS), batch_size=3) as cams:
        _, batched = saliency_maps(cams, x, {"pred": None, "true": targets})
        singles = [
            saliency_maps(
                cams, x[i : i + 1], {"pred": None, "true": targets[i : i + 1]}
            )[1]
            for i in range(5)
        ]
    assert len(batched) == 2 * len(METHODS)
    for key, value in batched.items():
        one = torch.cat([s[key] for s in singles])
        torch.testing.assert_close(value, one, rtol=1e-4, atol=1e-6)
    true = [batched[(m, "true")] for m in METHODS]
    for i, a in enumerate(true):
        assert all(not torch.equal(a, b) for b in true[i + 1 :])


@pytest.mark.parametrize(
    ("builder", "size", "expected"),
    [
        (
            lambda: torchvision.models.resnet18(weights=None, num_classes=3),
            64,
            "layer4",
        ),
        (lambda: DigitNet(num_classes=3, in_channels=1), 32, "features"),
        (lambda: torchvision.models.vgg11(weights=None, num_classes=3), 64, "features"),
    ],
)
def test_default_target_layer_is_the_last_conv_block(builder, size, expected):
    model = builder()
    channels = model.features[0][0].in_channels if isinstance(model, DigitNet) else 3
    assert find_target_layer(model, channels, size) == expected
    assert _no_hooks(model)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_does_not_grow_over_1000_images():
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    x = _images(50)
    rss = []
    with open_methods(model, "features", list(METHODS)) as cams:
        for _ in range(20):  # 1,000 images
            y = torch.zeros(50, dtype=torch.long)
            saliency_maps(cams, x, {"pred": None, "true": y})
            assert all(c._act is None for c in cams), "no layer output is kept"
            rss.append(_rss_bytes())
    assert _no_hooks(model)
    # Keeping each batch's graph alive would add the activations of all layers, about
    # 0.1 MB per image here (100 MB over the run); allow 16 MB of allocator noise.
    growth = max(rss[5:]) - max(rss[:5])
    assert growth < 16 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB after warm-up"


def test_blur_and_pixel_replacement():
    x = _images(2)
    torch.testing.assert_close(gaussian_blur(x, 0), x)
    flat = torch.full((1, 3, 8, 8), 0.7)
    torch.testing.assert_close(gaussian_blur(flat, 2.0), flat)
    assert gaussian_blur(x, 2.0).std() < x.std() / 2
    order = torch.stack(
        [
            torch.randperm(SIZE * SIZE, generator=torch.Generator().manual_seed(i))
            for i in range(2)
        ]
    )
    replaced = replace_pixels(x, torch.zeros_like(x), order, 100)
    changed = (replaced != x).any(dim=1).flatten(1).sum(1)
    assert changed.tolist() == [100, 100]
    assert (replaced.flatten(2)[0][:, order[0, :100]] == 0).all()


def test_faithfulness_salient_pixels_matter_more_than_random_ones():
    model = RegionNet(REGIONS["top_left"]).eval()
    x = _images(40, seed=1)
    loader = DataLoader(TensorDataset(x, torch.arange(40)), batch_size=16)
    methods = list(METHODS)
    df = faithfulness(model, "features", loader, methods, 0.1, 0.1, 0, 64)
    assert len(df) == 40 * len(methods) and set(df["method"]) == set(methods)
    assert df["image_id"].tolist()[:40] == list(range(40))
    for _, g in df.groupby("method"):
        assert g["drop_salient"].mean() > 3 * g["drop_random"].abs().mean()
    again = faithfulness(model, "features", loader, methods, 0.1, 0.1, 0, 64)
    pd.testing.assert_frame_equal(df, again)
    assert _no_hooks(model)


def test_summary_groups_by_class_and_outcome():
    rng = np.random.default_rng(0)
    per_image = pd.DataFrame(
        {
            "image_id": np.tile(np.arange(6), 2),
            "method": ["gradcam"] * 6 + ["gradcam++"] * 6,
            "drop_salient": rng.uniform(0, 1, 12),
            "drop_random": rng.uniform(0, 0.1, 12),
            "label_name": ["a", "a", "b", "b", "b", "c"] * 2,
            "correct": [True, False, True, True, False, True] * 2,
        }
    )
    s = summarize_faithfulness(per_image)
    one = s[s["method"] == "gradcam"].set_index(["group", "value"])
    assert one.loc[("all", "all"), "n"] == 6
    assert one.loc[("class", "b"), "n"] == 3
    assert one.loc[("outcome", "misclassified"), "n"] == 2
    g = per_image[(per_image["method"] == "gradcam") & (per_image["label_name"] == "b")]
    assert one.loc[("class", "b"), "drop_salient"] == pytest.approx(
        g["drop_salient"].mean()
    )
    mine = per_image[per_image["method"] == "gradcam"]
    wins = (mine["drop_salient"] > mine["drop_random"]).mean()
    assert one.loc[("all", "all"), "salient_wins"] == pytest.approx(wins)


def test_true_class_maps_use_the_class_index(imagefolder, tmp_path):
    """A model with 5 outputs whose classes sit at outputs (4, 0, 2) explains exactly as
    the same model with its outputs permuted so that the classes are outputs 0, 1, 2."""
    import copy

    from cnnatlas.classes import ClassSpace, class_space
    from cnnatlas.data import build_manifest
    from cnnatlas.explain.gradcam import render_saliency
    from PIL import Image

    classes = ["circle", "square", "stripes"]
    manifest = build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder)}, tmp_path / "m.pq"
    )
    predictions = manifest.assign(correct=False)
    selection = manifest.iloc[[0, 12, 25]]
    torch.manual_seed(0)
    model = DigitNet(num_classes=5, in_channels=3, width=4).eval()
    perm = [4, 0, 2, 1, 3]  # permuted output k is output perm[k]
    permuted = copy.deepcopy(model)
    with torch.no_grad():
        permuted.fc2.weight.copy_(model.fc2.weight[perm])
        permuted.fc2.bias.copy_(model.fc2.bias[perm])
    mapped = class_space({"circle": 4, "square": 0, "stripes": 2}, classes, 5)
    same = ClassSpace(tuple(classes), (0, 1, 2), (*classes, "output 1", "output 3"))
    tf = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3}

    def overview(net, space, name):
        out = tmp_path / name
        render_saliency(
            predictions, selection, net, tf, space, out / "overlays", out / "p.pq",
            out / "s.pq", out / "f.png", methods=["gradcam", "gradcam++"],
            layer="features", fraction=0.2, blur=4.0, seed=0, batch_size=8, device="cpu",
        )  # fmt: skip
        return np.asarray(Image.open(out / "overlays" / "overview.png"))

    expected = overview(permuted, same, "permuted")
    np.testing.assert_array_equal(overview(model, mapped, "mapped"), expected)
    # the dataset's labels taken as outputs give other true-class maps (and names)
    assert not np.array_equal(overview(model, classes, "identity"), expected)


def test_faithfulness_runs_on_a_bounded_stratified_sample_on_the_cpu(
    imagefolder, tmp_path
):
    from cnnatlas.data import build_manifest
    from cnnatlas.explain.gradcam import render_saliency
    from cnnatlas.explain.select import sample_images
    from cnnatlas.io import read_parquet_meta

    manifest = build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder)}, tmp_path / "m.pq"
    )
    predictions = manifest.assign(correct=True)
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    tf = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    out = tmp_path / "out"
    render_saliency(
        predictions, manifest.iloc[[0]], model, tf, ["circle", "square", "stripes"],
        out / "overlays", out / "p.pq", out / "s.pq", out / "f.png", methods=["gradcam"],
        layer="features", fraction=0.2, blur=4.0, seed=2, batch_size=8, device="cpu",
        max_images=6,
    )  # fmt: skip
    per_image = pd.read_parquet(out / "p.pq")
    expected = sample_images(predictions, 6, seed=2)["image_id"]
    assert sorted(per_image["image_id"]) == sorted(expected)
    assert per_image.groupby("label").size().tolist() == [2, 2, 2]
    note = f"6 of {len(manifest)} images (class-stratified sample, seed 2: "
    note += "explain.saliency.max_images on the CPU)"
    for name in ("p.pq", "s.pq"):
        assert read_parquet_meta(out / name)["cnnatlas.images"] == note
    summary = pd.read_parquet(out / "s.pq")
    assert summary.set_index("group").loc["all", "n"] == 6


def test_batches_are_cut_to_fit_the_jobs_memory_or_the_job_stops_naming_what_to_change(
    caplog,
):
    import logging

    import torchvision
    from cnnatlas.errors import CnnatlasError
    from cnnatlas.explain.inputs import activation_mb, fit_batch

    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    tf = {"resize": 64, "crop": 64, "mean": [0.5] * 3, "std": [0.25] * 3}
    act = activation_mb(model, tf)
    # resnet18 at 64 px: every leaf's output, a few MB per image
    assert 1 < act < 20, act
    key, rule = "explain.saliency.batch_size", "render_saliency"
    assert fit_batch(model, tf, 64, None, key, rule) == 64
    assert fit_batch(model, tf, 64, 100_000, key, rule) == 64
    params = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    mem = 700 + 2 * params + 5.5 * 0.8 * act
    with caplog.at_level(logging.INFO, logger="cnnatlas.explain.inputs"):
        assert fit_batch(model, tf, 64, mem, key, rule) == 5
    assert "batches of 5 images, not 64 (explain.saliency.batch_size)" in caplog.text
    with pytest.raises(
        CnnatlasError,
        match=r"render_saliency:mem_mb=.*lower the model's transform crop",
    ):
        fit_batch(model, tf, 64, 700, key, rule)
