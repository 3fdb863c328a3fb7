"""Model inputs and layers for the explanations.

Images are decoded and transformed exactly as the forward pass does
(`data.load_image` + `torchutil.make_transform`); the layers to explain are the configured
ones whose activation is a spatial map [N, C, H, W].
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cnnatlas.data import load_image
from cnnatlas.errors import LayerError
from cnnatlas.torchutil import make_transform, tap_layers, transform_spec

__all__ = ["load_inputs", "activation_shapes", "spatial_layers"]

log = logging.getLogger(__name__)


def load_inputs(paths: Sequence[str], transform: Mapping[str, Any]) -> torch.Tensor:
    """The model inputs [N, C, H, W] of image files, with the model's eval transform."""
    tf = make_transform(transform)
    return torch.stack([tf(load_image(p, tf.spec.channels)) for p in paths])


def activation_shapes(
    model: nn.Module, layers: Sequence[str], transform: Mapping[str, Any]
) -> dict[str, tuple[int, ...]]:
    """The activation shape (without the batch axis) of every layer for one input."""
    spec = transform_spec(transform)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, spec.channels, spec.crop, spec.crop, device=device)
    with tap_layers(model.eval(), list(layers)) as tapped, torch.inference_mode():
        out = tapped(x)
    return {layer: tuple(out[layer].shape[1:]) for layer in layers}


def spatial_layers(
    model: nn.Module,
    transform: Mapping[str, Any],
    configured: Sequence[str],
    requested: Sequence[str] | None = None,
    key: str = "explain.layers",
) -> list[str]:
    """The layers to explain: `requested`, or the `configured` ones with [C, H, W] activations.

    A requested layer whose activation is not a spatial map raises LayerError.
    """
    names = list(requested) if requested else list(configured)
    shapes = activation_shapes(model, names, transform)
    spatial = [n for n in names if len(shapes[n]) == 3]
    if requested and len(spatial) < len(names):
        flat = {n: shapes[n] for n in names if n not in spatial}
        raise LayerError(
            f"{key}: {flat} are not spatial [C, H, W] maps; list convolutional layers only"
        )
    if not spatial:
        raise LayerError(
            f"{key}: none of the layers {names} has a spatial [C, H, W] activation; "
            "list convolutional layers for this model"
        )
    skipped = [n for n in names if n not in spatial]
    if skipped:
        log.info("layers without spatial maps left out: %s", skipped)
    return spatial
