import hashlib
import json
from pathlib import Path

import pytest
from cnnatlas.provenance import (
    compare_outputs,
    hash_outputs,
    package_versions,
    provenance,
    run_hash,
    write_provenance,
)


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results"
    (results / "m" / "c" / "features").mkdir(parents=True)
    (results / "m" / "c" / "features" / "a.npy").write_bytes(b"features")
    (results / "m" / "c" / "features" / ".a.npy.tmp1").write_bytes(b"partial")
    (results / "m" / "c" / "predictions.parquet").write_bytes(b"preds")
    (results / "manifest.parquet").write_bytes(b"manifest")
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"weights")
    return results, ckpt


def test_outputs_are_hashed_file_by_file_and_temporaries_left_out(run):
    results, _ = run
    got = hash_outputs(
        [results / "m/c/features", results / "m/c/predictions.parquet"], results
    )
    assert list(got) == ["m/c/features/a.npy", "m/c/predictions.parquet"]
    assert got["m/c/features/a.npy"] == hashlib.sha256(b"features").hexdigest()
    with pytest.raises(FileNotFoundError, match="nope"):
        hash_outputs([results / "nope"], results)


def test_record_names_inputs_versions_and_is_byte_stable(run, tmp_path):
    results, ckpt = run
    config = {"models": {"m": {"checkpoints": {"c": str(ckpt)}}}, "seed": 0}

    def record():
        return provenance(
            config,
            {"m/c": ckpt},
            results / "manifest.parquet",
            [results / "m"],
            results,
            threads={"extract_features": 2},
            cores=2,
        )

    rec = record()
    assert rec["checkpoints"]["m/c"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert rec["manifest"]["sha256"] == hashlib.sha256(b"manifest").hexdigest()
    assert rec["versions"]["torch"] and rec["versions"]["python"].startswith("3.")
    assert rec["threads"] == {"cores": 2, "rules": {"extract_features": 2}}
    assert len(rec["run_hash"]) == 12
    write_provenance(tmp_path / "a.json", rec)
    write_provenance(tmp_path / "b.json", record())
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())["config"] == config


def test_run_hash_changes_with_config_and_checkpoint():
    v = package_versions()
    base = run_hash({"seed": 0}, {"m/c": "aa"}, "mm", v)
    assert base == run_hash({"seed": 0}, {"m/c": "aa"}, "mm", v)
    assert base != run_hash({"seed": 1}, {"m/c": "aa"}, "mm", v)
    assert base != run_hash({"seed": 0}, {"m/c": "ab"}, "mm", v)


def test_compare_outputs_lists_changed_new_and_missing_files(run, tmp_path):
    results, ckpt = run
    outputs = [results / "m/c/features", results / "m/c/predictions.parquet"]
    config = {"models": {}}
    before = provenance(
        config, {"m/c": ckpt}, results / "manifest.parquet", outputs, results, {}
    )
    (results / "m/c/predictions.parquet").write_bytes(b"other preds")
    (results / "m/c/features/b.npy").write_bytes(b"new layer")
    (results / "m/c/features/a.npy").unlink()
    after = provenance(
        config, {"m/c": ckpt}, results / "manifest.parquet", outputs, results, {}
    )
    diff = compare_outputs(before, after)
    assert diff["changed"] == ["m/c/predictions.parquet"]
    assert diff["new"] == ["m/c/features/b.npy"]
    assert diff["missing"] == ["m/c/features/a.npy"]
    assert diff["same"] == ["<checkpoint m/c>", "<manifest>"]
    assert compare_outputs(after, after)["changed"] == []

    import subprocess
    import sys

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_provenance(a, before)
    write_provenance(b, after)
    script = Path(__file__).resolve().parents[2] / "benchmarks/compare_provenance.py"
    same = subprocess.run(
        [sys.executable, script, a, a], capture_output=True, text=True
    )
    assert same.returncode == 0 and json.loads(same.stdout)["n_changed"] == 0
    differ = subprocess.run(
        [sys.executable, script, a, b], capture_output=True, text=True
    )
    assert differ.returncode == 1
    assert json.loads(differ.stdout)["missing"] == ["m/c/features/a.npy"]


def test_an_imported_checkpoint_lists_its_folders_files(run, tmp_path):
    results, _ = run
    files = {"fc.npy": "ab" * 32, "logits.npy": "cd" * 32}
    record = results / "m" / "c" / "imported.json"
    record.write_text(json.dumps({"folder": "/elsewhere/c", "files": files}))
    rec = provenance(
        {}, {"m/c": record}, results / "manifest.parquet", [], results, threads={}
    )
    entry = rec["checkpoints"]["m/c"]
    assert entry["sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()
    assert entry["imported"] == {"folder": "/elsewhere/c", "files": files}
