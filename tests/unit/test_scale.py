"""benchmarks/scale_data.py: seeded scale datasets, their checkpoints and config; benchmarks/scale.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from cnnatlas.plan import Plan
from cnnatlas.schema import SCHEMA
from PIL import Image
from snakemake.utils import validate

from benchmarks.scale_data import (
    DIGIT_CLASSES,
    SHAPE_CLASSES,
    augment_digit,
    draw_shape,
    make_digits,
    scale_config,
    train_shapes,
    write_config,
    write_digits_images,
    write_shapes_images,
)

REPO = Path(__file__).resolve().parents[2]


def _bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))
    }


def test_digits_same_seed_same_bytes_and_prefix_stable(tmp_path):
    a = write_digits_images(tmp_path / "a", 25, seed=3)
    write_digits_images(tmp_path / "b", 25, seed=3)
    write_digits_images(tmp_path / "c", 25, seed=4)
    small = write_digits_images(tmp_path / "small", 12, seed=3)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert len(_bytes(tmp_path / "a")) == 25
    differ = [
        k for k, v in _bytes(tmp_path / "a").items() if _bytes(tmp_path / "c")[k] != v
    ]
    assert len(differ) == 25
    # the images of a smaller N are the first images of a larger one
    big = _bytes(tmp_path / "a")
    assert all(big[k] == v for k, v in _bytes(tmp_path / "small").items())
    # classes take turns: balanced to within one image
    assert sorted(a) == list(DIGIT_CLASSES)
    assert a == {c: 3 if int(c) < 5 else 2 for c in DIGIT_CLASSES}
    assert small == {c: 2 if int(c) < 2 else 1 for c in DIGIT_CLASSES}
    img = Image.open(tmp_path / "a" / "7" / "img_000017.png")
    assert img.mode == "L" and img.size == (32, 32)


def test_augment_digit_varies_but_keeps_the_digit():
    from cnnatlas.demo import digit_image
    from sklearn.datasets import load_digits

    src = np.asarray(digit_image(load_digits().images[0], 32))
    outs = [augment_digit(src, np.random.default_rng(i)) for i in range(20)]
    assert all(o.shape == (32, 32) and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 20
    corr = [np.corrcoef(src.ravel(), o.ravel())[0, 1] for o in outs]
    assert np.median(corr) > 0.4  # still the same digit, mostly
    assert min(corr) < 0.95  # but not a copy


def test_shapes_every_class_seeded(tmp_path):
    counts = write_shapes_images(tmp_path / "a", 14, seed=0)
    write_shapes_images(tmp_path / "b", 14, seed=0)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert counts == {c: 3 if i < 2 else 2 for i, c in enumerate(SHAPE_CLASSES)}
    img = Image.open(tmp_path / "a" / "ring" / "img_000002.png")
    assert img.mode == "RGB" and img.size == (64, 64)
    rng = np.random.default_rng(0)
    for kind in SHAPE_CLASSES:
        pixels = draw_shape(kind, 64, rng)
        bright = (pixels.astype(int).sum(-1) > 330).mean()
        assert 0.02 < bright < 0.8, kind  # a shape drawn, not the whole image
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        draw_shape("hexagon", 64, rng)


@pytest.mark.parametrize("kind", ["digits", "shapes"])
def test_scale_config_is_the_target_workload(kind):
    config = scale_config(kind, "images", {f"s{k}": f"c{k}.pt" for k in range(3)})
    validate(config, str(SCHEMA))  # fills the schema's defaults, as common.smk does
    (model,) = config["models"].values()
    assert len(model["checkpoints"]) == 3 and len(model["layers"]) == 5
    assert config["maps"]["perplexities"] == [10, 30]
    assert config["maps"]["seeds"] == [0, 1]
    assert set(config["maps"]["methods"]) == {"tsne", "pca", "umap"}
    assert config["maps"]["dims"] == [2, 3]
    assert config["explain"]["enabled"] and config["projector"]["enabled"]
    plan = Plan(config)
    assert plan.maps.targets() and plan.projector.targets()


def test_write_config_rejects_an_invalid_config(tmp_path):
    config = scale_config("digits", "images", {"a": "a.pt"})
    config["maps"]["dims"] = [4]
    with pytest.raises(ValueError, match="maps.dims.0"):
        write_config(config, tmp_path / "config.yaml")
    assert not (tmp_path / "config.yaml").exists()


def test_make_digits_with_the_demo_checkpoints(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with pytest.raises(FileNotFoundError, match="step0005.pt.*run the demo"):
        make_digits(tmp_path / "out", 10, checkpoints=ckpt)
    assert not (tmp_path / "out").exists()  # checked before anything is written
    from benchmarks.scale_data import main

    assert (
        main(
            [
                "digits",
                "--n",
                "5",
                "--out",
                str(tmp_path / "o"),
                "--checkpoints",
                str(ckpt),
            ]
        )
        == 1
    )
    for step in (5, 60, 600):
        (ckpt / f"step{step:04d}.pt").write_bytes(b"x")
    path = make_digits(tmp_path / "out", 10, checkpoints=ckpt)
    config = yaml.safe_load(path.read_text())
    assert config["models"]["digitnet"]["checkpoints"]["step0600"] == str(
        ckpt / "step0600.pt"
    )
    assert config["dataset"]["path"] == "images"
    assert len(list((tmp_path / "out" / "images").rglob("*.png"))) == 10


def test_train_shapes_saves_each_step_same_bytes(tmp_path, one_torch_thread):
    def once(folder: Path) -> list[bytes]:
        files = [folder / "a.pt", folder / "b.pt"]
        losses = train_shapes(files, [1, 3], n_train=32, batch_size=8, threads=1)
        assert len(losses) == 2 and all(np.isfinite(losses))
        return [f.read_bytes() for f in files]

    first = once(tmp_path / "x")
    assert first == once(tmp_path / "y")
    assert first[0] != first[1]
    state = torch.load(tmp_path / "x" / "b.pt")
    assert state["fc.weight"].shape == (len(SHAPE_CLASSES), 512)


def _bench(path: Path, rows: list[tuple[float, float, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    body = "".join(
        f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n" for s, cpu, rss in rows
    )
    path.write_text(header + body)


def test_benchmarks_scale_collect_and_compare(tmp_path):
    script = REPO / "benchmarks" / "scale.py"
    for n, k in ((200, 1), (1000, 5)):
        bench = tmp_path / str(n) / "results" / "benchmarks"
        _bench(bench / "build_manifest.tsv", [(1.0 * k, 0.5 * k, 100)])
        _bench(
            bench / "measure_maps" / "m" / "c1" / "l1.tsv", [(2.0 * k, 2.0 * k, 300)]
        )
        _bench(
            bench / "measure_maps" / "m" / "c2" / "l1.tsv",
            [(4.0 * k, 3.0 * k, 500 * k)],
        )
    outs = []
    for n in (200, 1000):
        proc = subprocess.run(
            [
                sys.executable,
                script,
                "collect",
                "--workdir",
                tmp_path / str(n),
                "--n",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        outs.append(tmp_path / f"{n}.json")
        outs[-1].write_text(proc.stdout)
    small = json.loads(outs[0].read_text())
    assert small["n"] == 200
    assert small["rules"]["measure_maps"] == {
        "jobs": 2,
        "s": {"sum": 6.0, "max": 4.0},
        "cpu_time": {"sum": 5.0, "max": 3.0},
        "max_rss": {"max": 500.0},
    }
    assert small["rules"]["build_manifest"]["jobs"] == 1
    proc = subprocess.run(
        [sys.executable, script, "compare", *outs],
        capture_output=True,
        text=True,
        check=True,
    )
    ratios = json.loads(proc.stdout)
    assert ratios["n"] == [200, 1000]
    assert ratios["rules"]["measure_maps"] == {
        "s": 5.0,
        "cpu_time": 5.0,
        "max_rss": 5.0,
    }
    assert ratios["rules"]["build_manifest"]["max_rss"] == 1.0
    # a file that is not a benchmark: a clear error naming it
    pd.DataFrame({"x": [1]}).to_csv(
        tmp_path / "200/results/benchmarks/bad.tsv", sep="\t"
    )
    proc = subprocess.run(
        [sys.executable, script, "collect", "--workdir", tmp_path / "200"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "bad.tsv" in proc.stderr
