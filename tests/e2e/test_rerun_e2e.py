"""Same config, same versions, same threads: a run in a fresh folder writes the same bytes."""

import json

import pytest

from tests.conftest import run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e


def test_a_fresh_rerun_writes_byte_identical_outputs(tiny_run, tmp_path):
    second = write_tiny_config(tmp_path / "again")
    run_snakemake(second)
    first = json.loads((tiny_run / "provenance.json").read_text())
    again = json.loads((second / "results" / "provenance.json").read_text())
    assert again["checkpoints"] == first["checkpoints"]
    assert again["manifest"]["sha256"] == first["manifest"]["sha256"]
    assert set(again["outputs"]) == set(first["outputs"])
    differ = [p for p in first["outputs"] if first["outputs"][p] != again["outputs"][p]]
    assert differ == [], f"outputs whose bytes differ between two runs: {differ}"
    kinds = {p.rsplit(".", 1)[-1] for p in first["outputs"]}
    assert {"parquet", "npy"} <= kinds
    assert (tiny_run / "provenance.json").read_bytes() == (
        second / "results" / "provenance.json"
    ).read_bytes()
