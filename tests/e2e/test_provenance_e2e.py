import hashlib
import json

import pytest

pytestmark = pytest.mark.e2e


def test_provenance_hashes_every_output_of_the_run(tiny_run):
    rec = json.loads((tiny_run / "provenance.json").read_text())
    outputs = rec["outputs"]
    for ckpt in ("early", "late"):
        assert f"tiny/{ckpt}/predictions.parquet" in outputs
        assert f"tiny/{ckpt}/features/fc1.npy" in outputs
    for rel, digest in outputs.items():
        assert hashlib.sha256((tiny_run / rel).read_bytes()).hexdigest() == digest
    assert set(rec["checkpoints"]) == {"tiny/early", "tiny/late"}
    assert rec["config"]["models"]["tiny"]["layers"] == {
        "features.1.3": "avg",
        "fc1": "avg",
    }
    assert rec["threads"]["rules"]["extract_features"] >= 1
    assert rec["versions"]["snakemake"].startswith("9.")
