import collections
import pickle
import sys

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
from cnnatlas.project import model_files


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


MYNETS = """
from torch import nn


def tiny(num_classes, width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.Flatten(1), nn.LazyLinear(num_classes))
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding mynets.py, as the working directory, which (as in a
    snakemake job) is not on sys.path."""
    (tmp_path / "mynets.py").write_text(MYNETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))]
    )
    yield tmp_path
    sys.modules.pop("mynets", None)


def test_a_module_beside_the_config_is_imported_from_the_project_folder(project):
    model = build_model("mynets:tiny", 7, {"width": 2})
    assert model[0].out_channels == 2 and model[2].out_features == 7
    assert sys.modules["mynets"].__file__ == str(project / "mynets.py")
    assert model_files({"arch": "mynets:tiny", "class_index": "idx.json"}) == [
        "mynets.py",
        "idx.json",
    ]
    assert model_files({"arch": "cnnatlas.demo:DigitNet"}) == []


def test_missing_module_and_callable_say_where_they_were_looked_for(project):
    with pytest.raises(ModelError) as err:
        build_model("mynetz:tiny", 3)
    msg = str(err.value)
    assert f"no module 'mynetz' in the project folder '{project}'" in msg
    assert "put mynetz.py beside config.yaml" in msg
    with pytest.raises(ModelError, match=r"has no 'tiny2'; it has \[.*'tiny'"):
        build_model("mynets:tiny2", 3)
    (project / "broken.py").write_text("import not_a_package_xyz\n")
    with pytest.raises(ModelError, match="importing 'broken' failed: No module named"):
        build_model("broken:f", 3)


def test_timm_architecture_builds_with_num_classes_and_kwargs():
    timm = pytest.importorskip("timm")
    model = build_model("timm:test_resnet", 4, {"drop_rate": 0.1})
    ref = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    assert type(model) is type(ref) and model.num_classes == 4
    assert model.drop_rate == 0.1
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    nodes = layer_names(model)
    assert nodes[-1] == "fc" and any(n.startswith("layer4.") for n in nodes)


def test_timm_errors_name_close_models():
    pytest.importorskip("timm")
    with pytest.raises(
        ModelError, match=r"timm .* has no model 'resnet10x' \(close: \["
    ):
        build_model("timm:resnet10x", 3)
