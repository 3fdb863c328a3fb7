"""Building a model from the config and loading a checkpoint into it.

A model is named by a torchvision builder (`resnet18`), by `timm:<name>`, or by
`module:callable` for a custom architecture (a module beside config.yaml is found); all
are called with `num_classes`. Checkpoints are read with
`torch.load(weights_only=True)` unless the config opts in to full unpickling.
"""

import difflib
import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from cnnatlas.errors import CheckpointError, LayerError, ModelError
from cnnatlas.project import import_callable
from cnnatlas.torchutil import check_modules, is_layer, node_names

__all__ = [
    "build_model",
    "load_checkpoint",
    "load_model",
    "layer_names",
    "module_names",
    "traced_layer_names",
    "is_layer",
    "check_layers",
]

log = logging.getLogger(__name__)

TIMM = "timm:"
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")


def build_model(
    arch: str, num_classes: int, kwargs: Mapping[str, Any] | None = None
) -> nn.Module:
    """A fresh (randomly initialised) model of `arch` with `num_classes` outputs.

    `arch` is a torchvision builder name, `timm:<name>` (`timm.create_model`, no
    pretrained weights) or `module:callable` (a module of the project folder, e.g.
    mynets.py beside config.yaml, or of an installed package).
    """
    kwargs = dict(kwargs or {})
    if arch.startswith(TIMM):
        return _timm_model(arch[len(TIMM) :], num_classes, kwargs)
    if ":" in arch:
        return import_callable(arch)(num_classes=num_classes, **kwargs)
    try:
        return torchvision.models.get_model(
            arch, weights=None, num_classes=num_classes, **kwargs
        )
    except ValueError as err:
        close = difflib.get_close_matches(arch, torchvision.models.list_models(), n=3)
        raise ModelError(
            f"model arch {arch!r} is not a torchvision builder (close: {close}); "
            "or give timm:<name>, or a custom architecture as 'module:callable'"
        ) from err


def _timm_model(name: str, num_classes: int, kwargs: dict[str, Any]) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise ModelError(
            f"model arch 'timm:{name}' needs timm, which is not installed: "
            "pip install 'cnnatlas[timm]' (or pip install timm)"
        ) from err
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ModelError(
            f"model arch 'timm:{name}': timm {timm.__version__} has no model {name!r} "
            f"(close: {close}); `timm.list_models()` lists them"
        )
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def load_checkpoint(
    model: nn.Module, path: str | Path, trust: bool = False
) -> nn.Module:
    """Load a checkpoint file into `model` (in place) and return it in eval mode.

    The file holds a state_dict or a dict with one under state_dict / model_state_dict /
    model; `module.` and `_orig_mod.` prefixes are stripped. Mismatched keys or shapes
    raise CheckpointError listing the first few.
    """
    state = _state_dict(_read(path, trust), path)
    expected = model.state_dict()
    kinds = _mismatches(expected, state)
    if any(kinds.values()):
        counts = ", ".join(f"{len(v)} {k}" for k, v in kinds.items())
        first = [p for v in kinds.values() for p in v[:3]]
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit the model "
            f"({sum(map(len, kinds.values()))} mismatches: {counts}): "
            + "; ".join(first)
            + ". Check the model's arch and num_classes."
        )
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read(path: str | Path, trust: bool) -> Any:
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as err:
        if trust:
            raise CheckpointError(
                f"checkpoint {str(path)!r} cannot be unpickled: {err}"
            ) from err
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds objects that torch.load(weights_only=True) refuses "
            "to unpickle, because unpickling can run code. Only if you trust this file, set "
            "trust_checkpoint: true for this model in the config."
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a readable torch file: {err}"
        ) from err


def _state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if (
                isinstance(inner, Mapping)
                and inner
                and all(torch.is_tensor(v) for v in inner.values())
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(
        torch.is_tensor(v) for v in obj.values()
    ):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is neither a state_dict nor a dict holding one under {STATE_DICT_KEYS}"
        )
    return {_strip(k): v for k, v in obj.items()}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key


def _mismatches(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]
) -> dict[str, list[str]]:
    missing = [f"missing {k}" for k in expected if k not in got]
    unexpected = [f"unexpected {k}" for k in got if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(got[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and got[k].shape != v.shape
    ]
    return {"shapes": shapes, "missing": missing, "unexpected": unexpected}


def load_model(spec: Mapping[str, Any], checkpoint: str | Path | None) -> nn.Module:
    """Build the model a config entry describes and load `checkpoint` into it (None: random init)."""
    model = build_model(spec["arch"], spec["num_classes"], spec.get("kwargs"))
    if checkpoint is None:
        return model.eval()
    return load_checkpoint(model, checkpoint, trust=spec.get("trust_checkpoint", False))


def layer_names(model: nn.Module) -> list[str]:
    """The FX node names of `model` in eval mode, in graph order: what `layers:` accepts."""
    return node_names(model)


def module_names(model: nn.Module) -> list[str]:
    """Every named submodule: the layers a model torch.fx cannot trace offers (hooks)."""
    return [n for n, _ in model.named_modules() if n]


def traced_layer_names(model: nn.Module) -> tuple[list[str], str | None]:
    """(names `layers:` accepts, None) from torch.fx, or (module names, why) when torch.fx
    cannot trace the model and the forward pass taps modules with hooks instead."""
    try:
        return layer_names(model), None
    except Exception as err:  # noqa: BLE001 - any tracing failure means: module names
        why = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return module_names(model), f"{type(err).__name__}: {why}"


def check_layers(
    model: nn.Module, layers: Sequence[str], model_name: str = "model"
) -> list[str]:
    """All node names of `model`; raise LayerError naming close matches if a layer is missing.

    A model that torch.fx cannot trace is checked against its module names instead
    (the forward pass then taps those modules with hooks).
    """
    try:
        names = layer_names(model)
    except Exception as err:  # noqa: BLE001 - any tracing failure means: module names
        log.warning("FX cannot trace %s (%s)", type(model).__name__, err)
        return check_modules(model, layers, f"models.{model_name}.layers")
    for layer in layers:
        if not is_layer(layer, names):
            modules = [n for n, _ in model.named_modules() if n]
            close = difflib.get_close_matches(
                layer, sorted(set(names) | set(modules)), n=5, cutoff=0.5
            )
            raise LayerError(
                f"models.{model_name}.layers: {layer!r} is not a node of the model; "
                f"close matches: {close}. `cnnatlas layers ARCH` lists them all."
            )
    return names
