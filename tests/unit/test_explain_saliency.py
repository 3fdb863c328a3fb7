"""The saliency-method registry and its maps against pytorch-grad-cam (`grad-cam`)."""

import numpy as np
import pytest
import torch
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.saliency import METHODS, SaliencyMethod, method_class
from cnnatlas.saliency_names import check_saliency_methods, saliency_method_names
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REFERENCE = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
}


def test_names_read_from_the_sources_equal_the_registry():
    assert saliency_method_names() == list(METHODS)
    assert set(METHODS) >= set(REFERENCE)
    for name, cls in METHODS.items():
        assert issubclass(cls, SaliencyMethod) and cls.name == name and cls.title


def test_unknown_method_names_the_key_and_the_choices():
    assert check_saliency_methods(["hirescam"], "k") == ["hirescam"]
    with pytest.raises(CnnatlasError, match=r"explain.x: \['gradkam'\].*'layercam'"):
        check_saliency_methods(["gradcam", "gradkam"], "explain.x")
    with pytest.raises(CnnatlasError, match="gradkam"):
        method_class("gradkam")


def _minmax(m: np.ndarray) -> np.ndarray:
    m = m - m.min(axis=(1, 2), keepdims=True)
    return m / (m.max(axis=(1, 2), keepdims=True) + 1e-7)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_maps_equal_pytorch_grad_cam_up_to_scale(name):
    """pytorch-grad-cam min-max scales each map and resizes it with OpenCV (bilinear,
    half-pixel centres, as torch's align_corners=False); bilinear resizing commutes with
    that affine scaling, so the scaled maps must agree."""
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cls = torch.tensor([0, 1, 2, 1])
    with METHODS[name](model, "features.1", batch_size=5) as cam:
        _, maps = cam(x, {"true": cls})
    ours = _minmax(maps["true"].numpy())
    with REFERENCE[name](model=model, target_layers=[model.features[1]]) as ref:
        theirs = ref(x, targets=[ClassifierOutputTarget(int(c)) for c in cls])
    assert ours.shape == theirs.shape == (4, 32, 32)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)
