"""Sharded extraction through the real snakemake gives the bytes of the unsharded run."""

import hashlib
from pathlib import Path

import pytest

from tests.conftest import run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e

CKPTS = ("late",)  # one checkpoint is enough to compare and keeps the test short
LAYERS = ("features.1.3", "fc1")


def extract_outputs() -> list[Path]:
    """The extraction outputs of the tiny config, relative to its results folder."""
    return [
        Path("tiny", ckpt, name)
        for ckpt in CKPTS
        for name in [
            "predictions.parquet",
            *(f"features/{layer}.npy" for layer in LAYERS),
        ]
    ]


def digests(results: Path) -> dict[Path, str]:
    return {
        rel: hashlib.sha256((results / rel).read_bytes()).hexdigest()
        for rel in extract_outputs()
    }


def write_sharded_config(workdir: Path, shards: int) -> Path:
    """The tiny config with extract.shards set."""
    write_tiny_config(workdir)
    config = workdir / "config.yaml"
    text = config.read_text()
    assert "\nextract:\n" in text
    config.write_text(text.replace("\nextract:\n", f"\nextract:\n  shards: {shards}\n"))
    return workdir


def extract_targets() -> list[str]:
    """The extraction targets of the tiny config, relative to its workdir."""
    return [
        f"results/tiny/{ckpt}/{name}"
        for ckpt in CKPTS
        for name in ("predictions.parquet", "features")
    ]


def test_sharded_extraction_writes_the_bytes_of_one_job(tiny_run, tmp_path):
    workdir = write_sharded_config(tmp_path, shards=2)
    run_snakemake(workdir, *extract_targets())
    results = workdir / "results"
    assert digests(results) == digests(tiny_run)
    for ckpt in CKPTS:
        logs = sorted((results / "logs" / "extract_shard" / "tiny" / ckpt).iterdir())
        assert [p.name for p in logs] == [f"{i}-of-2.log" for i in range(2)]
        # 30 images in batches of 8 make 4 batches: shards of 2 and 2 (the last partial)
        text = [p.read_text() for p in logs]
        for i, rows in enumerate(("0..15", "16..29")):
            assert f"shard {i} of 2: images {rows}" in text[i]
        # the shards are temporary: gone once gathered
        assert not (results / "tiny" / ckpt / "shards").exists() or not any(
            (results / "tiny" / ckpt / "shards").iterdir()
        )
