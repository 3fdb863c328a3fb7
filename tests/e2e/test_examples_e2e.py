"""The example configs under examples/ that test_own_model_e2e.py does not run, each run
through the real snakemake on tiny data made here.

The example is loaded and a small overlay is merged into it: the dataset path points at
the tiny data, and the heavy optional stages are turned down (a `None` in the overlay
removes a key, e.g. a checkpoint). Everything else is the example as a user copies it.
"""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml

from tests.conftest import REPO
from tests.e2e.test_own_model_e2e import snakemake, write_images

pytestmark = pytest.mark.e2e

EXAMPLES = REPO / "examples"
QUIET = {
    "explain": {"enabled": False},
    "projector": {"enabled": False},
    "evolution": {"enabled": False},
}


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` merged into a copy of `base`, mappings recursively; None removes a key."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_project(root: Path, name: str, overlay: dict) -> dict:
    """root/config.yaml: examples/`name` with `overlay` merged in; the merged config."""
    config = merge(yaml.safe_load((EXAMPLES / name).read_text()), overlay)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def save_checkpoints(root: Path, spec: dict) -> None:
    """A random-init torchvision model of `spec`, saved as every checkpoint it names."""
    torch.manual_seed(0)
    model = getattr(torchvision.models, spec["arch"])(num_classes=spec["num_classes"])
    for path in spec["checkpoints"].values():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), root / path)


def test_imagefolder_and_torchvision_example(tmp_path):
    overlay = {
        "maps": {
            "methods": ["pca"],
            "dims": [2],
            "metrics": {"k": 2, "folds": 2},
        },
        **QUIET,
    }
    config = example_project(tmp_path, "imagefolder-torchvision.yaml", overlay)
    write_images(tmp_path / config["dataset"]["path"], ["circle", "square", "stripes"])
    spec = config["models"]["resnet18"]
    save_checkpoints(tmp_path, spec)
    snakemake(tmp_path)
    results = tmp_path / "results"
    for ckpt in spec["checkpoints"]:
        run = results / "resnet18" / ckpt
        p = pd.read_parquet(run / "predictions.parquet")
        assert len(p) == 6 and set(p["label_name"]) == {"circle", "square", "stripes"}
        shapes = {n: np.load(run / f"features/{n}.npy").shape for n in spec["layers"]}
        assert shapes == {
            "layer2": (6, 128),
            "layer3": (6, 256),
            "layer4.1.relu_1": (6, 512),
            "avgpool": (6, 512),
        }
        for colour in config["figures"]["colour_by"]:
            assert (run / f"figures/layer3/pca-2d-p0-s0.{colour}.png").is_file()
    assert (results / "atlas.html").is_file() and (results / "index.html").is_file()


def test_slurm_gpu_example_runs_locally_sharded_with_one_job_per_layer(tmp_path):
    overlay = {
        "dataset": {"path": "data/val.parquet"},
        "models": {
            "resnet50": {
                "checkpoints": {"epoch30": None},
                "layers": {"layer2": None, "layer3": None},
                "transform": {"resize": 32, "crop": 32},
            }
        },
        "extract": {"device": "cpu", "batch_size": 2, "shards": 2},
        "maps": {"methods": ["pca"], "dims": [2], "metrics": {"k": 2, "folds": 2}},
        **QUIET,
    }
    config = example_project(tmp_path, "slurm-gpu.yaml", overlay)
    assert (
        config["layer_jobs"] == "layer" and config["dataset"]["on_bad_image"] == "skip"
    )
    images = tmp_path / "data/images"
    write_images(images, ["circle", "square", "stripes"])
    paths = sorted(images.glob("*/*.png"))
    rows = [
        {
            "path": str(p.relative_to(tmp_path / "data")),
            "label": p.parent.name,
            "site": s,
        }
        for s, p in zip("ABABAB", paths, strict=True)
    ]
    (images / "broken.png").write_bytes(b"not an image")
    rows.append({"path": "images/broken.png", "label": "circle", "site": "A"})
    pd.DataFrame(rows).to_parquet(tmp_path / config["dataset"]["path"])
    spec = config["models"]["resnet50"]
    save_checkpoints(tmp_path, spec)
    snakemake(tmp_path)
    results = tmp_path / "results"
    run = results / "resnet50/epoch90"
    p = pd.read_parquet(run / "predictions.parquet")
    assert len(p) == 6 and sorted(p["site"]) == list("AAABBB")
    assert (
        pd.read_parquet(results / "bad_images.parquet")["path"]
        .str.endswith("broken.png")
        .all()
    )
    assert np.load(run / "features/fc.npy").shape == (6, 1000)
    assert not (run / "shards").exists()  # gathered and deleted
    for layer in ("layer4", "fc"):  # layer_jobs: layer, one job per layer
        assert (results / f"logs/reduce_pca/resnet50/epoch90/{layer}.log").is_file()
    assert (results / "atlas.html").is_file()


def test_every_example_config_validates_and_is_run_by_a_test():
    import jsonschema
    from cnnatlas.schema import load_schema

    tests = "".join(p.read_text() for p in (REPO / "tests/e2e").glob("test_*.py"))
    for path in sorted(EXAMPLES.glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        if "models" in config:
            jsonschema.validate(config, load_schema())
        assert f'"{path.name}"' in tests, f"no e2e test runs examples/{path.name}"


def test_features_from_example_with_features_saved_by_save_features(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "save_features", EXAMPLES / "save_features.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    overlay = {"maps": {"methods": ["pca"], "metrics": {"k": 2, "folds": 2}}, **QUIET}
    config = example_project(tmp_path, "features-from.yaml", overlay)
    root = tmp_path / config["dataset"]["path"]
    write_images(root, ["circle", "square", "stripes"])
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)  # layer3, layer4, avgpool
    folder = config["models"]["resnet50"]["features_from"]["imagenet"]
    transform = torchvision.transforms.Compose(
        [torchvision.transforms.Resize(32), torchvision.transforms.ToTensor()]
    )
    example.save_features(model, ["layer3", "layer4", "avgpool"], str(root),
                          tmp_path / folder, transform, batch_size=4)  # fmt: skip
    assert (tmp_path / folder / "paths.txt").read_text().startswith("circle/img_00.png")
    snakemake(tmp_path)
    run = tmp_path / "results/resnet50/imagenet"
    p = pd.read_parquet(run / "predictions.parquet")
    assert len(p) == 6 and set(p["label_name"]) == {"circle", "square", "stripes"}
    for layer, dim in (("layer3", 256), ("layer4", 512), ("avgpool", 512)):
        saved = np.load(tmp_path / folder / f"{layer}.npy")
        np.testing.assert_array_equal(np.load(run / f"features/{layer}.npy"), saved)
        assert saved.shape == (6, dim)
    assert (run / "embeddings/layer4/pca-2d-p0-s0.parquet").is_file()
    assert (tmp_path / "results/atlas.html").is_file()
    assert not (run / "explain").exists()
