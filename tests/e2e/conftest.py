"""One real snakemake run of the tiny config per test session; e2e tests read its outputs."""

from pathlib import Path

import pytest

from tests.conftest import make_imagefolder, run_snakemake, save_tiny_checkpoints

HERE = Path(__file__).parent


def write_tiny_config(workdir: Path) -> Path:
    """workdir/config.yaml from tiny_config.yaml, with fresh data and checkpoints beside it."""
    data = make_imagefolder(workdir / "data")
    ckpt = workdir / "ckpt"
    save_tiny_checkpoints(ckpt)
    text = (HERE / "tiny_config.yaml").read_text()
    text = text.replace("DATA", str(data.relative_to(workdir))).replace(
        "CKPT", str(ckpt.relative_to(workdir))
    )
    (workdir / "config.yaml").write_text(text)
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The results folder of a complete run of the tiny config."""
    workdir = write_tiny_config(tmp_path_factory.mktemp("tiny"))
    run_snakemake(workdir)
    return workdir / "results"
