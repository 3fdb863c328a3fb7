"""The cost model behind `cnnatlas plan` (cnnatlas.cost) and the schema's default filling."""

import pytest
import torchvision
from cnnatlas import cost
from cnnatlas.schema import fill_defaults

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = {
    "arch": "resnet18",
    "num_classes": 3,
    "checkpoints": {"a": "a.pt"},
    "layers": {"layer3": "avg", "layer4": "avg", "avgpool": "flatten"},
    "transform": {"resize": 64, "crop": 64, "mean": [0.5] * 3, "std": [0.25] * 3},
}


def _config() -> dict:
    return fill_defaults(
        {"dataset": {"kind": "imagefolder", "path": "x"}, "models": {"r18": SPEC}}
    )


def test_fill_defaults_fills_every_depth_and_each_model():
    config = _config()
    assert config["explain"]["trust"]["max_images"] == 100
    assert config["explain"]["filters"]["budget_gflop"] == 1500
    assert config["extract"]["batch_size"] >= 1
    assert config["models"]["r18"]["transform"]["channels"] == 3
    assert config["dataset"]["on_bad_image"] == "fail"
    # what the user wrote stays
    kept = fill_defaults({"explain": {"trust": {"max_images": 3}}})
    assert kept["explain"]["trust"]["max_images"] == 3
    assert kept["explain"]["trust"]["step"] == 0.2


def test_profile_measures_flops_time_and_the_filter_budget():
    config = _config()
    prof = cost.profile_model(SPEC, "r18", config["explain"], [], threads=1)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    # resnet18: 1.82 G multiply-adds at 224 px, 3.64 GFLOP; at 64 px (64 / 224) ** 2 of it
    assert 0.28 < prof.gflop < 0.31, prof.gflop
    assert prof.forward_s > 0 and prof.call_s >= 0
    assert prof.params_mb == pytest.approx(
        sum(p.numel() for p in model.parameters()) * 4 / 2**20
    )
    assert prof.target_channels == 512  # layer4's output, the saliency layer
    # 17 convolutions of the main path, 3 downsampling ones and fc (norms go with them)
    assert prof.parameter_layers == 21
    assert prof.filter_setting.endswith("at 64 px")


def _profile(**kw) -> cost.ModelProfile:
    base = dict(
        name="m", gflop=8.0, forward_s=0.1, call_s=0.01, decode_s=0.005,
        params_mb=100.0, activations_mb=100.0, crop=224, filter_gflop=1500.0,
        filter_setting="4 channels x 45 steps at 128 px", target_channels=2048,
        parameter_layers=54,
    )  # fmt: skip
    return cost.ModelProfile(**(base | kw))


def test_estimate_sums_stages_names_the_dominant_rule_and_what_does_not_fit():
    config = _config()
    jobs = {"extract_features": 1, "check_saliency": 1, "reduce_tsne": 4}
    constants = {
        "base": {"default": 2.0},
        "k": {"default": 3.0, "extract_features": 1.0, "check_saliency": 1.0},
        "exponent": {"default": 1.0, "reduce_tsne": 1.5},
    }
    plan = cost.estimate(
        jobs, 1000, 10, {"m": _profile()}, config, ["gradcam", "gradcam++"], constants,
        cores=2, mem_mb={"check_saliency": 1000.0},
    )  # fmt: skip
    rules = {r["rule"]: r for r in plan["rules"]}
    # extraction: 1,000 images x (0.1 + 0.01 / batch + 0.005) plus the job's base
    bs = config["extract"]["batch_size"]
    assert rules["extract_features"]["cpu_s"] == pytest.approx(
        2 + 1000 * (0.1 + 0.01 / bs + 0.005), abs=0.1
    )
    assert rules["reduce_tsne"]["cpu_s"] == pytest.approx(4 * (2 + 3.0), abs=0.1)
    assert plan["stages"]["analysis"] == rules["reduce_tsne"]["cpu_s"]
    assert plan["ratio_to_extraction"]["extraction"] == 1
    assert plan["dominant"] == max(plan["rules"], key=lambda r: r["cpu_s"])["rule"]
    assert plan["too_big"] == ["check_saliency"]  # 10 images x 100 MB x 1.5 > 1 GB
    text = cost.format_plan(plan, {"check_saliency": 1000.0})
    assert "check_saliency would need about" in text
    assert "lower explain.trust.max_images" in text
    # the checks grow with their sample, not with the dataset
    more = cost.estimate(
        jobs, 50_000, 10, {"m": _profile()}, config, ["gradcam"], constants
    )
    rules_more = {r["rule"]: r for r in more["rules"]}
    assert rules_more["check_saliency"]["cpu_s"] < rules["check_saliency"]["cpu_s"]
    assert (
        rules_more["extract_features"]["cpu_s"]
        > 40 * rules["extract_features"]["cpu_s"]
    )


def test_the_plan_counts_the_demos_test_split_before_it_is_written(tmp_path):
    from cnnatlas.cli import _dataset
    from cnnatlas.demo import split_digits

    config = fill_defaults({"dataset": {"path": str(tmp_path / "not-yet")}})
    config["demo"] = config["demo"] | {"enabled": True}
    n, classes, sample = _dataset(config)
    # scikit-learn rounds the test share up: 0.2 of 1,797 digits is 360, not 359
    assert (
        (n, classes, sample) == (len(split_digits(0.2, 0)[1]), 10, []) == (360, 10, [])
    )


def test_an_import_costs_its_files_size_not_a_forward_pass(tmp_path):
    import numpy as np

    folder = tmp_path / "a"
    folder.mkdir()
    np.save(folder / "layer4.npy", np.zeros((1000, 256)))  # 2,000 kB of float64
    np.save(folder / "logits.npy", np.zeros((1000, 3)))
    models = {"ext": {"features_from": {"a": str(folder)}, "layers": {"layer4": "avg"}}}
    sizes = cost.import_sizes(models)
    assert list(sizes) == ["ext/a"] and sizes["ext/a"] == pytest.approx(1.98, abs=0.01)
    constants = {"base": {"default": 2.0}, "k": {"default": 3.0}, "exponent": {}}
    constants["exponent"]["default"] = 1.0
    plan = cost.estimate(
        {"import_features": 2}, 1000, 3, {}, _config(), [], constants,
        imports={"ext/a": 400.0, "ext/b": 200.0},
    )  # fmt: skip
    row = plan["rules"][0]
    # two jobs of 300 MB on average, read and written at IMPORT_MB_PER_S
    assert row["stage"] == "extraction" and row["work"] == 600.0
    assert row["cpu_s"] == pytest.approx(2 * 2.0 + 600 / cost.IMPORT_MB_PER_S)
    assert row["mem_mb"] == 700 + 400
    assert plan["models"] == {}
