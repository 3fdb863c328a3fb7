import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cnnatlas.cli import main
from cnnatlas.models import build_model, layer_names

SCRIPTS = str(Path(__file__).resolve().parents[2] / "workflow" / "scripts")


def test_layers_prints_every_fx_node_of_a_custom_arch(capsys):
    assert main(["layers", "cnnatlas.demo:DigitNet", "--num-classes", "4"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == layer_names(build_model("cnnatlas.demo:DigitNet", 4))
    assert {"features.0.3", "fc1", "relu", "fc2"} <= set(printed)


def test_layers_of_a_torchvision_arch_as_a_console_command():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnatlas.cli", "layers", "resnet18"],
        capture_output=True,
        text=True,
        check=True,
    )
    nodes = proc.stdout.split()
    assert nodes[0] == "x" and "layer4.1.relu_1" in nodes and nodes[-1] == "fc"


def test_unknown_arch_exits_2_with_close_names(capsys):
    assert main(["layers", "resnet19"]) == 2
    assert "resnet18" in capsys.readouterr().err


def test_layers_of_a_timm_arch(capsys):
    timm = pytest.importorskip("timm")
    assert main(["layers", "timm:test_resnet", "--num-classes", "3"]) == 0
    printed = capsys.readouterr().out.split()
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    assert printed == layer_names(model)
    assert printed[-1] == "fc"


class Untraceable(torch.nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        h = self.conv(x)
        if h.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            h = h * 2
        return self.fc(h.mean((2, 3)))


def test_layers_of_an_untraceable_model_lists_module_names(capsys):
    assert main(["layers", f"{__name__}:Untraceable"]) == 0
    out = capsys.readouterr()
    assert out.out.split() == ["conv", "fc"]
    assert "torch.fx cannot trace" in out.err and "module names" in out.err
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1


def test_layers_of_a_module_in_the_current_folder(tmp_path):
    (tmp_path / "mynets.py").write_text(
        "from torch import nn\n\n\ndef net(num_classes):\n"
        "    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(num_classes))\n"
    )
    code = f"import sys; sys.path.insert(0, {SCRIPTS!r}); from cnnatlas.cli import main; sys.exit(main())"
    # -P: the current folder is not put on sys.path, as for the `cnnatlas` console script
    proc = subprocess.run(
        [sys.executable, "-P", "-c", code, "layers", "mynets:net", "--num-classes", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["input", "0", "1", "2"]
