"""Checkpoints that would run code, and models torch.fx cannot trace."""

import numpy as np
import pandas as pd
import pytest
import torch
from cnnatlas.data import build_manifest
from cnnatlas.errors import CheckpointError, LayerError
from cnnatlas.extract import extract
from cnnatlas.models import check_layers, load_checkpoint, load_model

SPEC = {"arch": "cnnatlas.demo:DigitNet", "num_classes": 3, "kwargs": {"width": 4}}


class _Payload:
    """Unpickling this calls open(marker, "w"): proof that code ran if the file appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_in_a_checkpoint_never_runs_by_default(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(SPEC, path)
    assert not marker.exists()
    msg = str(err.value)
    assert str(path) in msg and "trust_checkpoint: true" in msg
    # the payload is live: the opt-in does run it (and then the file is no state_dict)
    with pytest.raises(CheckpointError, match="neither a state_dict"):
        load_model({**SPEC, "trust_checkpoint": True}, path)
    assert marker.exists()


def test_a_plain_pickle_is_refused_too(tmp_path):
    import pickle

    marker, path = tmp_path / "ran", tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="trust_checkpoint"):
        load_model(SPEC, path)
    assert not marker.exists()


def test_another_architectures_checkpoint_lists_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3)).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_model(SPEC, path)
    msg = str(err.value)
    assert str(path) in msg and "missing features.0.0.weight" in msg
    assert "25 missing, 2 unexpected" in msg and "unexpected 0.weight" in msg
    assert "arch and num_classes" in msg


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(torch.nn.Linear(1, 1), tmp_path)


class Untraceable(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8))
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        h = self.conv(x).relu()
        if h.sum() > 0:
            h = h * 2
        return self.fc(h.mean((2, 3)))


def test_untraceable_model_is_checked_by_module_names():
    model = Untraceable().eval()
    assert "conv" in check_layers(model, ["conv", "fc"], "odd")
    with pytest.raises(LayerError) as err:
        check_layers(model, ["conv.relu"], "odd")
    msg = str(err.value)
    assert msg.startswith("models.odd.layers: torch.fx cannot trace Untraceable")
    assert "['conv.relu'] are not" in msg and "'head.1'" in msg


def test_untraceable_model_extracts_through_hooks(imagefolder, tmp_path):
    torch.manual_seed(0)
    model = Untraceable().eval()
    manifest = tmp_path / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    tf = {"resize": 16, "crop": 16, "mean": [0.5] * 3, "std": [0.25] * 3}
    extract(
        manifest,
        model,
        {"conv": "avg", "fc": "avg"},
        tmp_path / "p.parquet",
        tmp_path / "f",
        tf,
        batch_size=7,
    )
    conv, fc = np.load(tmp_path / "f" / "conv.npy"), np.load(tmp_path / "f" / "fc.npy")
    assert conv.shape == (30, 4) and fc.shape == (30, 3)
    p = pd.read_parquet(tmp_path / "p.parquet")
    np.testing.assert_allclose(
        np.stack(p["probs"]),
        torch.softmax(torch.from_numpy(fc), 1).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
