"""Saliency methods, one class per module, found by name in `METHODS`.

Every module of this package except `base` and the private ones is imported here, so
adding a method is one new module: a `SaliencyMethod` subclass with `name`, `title` and
`compute`, decorated with `@register` (and its tests and its line in
docs/explanations.md). The config's method lists (`explain.saliency.methods`,
`explain.trust.methods`) are checked against `METHODS`; the schema and config.yaml list
the names, written by `python -m cnnatlas.explain.saliency` (`_sync`).
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
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
