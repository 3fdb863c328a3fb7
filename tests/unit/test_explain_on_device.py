"""The explanations' loops stay on the device: same results as drawing per step."""

import pytest
import torch
from cnnatlas.demo import DigitNet
from cnnatlas.explain import filters
from cnnatlas.torchutil import tap_layers

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TF = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "channels": 3}


def _per_step(model, layer, channels, steps, seed):
    """The loop as it was: each step draws its random numbers on the host."""
    gen = torch.Generator().manual_seed(seed)
    param = filters.FourierImage(len(channels), 3, 32, gen)
    norm = filters._normalizer(TF["mean"], TF["std"], torch.device("cpu"))
    target = torch.as_tensor(channels)
    opt = torch.optim.Adam(param.parameters(), lr=0.05)
    model.eval().requires_grad_(False)
    with tap_layers(model, [layer]) as tapped, filters._redirected_relus(model):
        for _ in range(steps):
            img = filters.random_transform(param(), gen, 0.05, 0.05, 5.0)
            loss = -filters._objective(tapped, norm(img), layer, target).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return param()


def test_drawing_all_steps_at_once_gives_the_same_images():
    torch.manual_seed(0)
    model = DigitNet(num_classes=3, in_channels=3, width=4)
    images, start, reached = filters.maximize(
        model, "features.1.3", [0, 2], TF, 5, 0.05, 3, 0.05, 0.05, 5.0
    )
    assert torch.equal(images, _per_step(model, "features.1.3", [0, 2], 5, 3))
    assert (reached >= start).all() and reached.sum() > start.sum()
