"""Saliency methods, one class per module, found by name in `METHODS`.

Every module of this package except `base` is imported here, so adding a method is one
new module: a `SaliencyMethod` subclass with `name`, `title` and `compute`, decorated
with `@register` (and its tests and README line). The config's method lists
(`explain.gradcam.methods`, `explain.trust.methods`) are checked against `METHODS`.
"""

import importlib
import pkgutil

from cnnatlas.explain.saliency.base import (
    METHODS,
    LayerPass,
    SaliencyMethod,
    method_class,
    open_methods,
    register,
    saliency_maps,
)

__all__ = [
    "METHODS",
    "LayerPass",
    "SaliencyMethod",
    "method_class",
    "open_methods",
    "register",
    "saliency_maps",
]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.name != "base":
        importlib.import_module(f"{__name__}.{_info.name}")
