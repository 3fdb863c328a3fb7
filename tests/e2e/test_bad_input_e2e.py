"""Bad datasets, checkpoints and configs through the real snakemake: what a user sees.

Failing runs are checked on snakemake's stderr (a failed job prints its message there,
once, without its traceback) and on the job's log file (which holds the traceback).
"""

import copy
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from cnnatlas.demo import DigitNet
from cnnatlas.io import read_parquet_meta

from tests.badcorpus import AWKWARD_CLASSES, BAD, IMAGES, write_imagefolder
from tests.conftest import make_imagefolder, snakemake_cmd

pytestmark = pytest.mark.e2e

TINY_MODEL = {
    "arch": "cnnatlas.demo:DigitNet",
    "num_classes": 3,
    "kwargs": {"in_channels": 3, "width": 4},
    "checkpoints": {"ck": "ckpt/good.pt"},
    "layers": {"features.1.3": "avg", "fc1": "avg"},
    "transform": {
        "resize": 32,
        "crop": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    },
}
BASE = {
    "dataset": {"kind": "imagefolder", "path": "data"},
    "models": {"tiny": TINY_MODEL},
    "extract": {"batch_size": 8, "topk": 2},
    "maps": {"methods": ["pca"], "dims": [2], "metrics": {"k": 3, "folds": 2}},
    "explain": {"enabled": False},
    "projector": {"enabled": False},
    "evolution": {"enabled": False},
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The real snakemake in `workdir`; the caller checks the return code."""
    cmd = snakemake_cmd(workdir, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def write_config(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return workdir


def save_good_checkpoint(workdir: Path, num_classes: int = 3) -> Path:
    (workdir / "ckpt").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = workdir / "ckpt" / "good.pt"
    net = DigitNet(num_classes=num_classes, in_channels=3, width=4)
    torch.save(net.state_dict(), path)
    return path


def with_(patch: dict, base: dict = BASE) -> dict:
    """`base` deep-updated by `patch` (an empty mapping replaces)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = with_(value, out[key])
        else:
            out[key] = value
    return out


# ---- config errors: `snakemake -n` stops before any job, naming the key ----------

CONFIG_CASES = {
    "unknown key": (
        {"dataset": {"on_bad_images": "skip"}},
        [
            "Additional properties are not allowed ('on_bad_images' was unexpected)",
            "On instance['dataset']",
        ],
    ),
    "unknown top-level key": (
        {"extrakt": {"batch_size": 4}},
        ["('extrakt' was unexpected)"],
    ),
    "wrong type": (
        {"extract": {"batch_size": "big"}},
        ["'big' is not of type 'integer'", "On instance['extract']['batch_size']"],
    ),
    "negative value": (
        {"extract": {"topk": -1}},
        ["-1 is less than the minimum of 1", "On instance['extract']['topk']"],
    ),
    "empty list": (
        {"maps": {"seeds": []}},
        ["[] should be non-empty", "On instance['maps']['seeds']"],
    ),
    "empty mapping": (
        {"models": {"tiny": {"layers": {}}}},
        ["{} should be non-empty", "On instance['models']['tiny']['layers']"],
    ),
    "bad enum": (
        {"dataset": {"on_bad_image": "ignore"}},
        [
            "'ignore' is not one of ['fail', 'skip']",
            "On instance['dataset']['on_bad_image']",
        ],
    ),
    "missing checkpoint file": (
        {"models": {"tiny": {"checkpoints": {"ck": "ckpt/nope.pt"}}}},
        ["Missing input files for rule extract_features", "ckpt/nope.pt"],
    ),
}


@pytest.fixture(scope="module")
def config_runs(tmp_path_factory):
    """Every CONFIG_CASES dry run, two at a time: {case: completed process}."""
    root = tmp_path_factory.mktemp("configs")

    def run(item):
        case, (patch, _) = item
        workdir = write_config(root / case.replace(" ", "_"), with_(patch))
        make_imagefolder(workdir / "data", per_class=1, size=8)
        save_good_checkpoint(workdir)
        return case, snakemake(workdir, "-n", "--cores", "1")

    with ThreadPoolExecutor(2) as pool:
        return dict(pool.map(run, CONFIG_CASES.items()))


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_stops_the_dry_run_naming_the_key(config_runs, case):
    proc = config_runs[case]
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr  # snakemake prints workflow errors on stdout
    for text in CONFIG_CASES[case][1]:
        assert text in out, out[-3000:]
    assert "Job stats" not in out  # nothing was even planned


# ---- checkpoints and layers: every job fails with its own message ----------------


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


MODEL_CASES = {
    "evil": (
        {"checkpoints": {"ck": "ckpt/evil.pt"}},
        "refuses to unpickle, because unpickling can run code. Only if you trust "
        "this file, set trust_checkpoint: true for this model in the config.",
    ),
    "cut": ({"checkpoints": {"ck": "ckpt/cut.pt"}}, "is not a readable torch file"),
    "wrongk": (
        {"num_classes": 5},
        "(2 mismatches: 2 shapes, 0 missing, 0 unexpected): "
        "fc2.weight: checkpoint (3, 128) vs model (5, 128)",
    ),
    "typo": (
        {"layers": {"fc_1": "avg"}},
        "models.typo.layers: 'fc_1' is not a node of the model; close matches: ['fc1'",
    ),
    "nomodule": (
        {"arch": "mynetz:DigitNet"},
        "arch 'mynetz:DigitNet': no module 'mynetz' in the project folder",
    ),
}


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """One `snakemake --keep-going` over the broken models; (workdir, process).

    (Another architecture's checkpoint is tested in unit/test_model_failures.py.)
    """
    models = {
        name: with_(patch, TINY_MODEL) for name, (patch, _) in MODEL_CASES.items()
    }
    workdir = write_config(
        tmp_path_factory.mktemp("models"),
        with_({"models": models}, {**BASE, "models": {}}),
    )
    make_imagefolder(workdir / "data", per_class=2, size=16)
    good = save_good_checkpoint(workdir)
    torch.save({"state_dict": _Payload(workdir / "code_ran")}, workdir / "ckpt/evil.pt")
    (workdir / "ckpt/cut.pt").write_bytes(good.read_bytes()[:2000])
    targets = [f"results/{name}/ck/predictions.parquet" for name in MODEL_CASES]
    proc = snakemake(
        workdir,
        *targets,  # before --set-threads, which takes several values
        "--cores",
        "2",
        "--keep-going",
        "--set-threads",
        "extract_features=1",
    )
    return workdir, proc


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_broken_model_fails_its_job_with_a_message_naming_it(model_run, name):
    workdir, proc = model_run
    assert proc.returncode != 0
    assert "Error in rule extract_features" in proc.stderr
    log = (workdir / f"results/logs/extract_features/{name}/ck.log").read_text()
    expected = MODEL_CASES[name][1]
    assert expected in log and expected in proc.stderr
    # one message on the terminal; the traceback only in the job's log
    assert "Traceback" in log and "Traceback" not in proc.stderr
    shown = [ln for ln in proc.stderr.splitlines() if expected in ln]
    assert len(shown) == 1 and shown[0].startswith("cnnatlas: ")
    ckpt = TINY_MODEL["checkpoints"]["ck"]
    ckpt = MODEL_CASES[name][0].get("checkpoints", {}).get("ck", ckpt)
    if name not in ("typo", "nomodule"):
        assert f"checkpoint {ckpt!r}" in log
    assert not (workdir / f"results/{name}/ck/predictions.parquet").exists()


def test_no_code_ran_from_the_untrusted_checkpoint(model_run):
    workdir, _ = model_run
    assert (workdir / "results/manifest.parquet").is_file()
    assert not (workdir / "code_ran").exists()


# ---- bad images: fail stops before extraction; skip leaves them out -------------


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_imagefolder(root / "data")
    save_good_checkpoint(
        root, num_classes=6
    )  # 3 awkward names, empty, mixed, no_images
    return root


CORPUS = with_({"models": {"tiny": {"num_classes": 6}}})
CORPUS["models"]["tiny"]["layers"] = {"fc1": "avg"}  # one layer: fewer map jobs


def test_fail_stops_before_extraction_listing_every_bad_file(corpus_dir):
    write_config(corpus_dir, CORPUS)
    proc = snakemake(corpus_dir, "--cores", "2")
    assert proc.returncode != 0
    assert "Error in rule build_manifest" in proc.stderr
    n = sum(
        1
        for p in (corpus_dir / "data").rglob("*")
        if p.suffix in (".png", ".jpg", ".gif")
    )
    assert f"{len(BAD)} of {n} images are missing or cannot be decoded" in proc.stderr
    for name in BAD:
        line = next(ln for ln in proc.stderr.splitlines() if f"/{name}:" in ln)
        assert line.strip().startswith("data/mixed/" + name)
    assert "set dataset.on_bad_image: skip" in proc.stderr
    assert not (corpus_dir / "results/manifest.parquet").exists()
    assert not (corpus_dir / "results/logs/extract_features").exists()


def test_skip_runs_on_the_good_images_with_awkward_names_intact(corpus_dir):
    write_config(corpus_dir, with_({"dataset": {"on_bad_image": "skip"}}, CORPUS))
    maps = "results/tiny/ck/embeddings/fc1/pca-2d-p0-s0.parquet"
    proc = snakemake(
        corpus_dir, "--cores", "2", "results/tiny/ck/predictions.parquet", maps
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = corpus_dir / "results"
    m = pd.read_parquet(res / "manifest.parquet")
    bad = pd.read_parquet(res / "bad_images.parquet")
    assert sorted(Path(p).name for p in bad["path"]) == BAD
    assert m["image_id"].tolist() == list(range(len(m)))
    assert len(m) == 3 * 4 + len(IMAGES) - len(BAD)
    p = pd.read_parquet(res / "tiny/ck/predictions.parquet")
    assert p["image_id"].tolist() == m["image_id"].tolist()
    assert p["path"].tolist() == m["path"].tolist()
    assert p["label_name"].tolist() == m["label_name"].tolist()
    for layer in CORPUS["models"]["tiny"]["layers"]:
        f = np.load(res / f"tiny/ck/features/{layer}.npy")
        assert f.shape[0] == len(m) and np.isfinite(f).all()
        emb = pd.read_parquet(res / f"tiny/ck/embeddings/{layer}/pca-2d-p0-s0.parquet")
        assert emb["image_id"].tolist() == m["image_id"].tolist()
    # a tab and a newline in a class name survive manifest and predictions unchanged
    for path in (res / "manifest.parquet", res / "tiny/ck/predictions.parquet"):
        classes = json.loads(read_parquet_meta(path)["cnnatlas.classes"])
        assert set(AWKWARD_CLASSES) <= set(classes)
    tabbed = p[p["label_name"] == "tab\tand\nnewline"]
    assert len(tabbed) == 4
    assert all("/tab\tand\nnewline/img " in s for s in tabbed["path"])
    assert set(p["pred_name"]) <= set(classes)
