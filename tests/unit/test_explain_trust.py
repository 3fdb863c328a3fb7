"""Deletion/insertion, ROAD and the randomisation check (cnnatlas.explain.trust)."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from cnnatlas.demo import DigitNet
from cnnatlas.explain.perturb import (
    auc,
    deletion_insertion,
    impute_linear,
    road_curves,
    saliency_rank,
    step_fractions,
)
from cnnatlas.explain.randomise import (
    cascade,
    half_index,
    parameter_layers,
    spearman_rows,
)
from cnnatlas.explain.saliency import METHODS, LayerPass, SaliencyMethod
from cnnatlas.explain.trust import check_saliency, sample_images, summarize_checks
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import CLASSES, draw
from tests.unit.test_explain_gradcam import RegionNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
OPTIONS = {
    "step": 0.05,
    "blur": 0.1,
    "road_fractions": [0.1, 0.3, 0.5, 0.7, 0.9],
    "road_noise": 0.01,
    "seed": 0,
    "batch_size": 16,
}


class LeftHalfNet(RegionNet):
    """Reads only the left half of the image (a RegionNet: the rest is multiplied by 0,
    convolutions have no bias). Class 0 wins by a margin on noise images; its bias makes
    a blurred (low-contrast) image lose it."""

    def __init__(self, seed: int = 0):
        super().__init__((slice(None), slice(0, SIZE // 2)), seed)
        fc = nn.Linear(8, 3)
        with torch.no_grad():
            fc.weight.copy_(self.fc.weight * 2)
            fc.bias.copy_(torch.tensor([-5.0, 0, 0]))
        self.fc = fc


class EdgeMagnitude(SaliencyMethod):
    """A 'method' that ignores the model: the image's gradient magnitude (Sobel)."""

    name = "edges"
    title = "edge magnitude"
    gradient = False

    def compute(self, p: LayerPass) -> torch.Tensor:
        k = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=p.x.device)
        g = p.x.float().sum(1, keepdim=True)
        gx = F.conv2d(g, k.view(1, 1, 3, 3), padding=1)
        gy = F.conv2d(g, k.t().reshape(1, 1, 3, 3), padding=1)
        return (gx**2 + gy**2).sqrt()[:, 0]


def _loader(x: torch.Tensor, batch_size: int = 16) -> DataLoader:
    return DataLoader(TensorDataset(x, torch.arange(len(x))), batch_size=batch_size)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _info(n: int, correct=True) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": np.arange(n),
            "label_name": [CLASSES[i % 3] for i in range(n)],
            "correct": np.resize(np.asarray(correct), n),
        }
    )


def test_every_method_on_a_model_that_reads_only_the_left_half():
    model = LeftHalfNet().eval()
    x = _images(24, seed=1)
    assert (model(x).argmax(1) == 0).all()
    methods = list(METHODS)
    curves, rand, example = check_saliency(
        model, "features", _loader(x), methods, OPTIONS
    )
    # every method puts at least 80% of its mass on the left half
    maps = example["maps"][:, 0]  # [methods, H, W]: trained model, first image
    left = maps[..., : SIZE // 2].sum(axis=(1, 2)) / maps.sum(axis=(1, 2))
    assert (left >= 0.8).all(), dict(zip(methods, left, strict=True))
    s = summarize_checks(curves, rand, _info(24), threshold=0.5).query("group == 'all'")
    for r in s.itertuples():
        # random order needs about twice the pixels to reach the left half's content:
        # deletion well under the random order's area, insertion closes more than half
        # of the random order's distance to a perfect curve (area 1)
        assert r.deletion_auc < 0.6 * r.deletion_auc_random, r
        gap = 1 - r.insertion_auc_random
        assert r.insertion_auc > r.insertion_auc_random + 0.5 * gap, r
        assert r.road_morf < r.road_lerf, r
    assert set(curves["method"]) == set(methods) | {"random"}
    assert len(curves) == 24 * (len(methods) + 1)
    n_steps = len(step_fractions(OPTIONS["step"]))
    assert all(len(c) == n_steps for c in curves["deletion"])


def _trained_digitnet(steps: int = 80) -> tuple[nn.Module, torch.Tensor]:
    rng = np.random.default_rng(0)
    imgs = [(draw(CLASSES[i % 3], SIZE, rng), i % 3) for i in range(96)]
    x = torch.tensor(np.stack([a for a, _ in imgs]), dtype=torch.float32)
    x = (x.permute(0, 3, 1, 2) / 255 - 0.5) / 0.25
    y = torch.tensor([c for _, c in imgs])
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(steps):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.8
    return model, x[:24]


def test_randomisation_check_passes_gradcam_and_fails_edge_magnitude():
    model, x = _trained_digitnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curves, rand, example = check_saliency(
        model, "features", _loader(x), ["gradcam", EdgeMagnitude], OPTIONS
    )
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"the trained model's {k} changed"
    n_layers = len(parameter_layers(model))
    assert n_layers == 5  # 3 conv blocks (conv + batch norm), fc1, fc2
    assert sorted(set(rand["layers_randomised"])) == list(range(1, n_layers + 1))
    s = summarize_checks(curves, rand, _info(24), threshold=0.5).set_index(
        ["method", "group"]
    )
    edges, gradcam = s.loc[("edges", "all")], s.loc[("gradcam", "all")]
    assert edges["spearman_half"] == pytest.approx(1.0)
    assert not edges["randomisation_passed"]
    assert "fails the randomisation check" in edges["verdict"]
    assert gradcam["spearman_half"] < 0.5 and gradcam["randomisation_passed"]
    assert gradcam["verdict"].startswith("gradcam: passes the randomisation check")
    assert example["maps"].shape == (2, n_layers + 1, SIZE, SIZE)
    assert example["layers"][0] == "fc2" and example["layers"][-1] == "features.0.0"


def test_same_seed_same_tables():
    model = LeftHalfNet().eval()
    x = _images(10, seed=2)
    a = check_saliency(model, "features", _loader(x, 4), ["layercam"], OPTIONS)
    b = check_saliency(model, "features", _loader(x, 4), ["layercam"], OPTIONS)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


def test_road_imputation_equals_pytorch_grad_cam():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, SIZE, SIZE, generator=gen)
    for frac in (0.1, 0.5, 0.9):
        removed = torch.rand(3, 1, SIZE, SIZE, generator=gen) < frac
        ours = impute_linear(x, removed)
        theirs = torch.stack(
            [
                NoisyLinearImputer(noise=0)(x[i], (~removed[i, 0]).float())
                for i in range(3)
            ]
        )
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
        assert torch.equal(ours[~removed.expand_as(x)], x[~removed.expand_as(x)])
    noisy = impute_linear(x, removed, 0.01, torch.Generator().manual_seed(1))
    diff = (noisy - ours)[removed.expand_as(x)]
    assert 0.008 < float(diff.std()) < 0.012


def _theirs(model, x, cams, cls, percentile, least):
    remove = RemoveLeastRelevantFirst if least else RemoveMostRelevantFirst
    metric = PerturbationConfidenceMetric(remove(percentile, NoisyLinearImputer(0)))
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in cls]
    return metric(x, cams, targets, model, return_diff=False)


def test_road_scores_equal_pytorch_grad_cam_on_the_same_images_and_maps():
    """Tolerance 1e-3 in probability, without noise (grad-cam's is unseeded).

    grad-cam removes the pixels at or above np.percentile(map, 100 (1 - f)), which is
    1023 - floor((1 - f) 1023) of 1,024 pixels: round(f 1024), as here, at f = 1/4, 1/2,
    3/4, one pixel more at f = 0.1 (103 against 102); so the comparison uses quarters."""
    model = LeftHalfNet().eval()
    x = _images(6, seed=3)
    cams = torch.rand(6, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    cls = model(x).argmax(1)
    fractions = [0.25, 0.5, 0.75]
    morf, lerf = road_curves(
        model, x, saliency_rank(cams), cls, fractions, 0.0, torch.Generator()
    )
    for j, f in enumerate(fractions):
        p = 100 * (1 - f)
        ref_m = _theirs(model, x, cams.numpy(), cls, p, least=False)
        ref_l = _theirs(model, x, cams.numpy(), cls, p, least=True)
        np.testing.assert_allclose(morf[:, j].numpy(), ref_m, atol=1e-3)
        np.testing.assert_allclose(lerf[:, j].numpy(), ref_l, atol=1e-3)


def test_deletion_and_insertion_meet_at_their_ends():
    model = LeftHalfNet().eval()
    x = _images(4)
    base = torch.zeros_like(x)
    cls = torch.zeros(4, dtype=torch.long)
    fr = step_fractions(0.3)
    assert fr.tolist() == pytest.approx([0, 0.3, 0.6, 0.9, 1.0])
    dele, ins = deletion_insertion(model, x, base, saliency_rank(x[:, 0]), cls, fr)
    p_x = model(x).softmax(1)[:, 0]
    p_base = model(base).softmax(1)[:, 0]
    torch.testing.assert_close(dele[:, 0], p_x.detach())
    torch.testing.assert_close(ins[:, -1], p_x.detach())
    torch.testing.assert_close(dele[:, -1], p_base.detach())
    torch.testing.assert_close(ins[:, 0], p_base.detach())
    assert auc(np.ones((2, 5)), fr).tolist() == pytest.approx([1.0, 1.0])


def test_saliency_rank_orders_pixels_most_salient_first():
    maps = torch.tensor([[[0.1, 0.9], [0.5, 0.5]]])
    assert saliency_rank(maps).tolist() == [[3, 0, 1, 2]]


def test_spearman_rows_ties_and_constant_maps():
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 1, 1, 1], [0, 0, 1, 2]], float)
    b = np.array([[2, 4, 6, 8], [4, 3, 2, 1], [1, 2, 3, 4], [0, 0, 0, 0]], float)
    rho = spearman_rows(a, b)
    assert rho[0] == pytest.approx(1) and rho[1] == pytest.approx(-1)
    assert np.isnan(rho[2]) and rho[3] == 0
    c = np.array([[0, 0, 1, 2]], float)
    assert spearman_rows(c, c + 1)[0] == pytest.approx(1)


def test_cascade_randomises_from_the_top_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    groups = parameter_layers(model)
    assert groups[0] == ["features.0.0", "features.0.1"] and groups[-1] == ["fc2"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = list(cascade(model, seed=0))
    assert [(k, top) for k, top, _ in steps][:2] == [(1, "fc2"), (2, "fc1")]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    state = steps[-1][2].state_dict()
    assert not torch.equal(state["features.0.0.weight"], before["features.0.0.weight"])
    assert half_index(5) == 3 and half_index(4) == 2


def test_sample_is_class_stratified_and_seeded():
    pred = pd.DataFrame(
        {"image_id": np.arange(40), "label": [0] * 30 + [1] * 6 + [2] * 4}
    )
    s = sample_images(pred, 12, seed=0)
    assert len(s) == 12 and s["image_id"].is_monotonic_increasing
    assert s["label"].value_counts().to_dict() == {0: 4, 1: 4, 2: 4}
    pd.testing.assert_frame_equal(s, sample_images(pred, 12, seed=0))
    assert not s.equals(sample_images(pred, 12, seed=1))
    assert len(sample_images(pred, None, 0)) == 40


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_stays_flat_over_many_batches():
    """Resident memory read as each batch is requested: after warm-up it may not grow
    with the number of images (maps and graphs are per batch; the randomisation check
    keeps only the images of its bounded sample)."""
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    x = _images(20)
    rss = []

    def batches():
        for i in range(30):  # 600 images
            rss.append(_rss_bytes())
            yield x, torch.arange(i * 20, i * 20 + 20)

    opts = OPTIONS | {"step": 0.25, "road_fractions": [0.5]}
    curves, rand, _ = check_saliency(
        model, "features.1", batches(), ["gradcam", "scorecam"], opts,
        cascade_positions=range(0, 600, 75),
    )  # fmt: skip
    assert curves["image_id"].nunique() == 600
    assert sorted(rand["image_id"].unique()) == list(range(0, 600, 75))
    growth = max(rss[10:]) - max(rss[:10])
    assert growth < 16 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB after warm-up"


def test_cascade_in_fewer_steps_reaches_the_same_random_model():
    from cnnatlas.explain.randomise import step_bounds

    assert step_bounds(54, 8) == [
        (0, 7), (7, 14), (14, 20), (20, 27), (27, 34), (34, 41), (41, 47), (47, 54)
    ]  # fmt: skip
    # a step ends at half the layers (rounded up), where the verdict is taken
    assert step_bounds(21, 8) == [
        (0, 3), (3, 6), (6, 8), (8, 11), (11, 13), (13, 16), (16, 19), (19, 21)
    ]  # fmt: skip
    for n in range(2, 60):
        for k in range(2, n + 1):
            ends = [e for _, e in step_bounds(n, k)]
            assert half_index(n) in ends and len(ends) == k and ends[-1] == n
    assert step_bounds(5, None) == [(i, i + 1) for i in range(5)]
    assert step_bounds(3, 8) == [(0, 1), (1, 2), (2, 3)]
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    every = list(cascade(model, seed=3))
    every_state = {k: v.clone() for k, v in every[-1][2].state_dict().items()}
    two = [(k, top, {n: v.clone() for n, v in m.state_dict().items()})
           for k, top, m in cascade(model, seed=3, max_steps=2)]  # fmt: skip
    assert [(k, top) for k, top, _ in two] == [(3, "fc2"), (5, "features.1.0")]
    for name, v in two[-1][2].items():
        assert torch.equal(v, every_state[name]), name


def test_randomisation_on_a_subset_in_steps_and_its_summary():
    model, x = _trained_digitnet()
    opts = OPTIONS | {"cascade_steps": 2}
    curves, rand, example = check_saliency(
        model, "features", _loader(x), ["gradcam"], opts, cascade_positions=[0, 5, 9]
    )
    assert sorted(rand["image_id"].unique()) == [0, 5, 9]
    # two steps: the first ends at half the layers (3 of 5)
    assert sorted(rand["layers_randomised"].unique()) == [3, 5]
    assert example["randomised"] == [3, 5] and example["layers"] == [
        "fc2",
        "features.1.0",
    ]
    assert curves["image_id"].nunique() == 24
    s = summarize_checks(curves, rand, _info(24), threshold=0.5)
    every = s.query("group == 'all'").iloc[0]
    assert every["n_randomised"] == 3 and every["layers"] == 5
    # "half": the step at which half (3 of 5, rounded up) of the layers are random
    assert "once 3 of 5 layers are random" in every["verdict"]
    by_class = s.query("group == 'class'").set_index("value")
    assert by_class["n_randomised"].sum() == 3
    none = by_class[by_class["n_randomised"] == 0]
    assert none["randomisation_passed"].isna().all()
    assert none["verdict"].str.contains("randomisation check not run").all()
    assert str(s["randomisation_passed"].dtype) == "boolean"


def test_shared_curve_ends_give_the_same_bytes():
    model = LeftHalfNet().eval()
    x = _images(6, seed=3)
    baseline = x * 0.5
    rank = saliency_rank(
        torch.rand(6, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    )
    cls = model(x).argmax(1)
    fr = step_fractions(0.2)
    from cnnatlas.explain.perturb import end_probs

    plain = deletion_insertion(model, x, baseline, rank, cls, fr)
    shared = deletion_insertion(
        model, x, baseline, rank, cls, fr, end_probs(model, x, baseline, cls)
    )
    for a, b in zip(plain, shared, strict=True):
        assert torch.equal(a, b)


def test_progress_counts_every_pass(caplog):
    import logging

    from cnnatlas.explain.trust import passes_per_image

    assert METHODS["scorecam"].passes_per_channel == 1
    assert METHODS["gradcam"].passes_per_channel == 0
    model = LeftHalfNet().eval()
    x = _images(6, seed=3)
    opts = OPTIONS | {"step": 0.25, "road_fractions": [0.5], "cascade_steps": 2}
    with caplog.at_level(logging.INFO, logger="cnnatlas.logs"):
        check_saliency(model, "features", _loader(x, 4), ["gradcam", "layercam"], opts,
                       cascade_positions=[1, 2])  # fmt: skip
    # per image: maps 1, ends 2, deletion+insertion 3 inner steps x 3 orders x 2, ROAD 2 x 2
    assert passes_per_image(2, opts) == 1 + 2 + 18 + 4
    n_steps = 2
    total = 6 * 25 + 2 * n_steps
    last = [
        r.getMessage() for r in caplog.records if "saliency checks" in r.getMessage()
    ][-1]
    assert f"{total}/{total} image passes (100%)" in last


def test_large_images_are_imputed_coarse_to_fine_close_to_the_exact_solution():
    import cnnatlas.explain.perturb as perturb

    g = torch.Generator().manual_seed(0)
    small = torch.randn(2, 3, 8, 8, generator=g)
    x = F.interpolate(small, size=(128, 128), mode="bilinear")
    x = x + 0.3 * torch.randn(2, 3, 128, 128, generator=g)
    sal = F.interpolate(torch.rand(2, 1, 4, 4, generator=g), size=(128, 128))[:, 0]
    removed = (saliency_rank(sal) < 128 * 64).view(2, 1, 128, 128)
    fast = impute_linear(x, removed)
    exact_side, perturb.WARM_START_SIDE = perturb.WARM_START_SIDE, 10**9
    try:
        exact = impute_linear(x, removed)
    finally:
        perturb.WARM_START_SIDE = exact_side
    d = (fast - exact).abs()
    assert torch.equal(fast[~removed.expand_as(x)], x[~removed.expand_as(x)])
    # within the scale of ROAD's noise (0.01) on average, of the pixels' spread (~1)
    assert d.mean() < 0.02 and d.max() < 0.3, (float(d.mean()), float(d.max()))


def test_a_difference_within_twice_its_standard_error_is_a_tie():
    from cnnatlas.explain.trust import _against

    assert _against(0.03, 0.005) == "beats random order"
    assert _against(0.03, 0.02) == "ties with random order"  # 0.03 < 2 x 0.02
    assert _against(-0.03, 0.005) == "loses to random order"
    assert _against(0.005, float("nan")) == "ties with random order"  # within 0.01
    assert _against(0.02, float("nan")) == "beats random order"
    n = 8
    rows = []
    for spread, method in ((0.0, "steady"), (0.2, "noisy")):
        for i in range(n):
            bump = spread * (1 if i % 2 else -1)
            rows.append({"image_id": i, "method": method, "deletion_auc": 0.5,
                         "insertion_auc": 0.53 + bump, "road_morf_mean": 0.4,
                         "road_lerf_mean": 0.6})  # fmt: skip
    for i in range(n):
        rows.append({"image_id": i, "method": "random", "deletion_auc": 0.5,
                     "insertion_auc": 0.5, "road_morf_mean": np.nan,
                     "road_lerf_mean": np.nan})  # fmt: skip
    curves = pd.DataFrame(rows)
    rand = pd.DataFrame(
        [{"image_id": i, "method": m, "layers_randomised": k, "spearman": 0.1}
         for i in range(n) for m in ("steady", "noisy") for k in (1, 2)]
    )  # fmt: skip
    s = summarize_checks(curves, rand, _info(n), 0.5).query("group == 'all'")
    s = s.set_index("method")
    assert "insertion beats random order" in s.loc["steady", "verdict"]
    assert "insertion ties with random order" in s.loc["noisy", "verdict"]
    assert s.loc["noisy", "insertion_diff_se"] == pytest.approx(
        0.2 / np.sqrt(n) * np.sqrt(n / (n - 1)), rel=1e-4
    )


BUDGET = {"step": 0.2, "road_fractions": [0.2, 0.5, 0.8], "max_images": 100,
          "cascade_images": 20, "budget_gflop": 400.0}  # fmt: skip


def test_the_budget_cuts_cascade_images_first_then_images_down_to_the_floors():
    from cnnatlas.explain.trust import check_passes, fit_check_budget

    def cost(gflop, images, cascade, steps=8):
        return check_passes(images, cascade, steps, 2, BUDGET) * gflop

    # a small CNN (the demo's at 32 px): everything asked for
    assert fit_check_budget(0.005, 1000, 5, 2, BUDGET) == (100, 20)
    assert fit_check_budget(0.005, 60, 5, 2, BUDGET) == (60, 20)  # fewer images
    # a ResNet-50 at 224 px: the floors, although they cost more than the budget
    assert fit_check_budget(8.18, 1000, 8, 2, BUDGET) == (10, 4)
    # in between: the cascade is cut first, then the images, to fit the budget
    images, cascade = fit_check_budget(0.433, 1000, 8, 2, BUDGET)
    assert cascade == 4 and 10 < images < 100
    assert cost(0.433, images, cascade) <= 400 < cost(0.433, images + 1, cascade)
    images, cascade = fit_check_budget(0.09, 1000, 8, 2, BUDGET)
    assert images == 100 and 4 < cascade < 20
    assert cost(0.09, images, cascade) <= 400 < cost(0.09, images, cascade + 1)
    # no budget, or a smaller request than the floors: as asked
    assert fit_check_budget(8.18, 1000, 8, 2, BUDGET | {"budget_gflop": None}) == (
        100,
        20,
    )
    small = BUDGET | {"max_images": 6, "cascade_images": 2}
    assert fit_check_budget(8.18, 1000, 8, 2, small) == (6, 2)
    # Score-CAM's masked passes count
    assert fit_check_budget(0.005, 1000, 5, 2, BUDGET, 512) < (100, 20)


def test_the_checks_log_the_budget_cut_and_name_the_keys(caplog):
    from cnnatlas.explain.trust import _budget
    from cnnatlas.torchutil import make_transform

    model = DigitNet().eval()
    tf = make_transform({"resize": 32, "crop": 32, "mean": [0.5], "std": [0.5],
                         "channels": 1})  # fmt: skip
    with caplog.at_level("WARNING"):
        assert _budget(model, "features", tf, torch.device("cpu"), 360, 5,
                       ["gradcam"], BUDGET) == (100, 20)  # fmt: skip
        assert not caplog.records
        images, cascade = _budget(model, "features", tf, torch.device("cpu"), 360, 5,
                                  ["gradcam"], BUDGET | {"budget_gflop": 1.0})  # fmt: skip
    assert (images, cascade) < (100, 20) and cascade == 4
    text = caplog.text
    assert "explain.trust.budget_gflop (1)" in text
    assert f"they run on {images} images, 4 of them through the cascade" in text
