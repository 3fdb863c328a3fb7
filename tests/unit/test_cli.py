import subprocess
import sys

from cnnatlas.cli import main
from cnnatlas.models import build_model, layer_names


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
