"""The torch toolbox every stage shares: the device, layer tapping and the eval transform.

- `resolve_device` turns the config's `extract.device` into a torch.device.
- `tap_layers` returns, from one call of the model, the activations of named layers and
  the logits. The model is traced by torch.fx once per process (in eval mode) and the
  trace is cached, so checking the layers, listing them and tapping them do not trace
  again. A model that FX cannot trace is tapped with forward hooks on modules.
- `make_transform` builds the eval transform from a model's `transform` spec of the
  config (defaults from the schema). Decoding and resizing give uint8 crops; scaling to
  [0, 1] and normalising are a separate step (`normalize`) that runs on whole batches,
  wherever the batch is.
"""

import inspect
import logging
import math
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch
import torchvision
from PIL import Image
from torch import fx, nn
from torch.utils.data import Dataset
from torchvision.models.feature_extraction import NodePathTracer
from torchvision.transforms.v2 import functional as TF

from cnnatlas.data import load_image
from cnnatlas.errors import CnnatlasError, LayerError
from cnnatlas.schema import defaults

__all__ = [
    "LOGITS",
    "resolve_device",
    "node_names",
    "is_layer",
    "check_modules",
    "tap_layers",
    "TransformSpec",
    "transform_spec",
    "ImageTransform",
    "make_transform",
    "ImageDataset",
]

log = logging.getLogger(__name__)

LOGITS = "__logits__"


def resolve_device(device: str) -> torch.device:
    """`extract.device` as a torch.device: 'auto' picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CnnatlasError(
            f"extract.device is {device!r} but CUDA is not available; use 'auto' or 'cpu'"
        )
    return torch.device(device)


@dataclass(frozen=True)
class _Trace:
    graph: fx.Graph | None
    qualnames: dict[fx.Node, str]
    error: Exception | None


# model -> its eval-mode trace; weak, so a model's trace goes when the model does
_TRACES: "weakref.WeakKeyDictionary[nn.Module, _Trace]" = weakref.WeakKeyDictionary()


def _tracer() -> NodePathTracer:
    # torchvision's feature_extraction defaults: torchvision.ops modules are leaves and
    # math / torchvision.ops functions are wrapped, so node names match its own.
    leaves = [
        obj
        for _, obj in inspect.getmembers(torchvision.ops)
        if inspect.isclass(obj) and issubclass(obj, nn.Module)
    ]
    return NodePathTracer(autowrap_modules=(math, torchvision.ops), leaf_modules=leaves)


def _trace(model: nn.Module) -> _Trace:
    cached = _TRACES.get(model)
    if cached is not None:
        return cached
    training = model.training
    try:
        tracer = _tracer()
        graph = tracer.trace(model.eval())
        trace = _Trace(graph, dict(tracer.node_to_qualname), None)
    except Exception as err:  # noqa: BLE001 - any tracing failure means: use hooks
        trace = _Trace(None, {}, err)
    finally:
        model.train(training)
    _TRACES[model] = trace
    return trace


def node_names(model: nn.Module) -> list[str]:
    """The FX node names of `model` in eval mode, in graph order (raises if FX cannot trace it)."""
    trace = _trace(model)
    if trace.error is not None:
        raise trace.error
    return list(trace.qualnames.values())


def is_layer(name: str, nodes: Sequence[str]) -> bool:
    """A node name, or a module prefix of node names (`layer3` means its last node), as torchvision accepts."""
    return name in nodes or any(n.startswith(name + ".") for n in nodes)


@contextmanager
def tap_layers(
    model: nn.Module, layers: Sequence[str], logits: bool = True
) -> Iterator[nn.Module]:
    """A module returning {layer: activation, LOGITS: output} from one call.

    Any FX graph node can be tapped (a module name means its last node). With
    `logits=False` the graph stops at the last tapped layer (no LOGITS), so a layer
    early in the network costs only the part of the forward pass before it. A model
    that FX cannot trace falls back to forward hooks on modules of those names (always
    the whole forward pass); the hooks are removed when the block ends.
    """
    trace = _trace(model)
    if trace.error is not None:
        log.warning(
            "FX cannot trace %s (%s); using forward hooks on modules",
            type(model).__name__,
            trace.error,
        )
        with _hooked(model, layers) as tapped:
            yield tapped
        return
    nodes = list(trace.qualnames.values())
    missing = [layer for layer in layers if not is_layer(layer, nodes)]
    if missing:
        raise LayerError(
            f"layers {missing} are not nodes of the model; `cnnatlas layers` lists them"
        )
    return_nodes = {layer: layer for layer in layers}
    if logits:
        return_nodes.setdefault(nodes[-1], LOGITS)
    extractor = _extractor(model, trace, return_nodes)
    last = return_nodes.get(nodes[-1])

    class _Tapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.extractor = extractor

        def forward(self, x):
            out = dict(self.extractor(x))
            if last is not None:
                out[LOGITS] = out[last]
            return out

    yield _Tapped()


def _extractor(
    model: nn.Module, trace: _Trace, return_nodes: Mapping[str, str]
) -> fx.GraphModule:
    """A GraphModule returning {name: node} for `return_nodes` {query: name}, from a
    copy of the cached graph, as torchvision's create_feature_extractor builds it."""
    graph = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    graph.graph_copy(trace.graph, copies)  # every node but the output
    wanted = dict(return_nodes)
    outputs = {}
    for old in reversed(list(trace.graph.nodes)):
        qualname = trace.qualnames.get(old)
        if qualname is None:
            continue
        for query in wanted:
            if ".".join(qualname.split(".")[: query.count(".") + 1]) == query:
                outputs[wanted.pop(query)] = copies[old]
                break
    graph.output(dict(reversed(list(outputs.items()))))
    module = fx.GraphModule(model, graph, type(model).__name__)
    module.graph.eliminate_dead_code()  # drops what no tapped layer needs
    module.recompile()
    return module


def check_modules(
    model: nn.Module, layers: Sequence[str], key: str = "layers"
) -> list[str]:
    """The module names of a model FX cannot trace; LayerError (naming `key`) if a layer is not one."""
    modules = [n for n, _ in model.named_modules() if n]
    missing = [layer for layer in layers if layer not in modules]
    if missing:
        leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
        raise LayerError(
            f"{key}: torch.fx cannot trace {type(model).__name__}, "
            f"so layers must be module names (tapped with forward hooks); {missing} are not. "
            f"Leaf modules: {leaves[:30]}"
        )
    return modules


@contextmanager
def _hooked(model: nn.Module, layers: Sequence[str]) -> Iterator[nn.Module]:
    check_modules(model, layers)
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: store.__setitem__(name, out)
        )
        for name in layers
    ]

    class _Hooked(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            store.clear()
            out = self.model(x)
            return {**store, LOGITS: out}

    try:
        yield _Hooked()
    finally:
        for h in handles:
            h.remove()


@dataclass(frozen=True)
class TransformSpec:
    """A model's `transform` of the config: resize the short side, centre-crop, normalise."""

    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int


def transform_spec(spec: "Mapping[str, Any] | TransformSpec") -> TransformSpec:
    """The config's transform mapping, with the schema's defaults, as a TransformSpec."""
    if isinstance(spec, TransformSpec):
        return spec
    known = {f.name for f in fields(TransformSpec)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise CnnatlasError(
            f"transform keys {unknown} are not known; use {sorted(known)}"
        )
    full = {**defaults("models.*.transform"), **spec}
    full["mean"], full["std"] = tuple(full["mean"]), tuple(full["std"])
    return TransformSpec(**full)


class ImageTransform:
    """The eval transform of one TransformSpec, in two steps.

    `crop(image)`: a decoded PIL image to its uint8 crop [C, crop, crop] (resize with
    antialiasing, then centre crop); `resize_crop` does the same for a uint8 tensor on
    any device. `normalize(batch)`: uint8 crops [N, C, H, W] to normalised float32.
    Calling the transform on an image does both, for one image.
    """

    def __init__(self, spec: TransformSpec):
        self.spec = spec
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [..., C, H, W] resized (short side) and centre-cropped, still uint8."""
        x = TF.resize(x, [self.spec.resize], antialias=True)
        return TF.center_crop(x, [self.spec.crop])

    def crop(self, image: Image.Image) -> torch.Tensor:
        """A decoded image (mode RGB or L) to its uint8 crop [C, crop, crop]."""
        return self.resize_crop(TF.pil_to_tensor(image))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 crops [N, C, H, W] to float32 in [0, 1], then (x - mean) / std.

        The arithmetic of torchvision's ToDtype(scale=True) and Normalize, with mean and
        std made once per device (torchvision copies them to the device on every call,
        which on CUDA waits for the device). The memory format of `x` is kept.
        """
        if x.device not in self._stats:
            self._stats[x.device] = tuple(
                torch.tensor(v, dtype=torch.float32, device=x.device).view(-1, 1, 1)
                for v in (self.spec.mean, self.spec.std)
            )
        mean, std = self._stats[x.device]
        return x.to(torch.float32).mul_(1.0 / 255).sub_(mean).div_(std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.crop(image)[None])[0]


def make_transform(spec: "Mapping[str, Any] | TransformSpec") -> ImageTransform:
    """The eval transform of a model's `transform` config (see ImageTransform)."""
    return ImageTransform(transform_spec(spec))


class ImageDataset(Dataset):
    """The manifest's images as (tensor, image_id) pairs, in image_id order.

    `transform` is an `ImageTransform`; it knows the channels to decode to.
    """

    def __init__(self, paths: Sequence[str], transform: ImageTransform):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        channels = self.transform.spec.channels
        return self.transform(load_image(self.paths[i], channels)), i
