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
from cnnatlas.errors import CnnatlasError, LayerError
from cnnatlas.torchutil import make_transform, tap_layers, transform_spec

__all__ = [
    "load_inputs",
    "activation_shapes",
    "spatial_layers",
    "activation_mb",
    "fit_batch",
]

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
    """The layers to explain: `requested`, or the `configured` ones with [C, H, W]
    activations larger than 1 x 1 (a global pooling's output is left out).

    A requested layer whose activation is not a spatial map raises LayerError.
    """
    names = list(requested) if requested else list(configured)
    shapes = activation_shapes(model, names, transform)
    spatial = [n for n in names if len(shapes[n]) == 3]
    if not requested:  # a global pooling's [C, 1, 1] repeats the layer before it
        spatial = [n for n in spatial if shapes[n][1] * shapes[n][2] > 1]
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


# resident memory of a job before its batches: Python, torch and the libraries
PROCESS_MB = 700.0


def activation_mb(model: nn.Module, transform: Mapping[str, Any]) -> float:
    """MB of every leaf module's output for one input at the transform's crop."""
    spec = transform_spec(transform)
    sizes: list[int] = []

    def keep(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel() * out.element_size())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(keep) for m in leaves]
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, spec.channels, spec.crop, spec.crop, device=device)
        with torch.inference_mode():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return sum(sizes) / 2**20


def fit_batch(
    model: nn.Module,
    transform: Mapping[str, Any],
    batch_size: int,
    mem_mb: float | None,
    key: str,
    rule: str,
) -> int:
    """`batch_size`, or the largest batch whose gradient pass fits `mem_mb` (the job's
    memory; None: no bound): a backward pass keeps about 0.8 of every activation of
    each image. Logged when it chunks; a CnnatlasError naming what to change when not
    even one image fits."""
    if not mem_mb:
        return batch_size
    per = 0.8 * activation_mb(model, transform)
    params = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    room = mem_mb - PROCESS_MB - 2 * params
    if room < per:
        crop = transform_spec(transform).crop
        raise CnnatlasError(
            f"{rule}: one image of this model at {crop} px keeps about {per:,.0f} MB of "
            f"activations for its gradient, more than the job's mem_mb ({mem_mb:,.0f} MB) "
            f"leaves; raise it (--set-resources {rule}:mem_mb=...) or lower the "
            "model's transform crop"
        )
    fit = max(1, int(room // per))
    if fit < batch_size:
        log.info(
            "%s: batches of %d images, not %d (%s): each keeps about %.0f MB of "
            "activations for its gradient and the job has mem_mb %.0f",
            rule, fit, batch_size, key, per, mem_mb,
        )  # fmt: skip
        return fit
    return batch_size
