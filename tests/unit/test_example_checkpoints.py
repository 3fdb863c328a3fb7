"""examples/save_checkpoint.py writes what cnnatlas loads (the docs include the file)."""

import importlib.util

import torch
from cnnatlas.models import load_model

from tests.conftest import REPO


def load_example():
    spec = importlib.util.spec_from_file_location(
        "save_checkpoint", REPO / "examples/save_checkpoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_training_loop_checkpoint_loads_with_weights_only(tmp_path):
    example = load_example()
    spec = {"arch": "resnet18", "num_classes": 3}
    torch.manual_seed(0)
    model = load_model(spec, None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    example.save_training_checkpoint(model, optimizer, 7, tmp_path / "epoch7.pt")
    loaded = load_model(spec, tmp_path / "epoch7.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
