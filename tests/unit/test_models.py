import collections
import pickle

import pytest
import torch
import torchvision
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CheckpointError, LayerError, ModelError
from cnnatlas.models import (
    build_model,
    check_layers,
    layer_names,
    load_checkpoint,
    load_model,
)


def _reference():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=3)


@pytest.mark.parametrize(
    "form", ["state_dict", "nested", "model", "model_state_dict", "module_prefix"]
)
def test_every_checkpoint_form_loads_the_same_weights(tmp_path, form):
    ref = _reference()
    sd = ref.state_dict()
    obj = {
        "state_dict": sd,
        "nested": {"state_dict": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
        "model": {"model": sd},
        "model_state_dict": {"model_state_dict": sd, "step": 7},
        "module_prefix": collections.OrderedDict(
            (f"module.{k}", v) for k, v in sd.items()
        ),
    }[form]
    path = tmp_path / "ck.pt"
    torch.save(obj, path)
    model = load_model({"arch": "resnet18", "num_classes": 3}, path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert not model.training


def test_custom_architecture_by_module_path():
    model = build_model("cnnatlas.demo:DigitNet", 4, {"width": 4})
    assert isinstance(model, DigitNet) and model.fc2.out_features == 4


def test_unknown_arch_suggests_close_names():
    with pytest.raises(ModelError, match="resnet18"):
        build_model("resnet81", 3)


def test_mismatched_checkpoint_lists_the_first_mismatches(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(
        torchvision.models.resnet18(weights=None, num_classes=5).state_dict(), path
    )
    with pytest.raises(
        CheckpointError, match=r"fc\.weight: checkpoint \(5, 512\) vs model \(3, 512\)"
    ):
        load_model({"arch": "resnet18", "num_classes": 3}, path)
    torch.save(DigitNet(3).state_dict(), path)
    with pytest.raises(CheckpointError, match="missing conv1.weight") as err:
        load_model({"arch": "resnet18", "num_classes": 3}, path)
    assert "mismatches" in str(err.value)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused_and_names_the_opt_in(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": _Exploit()}, fh)
    with pytest.raises(CheckpointError, match="trust_checkpoint: true"):
        load_checkpoint(_reference(), path)
    assert "pwned" not in capsys.readouterr().out


def test_missing_and_truncated_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(_reference(), tmp_path / "nope.pt")
    path = tmp_path / "cut.pt"
    torch.save(_reference().state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(_reference(), path)


def test_layer_typo_names_close_matches():
    model = _reference()
    assert "layer4.1.relu_1" in layer_names(model)
    with pytest.raises(LayerError, match=r"layer4\.1\.relu_1"):
        check_layers(model, ["layer4.1.relu1"], "resnet")
