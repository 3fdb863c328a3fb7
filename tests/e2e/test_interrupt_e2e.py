"""`kill -9` the workflow mid-job, run the same command again: same bytes as a clean run.

While the run is dead, no final-name file may be partial: every output that exists
under its final name must load completely.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cnnatlas.locks import OWNER_FILE, record_owner
from PIL import Image

from tests.conftest import make_imagefolder, run_snakemake, snakemake_cmd
from tests.e2e.test_bad_input_e2e import save_good_checkpoint, with_

pytestmark = pytest.mark.e2e

# batch_size 1 over 60 images keeps the forward pass long enough to be caught mid-way
# (about 4 s). Five t-SNE seeds of 3,000 iterations make one reduction job write five
# maps; it fits two side by side on two cores, so the last map comes two fits (about a
# second) after the first: three seeds of 750 iterations left ~0.1 s, which a loaded
# machine missed.
SLOW = with_(
    {  # one layer, t-SNE only: fewer jobs
        "extract": {"batch_size": 1},
        "explain": {"enabled": False},
        "projector": {"enabled": False},
        "evolution": {"enabled": False},
        "maps": {
            "methods": ["tsne"],
            "perplexities": [5],
            "seeds": [0, 1, 2, 3, 4],
            "tsne": {"n_iter": 3000},
            "metrics": {"k": 5, "folds": 2},
        },
    }
)
SLOW["models"]["tiny"]["layers"] = {"fc1": "avg"}
# The command the test runs, killed and run again: the README's `snakemake --cores 2`
# with the predictions and the t-SNE maps as targets, so that the other stages' jobs
# (figures, metrics, provenance) do not triple the test's time.
TARGETS = [
    "results/tiny/ck/predictions.parquet",
    *(f"results/tiny/ck/embeddings/fc1/tsne-2d-p5-s{s}.parquet" for s in range(5)),
]


def _prepare(workdir: Path, source: Path) -> Path:
    shutil.copytree(source, workdir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(SLOW))
    return workdir


def _descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += [int(child), *_descendants(int(child))]
    return out


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL snakemake's process group and every process it started."""
    pids = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _kill_when(workdir: Path, ready, timeout: float = 300) -> str:
    """Start the command (TARGETS) in `workdir`; kill -9 it as soon as `ready()` holds.

    Returns what snakemake printed until then.
    """
    cmd = snakemake_cmd(workdir, "--cores", "2", *TARGETS)
    log = workdir / f"killed-{time.monotonic_ns()}.txt"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        try:
            while not ready():
                assert proc.poll() is None, "the run ended before it was interrupted"
                assert time.monotonic() < deadline
                time.sleep(0.005)
        finally:
            _kill_tree(proc)
    return log.read_text()


def _final_files(results: Path) -> dict[str, str]:
    """sha256 of every output file, logs, benchmarks and hidden files left out."""
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file()
        and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
        and not p.name.startswith(".")
    }


def _assert_no_partial_file(results: Path) -> None:
    for name in _final_files(results):
        path = results / name
        if path.suffix == ".parquet":
            pd.read_parquet(path)  # raises on a truncated file
        elif path.suffix == ".npy":
            a = np.load(path)
            assert a.ndim == 2 and np.isfinite(a).all(), name
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".png":
            with Image.open(path) as im:
                im.load()
        elif path.suffix == ".pdf":
            assert path.read_bytes().rstrip().endswith(b"%%EOF"), name
        else:
            raise AssertionError(f"no completeness check for {name}")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("src") / "project"
    make_imagefolder(root / "data", per_class=20, size=24)
    save_good_checkpoint(root)
    return root


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
    workdir = _prepare(tmp_path_factory.mktemp("ref") / "run", source)
    run_snakemake(workdir, *TARGETS)
    return _final_files(workdir / "results")


def test_kill_during_extraction_then_during_reduction_then_rerun(
    source, reference, tmp_path
):
    workdir = _prepare(tmp_path / "run", source)
    results = workdir / "results"
    features = results / "tiny/ck/features"
    maps = results / "tiny/ck/embeddings/fc1"

    def mid_extraction():
        return features.is_dir() and any(features.glob(".*.npy.tmp*"))

    def mid_reduction():  # a t-SNE job has written its first map, not its last
        return (maps / "tsne-2d-p5-s0.parquet").exists()

    out = _kill_when(workdir, mid_extraction)
    assert not (results / "tiny/ck/predictions.parquet").exists()
    _assert_no_partial_file(results)
    assert list((workdir / ".snakemake/locks").glob("*.lock"))  # left by the kill

    out = _kill_when(workdir, mid_reduction)  # the README's command, killed again
    assert "Removed the stale lock" in out
    assert (results / "tiny/ck/predictions.parquet").exists()
    assert not (maps / "tsne-2d-p5-s4.parquet").exists()
    _assert_no_partial_file(results)

    proc = run_snakemake(workdir, *TARGETS)  # and once more: it completes
    assert "Removed the stale lock" in proc.stdout + proc.stderr
    assert _final_files(results) == reference
    assert not list(results.rglob(".*tmp*"))


def test_a_nolock_run_leaves_the_lock_owner_alone(source, tmp_path):
    """A --nolock run beside a locking run must not take over the locks' owner record:
    once it ends, the next run would remove the live run's locks as stale."""
    workdir = _prepare(tmp_path / "run", source)
    locks = workdir / ".snakemake/locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("held by a live run\n")
    owner = workdir / ".snakemake" / OWNER_FILE
    record_owner(workdir / ".snakemake")  # this test process plays the live run
    recorded = owner.read_bytes()

    run_snakemake(workdir, "--nolock", "results/manifest.parquet")
    assert (workdir / "results/manifest.parquet").exists()
    assert owner.read_bytes() == recorded
    proc = run_snakemake(workdir, "--nolock", "-n")  # parsing clears dead owners' locks
    assert "Removed the stale lock" not in proc.stdout + proc.stderr
    assert (locks / "0.input.lock").exists()
