"""Shared fixtures: a tiny synthetic ImageFolder and tiny checkpoints, made fresh per session."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.synthetic_maps import CLASSES, draw

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def check_accuracies(summary: str, model: str, predictions: dict) -> None:
    """A landing page's summary shows `model`'s checkpoints in the order of
    `predictions` ({ckpt: predictions table}), each with the share of its `correct`
    rows and their counts."""
    rows = re.findall(
        rf"<tr><td>{re.escape(model)}</td><td>([^<]+)</td><td class=\"num\">([\d.]+)%"
        r"</td><td class=\"num\">(\d+) of (\d+)</td></tr>",
        summary,
    )
    assert [r[0] for r in rows] == list(predictions)
    for ckpt, pct, correct, n in rows:
        table = predictions[ckpt]
        assert (int(correct), int(n)) == (table["correct"].sum(), len(table))
        assert pct == f"{100 * table['correct'].mean():.1f}"


def float_pipeline(spec: dict):
    """The eval transform as cnnatlas wrote it before its uint8 data path: torchvision's
    v2 pipeline per image, in float32. Tests compare the new path's bytes with it."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(spec["resize"], antialias=True),
            v2.CenterCrop(spec["crop"]),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=spec["mean"], std=spec["std"]),
        ]
    )


def make_imagefolder(
    root: Path, per_class: int = 10, size: int = 24, seed: int = 0
) -> Path:
    """`root/<class>/img_XX.png` for the three CLASSES; returns root."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(draw(kind, size, rng)).save(
                root / kind / f"img_{i:02d}.png"
            )
    return root


def save_tiny_checkpoints(folder: Path, names=("early", "late")) -> dict[str, str]:
    """Random-init DigitNet (3 classes, RGB) state_dicts, one seed per name."""
    from cnnatlas.demo import DigitNet

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        path = folder / f"{name}.pt"
        torch.save(DigitNet(num_classes=3, in_channels=3, width=4).state_dict(), path)
        out[name] = str(path)
    return out


@pytest.fixture(scope="session")
def imagefolder(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "images")


@pytest.fixture
def one_torch_thread():
    """torch on 1 thread for the test: its threads spin while waiting, and on shared
    cores 2 threads ran tiny models 30x slower than 1."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def has(request):
    """has('chromium') -> bool; under CI=true a missing program fails instead of skipping."""

    def check(program: str) -> bool:
        return shutil.which(program) is not None

    return check


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """The command line of the real snakemake on REPO's Snakefile in `workdir`."""
    return [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 900
) -> subprocess.CompletedProcess:
    """The real snakemake on REPO's Snakefile in `workdir` (which holds config.yaml)."""
    cmd = snakemake_cmd(workdir, "--cores", "2", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc
