"""The saliency-method interface: one forward hook, batched maps, a registry by name.

A method is a `SaliencyMethod` subclass in its own module of this package, decorated
with `@register`; it says how a map is made from one pass through the model
(`LayerPass`: the input, the layer's activation, the gradient of the target score with
respect to it, the target classes). Everything else - the hook, the gradients, the
rectification and upsampling, batching and the device - lives here, once.

`with GradCAMMethod(model, layer) as cam:` registers one forward hook on `layer`, which
keeps the layer's output of the current batch only; gradients are taken with
`torch.autograd.grad` (no backward hook), every result is detached, and the hook is
removed when the block ends, so looping over a dataset neither leaks hooks nor keeps
graphs alive. `open_methods` enters several methods at once and `saliency_maps` computes
all of them from one forward pass and one gradient per target.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cnnatlas.errors import CnnatlasError, LayerError

__all__ = [
    "METHODS",
    "LayerPass",
    "SaliencyMethod",
    "register",
    "method_class",
    "open_methods",
    "saliency_maps",
]

METHODS: dict[str, type["SaliencyMethod"]] = {}
# Inputs per forward pass of a method whose caller names no batch size (the workflow
# always names one: explain.gradcam.batch_size, explain.trust.batch_size).
BATCH_SIZE = 64


@dataclass(frozen=True)
class LayerPass:
    """One batch seen by the model: what a method may use to make its maps.

    x [N, C, H, W] the input; act [N, K, h, w] the layer's activation (detached, float);
    grad the gradient of the target classes' logits with respect to `act` (None when no
    method of the pass needs it); cls [N] the target classes; batch_size bounds any
    extra forward passes a method makes.
    """

    model: nn.Module
    x: torch.Tensor
    act: torch.Tensor
    grad: torch.Tensor | None
    cls: torch.Tensor
    batch_size: int


class SaliencyMethod(ABC):
    """A saliency map of `layer` (a module name) of `model`; use as a context manager.

    `method(x, targets)` returns (logits [N, K], {target: map [N, H, W]}): each map is
    rectified, at the input's size and not normalised. `targets` maps a name to class
    indices [N], or None for the predicted class. Subclasses set `name` (the config's
    name), `title` (for figures), `gradient` (whether `compute` reads `LayerPass.grad`)
    and implement `compute`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    gradient: ClassVar[bool] = True
    # extra forward passes per channel of the layer and image (for progress and cost)
    passes_per_channel: ClassVar[int] = 0

    def __init__(
        self, model: nn.Module, layer: str, batch_size: int = BATCH_SIZE
    ) -> None:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise LayerError(
                f"explain.saliency.target_layer: {layer!r} is not a module of the model; "
                f"modules with children or leaves, e.g. {[n for n in modules if n][-8:]}"
            )
        self.model, self.layer, self.batch_size = model, layer, batch_size
        self._module = modules[layer]
        self._handle: Any = None
        self._act: torch.Tensor | None = None

    @abstractmethod
    def compute(self, p: LayerPass) -> torch.Tensor:
        """The map [N, h, w] of one pass, at the layer's or the input's resolution."""

    def __enter__(self) -> "SaliencyMethod":
        self._handle = self._module.register_forward_hook(self._keep)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._act = None

    def _keep(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        self._act = output

    def __call__(
        self, x: torch.Tensor, targets: Mapping[str, torch.Tensor | None]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, maps = saliency_maps([self], x, targets)
        return logits, {t: maps[(self.name, t)] for t in targets}


def register(cls: type[SaliencyMethod]) -> type[SaliencyMethod]:
    """Class decorator: make a method available under `cls.name` (config, figures)."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"two saliency methods are named {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def method_class(name: str, key: str = "explain.saliency.methods") -> type:
    """The registered class of a method name; an unknown name raises, naming `key`."""
    if name not in METHODS:
        raise CnnatlasError(
            f"{key}: {name!r} is not a saliency method; choose from {sorted(METHODS)}"
        )
    return METHODS[name]


@contextmanager
def open_methods(
    model: nn.Module,
    layer: str,
    methods: Sequence[str | type[SaliencyMethod]],
    batch_size: int = BATCH_SIZE,
) -> Iterator[list[SaliencyMethod]]:
    """Several methods (names or classes) of one layer, entered; all hooks go at exit."""
    classes = [method_class(m) if isinstance(m, str) else m for m in methods]
    with ExitStack() as stack:
        yield [stack.enter_context(c(model, layer, batch_size)) for c in classes]


def _to_input_size(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    cam = cam.clamp(min=0)
    if tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(
            cam[:, None], size=size, mode="bilinear", align_corners=False
        )[:, 0]
    return cam.clamp(min=0)


def saliency_maps(
    methods: Sequence[SaliencyMethod],
    x: torch.Tensor,
    targets: Mapping[str, torch.Tensor | None],
) -> tuple[torch.Tensor, dict[tuple[str, str], torch.Tensor]]:
    """Maps of entered methods sharing one model and layer, from one forward pass.

    Returns (logits [N, K], {(method name, target): map [N, H, W]}).
    """
    first = methods[0]
    if any(m._handle is None for m in methods):
        raise RuntimeError(f"use {type(first).__name__} inside a `with` block")
    if any(m.model is not first.model or m.layer != first.layer for m in methods):
        raise ValueError("saliency_maps: every method must share one model and layer")
    # A leaf input that requires grad puts the layer on the graph even when every
    # parameter is frozen.
    x = x.detach().requires_grad_(True)
    need_grad = any(m.gradient for m in methods)
    maps = {}
    try:
        with torch.enable_grad():
            logits = first.model(x)
            act = first._act
            for m in methods:
                m._act = None
            if act is None or act.ndim != 4:
                raise LayerError(
                    f"saliency layer {first.layer!r} gave no [N, C, H, W] output"
                )
            names = list(targets)
            for j, name in enumerate(names):
                cls = targets[name]
                cls = logits.argmax(1) if cls is None else cls.to(logits.device)
                grad = None
                if need_grad:
                    score = logits.gather(1, cls.view(-1, 1)).sum()
                    (grad,) = torch.autograd.grad(
                        score, act, retain_graph=j < len(names) - 1
                    )
                    grad = grad.float()
                p = LayerPass(
                    first.model,
                    x.detach(),
                    act.detach().float(),
                    grad,
                    cls,
                    first.batch_size,
                )
                for m in methods:
                    cam = m.compute(p)
                    maps[(m.name, name)] = _to_input_size(cam, x.shape[-2:]).detach()
    finally:
        # the extra forward passes of some methods (Score-CAM) fire the hook again
        for m in methods:
            m._act = None
    return logits.detach(), maps
