import hashlib

import numpy as np
import pytest
import torch
import torchvision
from cnnatlas.data import build_manifest
from cnnatlas.errors import CnnatlasError
from cnnatlas.extract import extract, extract_shard, gather_shards, shard_rows

TF = {"resize": 32, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
LAYERS = {"layer1.0.relu_1": "avg", "layer3": "max", "fc": "avg"}


@pytest.mark.parametrize(
    ("n", "batch", "shards"),
    [(30, 8, 1), (30, 8, 3), (30, 8, 4), (1000, 64, 7), (64, 64, 1), (65, 64, 2)],
)
def test_shards_are_contiguous_runs_of_whole_batches(n, batch, shards):
    rows = shard_rows(n, batch, shards)
    assert len(rows) == shards
    assert rows[0][0] == 0 and rows[-1][1] == n
    for (_, stop), (start, _) in zip(rows, rows[1:], strict=False):
        assert stop == start
    for start, stop in rows:
        assert stop > start and start % batch == 0
        assert (stop - start) % batch == 0 or stop == n
    sizes = [stop - start for start, stop in rows[:-1]]
    assert max(sizes, default=0) - min(sizes, default=0) <= batch


def test_more_shards_than_batches_is_an_error_that_says_the_limit():
    with pytest.raises(CnnatlasError, match="at most 4 shards"):
        shard_rows(30, 8, 5)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_gathered_shards_are_the_bytes_of_one_pass(imagefolder, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = tmp_path / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    one = tmp_path / "one"
    extract(manifest, model, LAYERS, one / "p.parquet", one / "f", TF, batch_size=7)
    dirs = [tmp_path / f"shard{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        extract_shard(manifest, model, LAYERS, d, TF, shard=i, shards=3, batch_size=7)
    assert [len(np.load(d / "logits.npy")) for d in dirs] == [7, 14, 9]
    many = tmp_path / "many"
    gather_shards(manifest, dirs, list(LAYERS), many / "p.parquet", many / "f", 5)
    assert _sha(many / "p.parquet") == _sha(one / "p.parquet")
    for layer in LAYERS:
        assert _sha(many / "f" / f"{layer}.npy") == _sha(one / "f" / f"{layer}.npy")
    assert sorted(p.name for p in (many / "f").iterdir()) == sorted(
        f"{layer}.npy" for layer in LAYERS
    )


def test_gather_refuses_shards_of_another_manifest(imagefolder, tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = tmp_path / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    dirs = [tmp_path / f"shard{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        extract_shard(manifest, model, LAYERS, d, TF, shard=i, shards=2, batch_size=8)
    with pytest.raises(CnnatlasError, match="hold 16 images but .* lists 30"):
        gather_shards(
            manifest, dirs[:1], list(LAYERS), tmp_path / "p", tmp_path / "f", 5
        )
    assert not (tmp_path / "p").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_that_torch_cannot_see_is_reported(
    imagefolder, tmp_path, caplog, monkeypatch
):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = tmp_path / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # what slurmd sets for a --gpus job
    extract_shard(manifest, model, {"fc": "avg"}, tmp_path / "s", TF, shard=0, shards=1)
    assert "given GPU(s) CUDA_VISIBLE_DEVICES=1 but torch sees no CUDA" in caplog.text
    assert np.load(tmp_path / "s" / "fc.npy").shape == (30, 3)
    caplog.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    extract_shard(manifest, model, {"fc": "avg"}, tmp_path / "t", TF, shard=0, shards=1)
    assert "CUDA_VISIBLE_DEVICES" not in caplog.text
