import numpy as np
import pytest
import torch
import torchvision
from cnnatlas import torchutil
from cnnatlas.data import load_image
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CnnatlasError
from cnnatlas.models import check_layers, layer_names
from cnnatlas.schema import default, defaults
from cnnatlas.torchutil import (
    LOGITS,
    make_transform,
    resolve_device,
    tap_layers,
    transform_spec,
)
from torchvision.models.feature_extraction import (
    create_feature_extractor,
    get_graph_node_names,
)
from torchvision.transforms import v2

LAYERS = ["layer1.0.relu_1", "layer3", "avgpool", "fc"]


def test_schema_defaults_are_read_from_the_schema():
    assert default("extract.device") == "auto"
    assert defaults("models.*.transform") == {"channels": 3}
    with pytest.raises(KeyError, match="no default"):
        default("models")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(CnnatlasError, match="extract.device"):
            resolve_device("cuda:0")


def test_one_trace_per_model_for_checking_listing_and_tapping(monkeypatch):
    traces = []
    real = torchutil._tracer

    def counting():
        traces.append(1)
        return real()

    monkeypatch.setattr(torchutil, "_tracer", counting)
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    names = check_layers(model, LAYERS)
    assert names == layer_names(model) == get_graph_node_names(model)[1]
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):
        with tap_layers(model, LAYERS) as tapped, torch.inference_mode():
            tapped(x)
    assert len(traces) == 1
    assert model.training is False


def test_tapped_activations_are_torchvisions_bytes():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    reference = create_feature_extractor(model, {n: n for n in LAYERS})
    x = torch.randn(3, 3, 40, 40)
    with tap_layers(model, LAYERS) as tapped, torch.inference_mode():
        out = tapped(x)
        ref = reference(x)
    for name in LAYERS:
        assert torch.equal(out[name], ref[name]), name
    assert torch.equal(out[LOGITS], ref["fc"])
    assert out["layer3"].shape == (3, 256, 3, 3)  # a module name: its last node


def test_a_model_in_train_mode_is_traced_in_eval_mode_and_left_in_train_mode():
    model = DigitNet(num_classes=3, in_channels=1, width=4).train()
    assert "fc1" in layer_names(model)
    assert model.training


def test_transform_spec_fills_the_schema_default_and_refuses_unknown_keys():
    spec = transform_spec({"resize": 8, "crop": 6, "mean": [0.5], "std": [0.5]})
    assert spec.channels == default("models.*.transform.channels") == 3
    assert spec.mean == (0.5,)
    with pytest.raises(CnnatlasError, match=r"\['size'\]"):
        transform_spec({"resize": 8, "crop": 6, "mean": [0.5], "std": [1], "size": 3})


@pytest.mark.parametrize("channels", [1, 3])
def test_transform_gives_the_bytes_of_the_torchvision_pipeline(imagefolder, channels):
    spec = {
        "resize": 20,
        "crop": 16,
        "mean": [0.4, 0.5, 0.6][:channels],
        "std": [0.2, 0.25, 0.3][:channels],
        "channels": channels,
    }
    reference = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(20, antialias=True),
            v2.CenterCrop(16),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=spec["mean"], std=spec["std"]),
        ]
    )
    tf = make_transform(spec)
    paths = sorted(imagefolder.rglob("*.png"))[:4]
    images = [load_image(p, channels) for p in paths]
    crops = torch.stack([tf.crop(im) for im in images])
    assert crops.dtype == torch.uint8 and crops.shape == (4, channels, 16, 16)
    batch = tf.normalize(crops)
    for i, im in enumerate(images):
        expected = reference(im)
        assert torch.equal(tf(im), expected)
        assert torch.equal(batch[i], expected)
    assert np.isfinite(batch.numpy()).all()
