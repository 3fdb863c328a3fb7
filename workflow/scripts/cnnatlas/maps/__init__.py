"""The map methods, one module each in this package, found by name.

A method module defines `METHOD = MapMethod(...)`: its name (as written in the config and
in file names), the sweep axes it takes from the config (`perplexity` from
maps.perplexities, `seed` from maps.seeds; a method without an axis gets 0 in file
names), the PyPI packages it needs (their versions go into each map's metadata;
envs/reduce.yaml and pyproject.toml list them, kept in step by `python -m cnnatlas.maps`),
whether one job should make the maps of every layer (a costly start-up per process),
and its fit function. Its options and their defaults are the block `maps.<name>` of the
config schema. Nothing else in the workflow names a method: a new method is a new module
here plus its schema block.

Method modules import their heavy dependencies inside the fit function, so the planner
can read the registry while Snakemake parses the workflow.
"""

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from cnnatlas.schema import with_defaults

__all__ = [
    "AXES",
    "MapSpec",
    "MapMethod",
    "Fit",
    "methods",
    "get_method",
    "packages",
]

# Sweep axis -> the config list under `maps:` that holds its values.
AXES = {"perplexity": "perplexities", "seed": "seeds"}


@dataclass(frozen=True)
class MapSpec:
    """One map of a sweep: its dimension, perplexity (0 without that axis) and seed."""

    dim: int
    perplexity: float = 0.0
    seed: int = 0


# fit(features [N, D], specs, options (defaults filled), n_jobs, name of the features)
# yields (spec, coordinates float32 [N, dim], parameters for the map's metadata).
Fit = Callable[
    [np.ndarray, Sequence[MapSpec], Mapping[str, Any], int, str],
    Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]],
]


@dataclass(frozen=True)
class MapMethod:
    """A map method as the workflow sees it (see the module docstring)."""

    name: str
    title: str
    axes: tuple[str, ...]
    packages: Mapping[str, str]
    fit: Fit
    batched: bool = False
    # What to try when the map loses class structure the features have (diagnosis).
    advice: str = "raise perplexity or iterations, check normalisation"
    # evolve(features per checkpoint, perplexity, seed, options, n_jobs, names) ->
    # (aligned maps, independent maps); None: no training-evolution maps.
    evolve: Callable[..., tuple[list[np.ndarray], list[np.ndarray]]] | None = None

    def options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`given` options over the schema's defaults of `maps.<name>`."""
        return with_defaults(dict(given or {}), "maps", self.name)

    def maps(
        self,
        x: np.ndarray,
        specs: Sequence[MapSpec],
        options: Mapping[str, Any] | None = None,
        n_jobs: int = 1,
        name: str = "features",
    ) -> Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]:
        """Every map of `specs` of features `x` [N, D]: (spec, coordinates, parameters)."""
        return self.fit(x, specs, self.options(options), n_jobs, name)


@cache
def methods() -> dict[str, MapMethod]:
    """name -> MapMethod of every module of this package that defines METHOD."""
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        method = getattr(module, "METHOD", None)
        if isinstance(method, MapMethod):
            found[method.name] = method
    return found


def get_method(name: str) -> MapMethod:
    """The registered method `name`; an error lists the known ones."""
    try:
        return methods()[name]
    except KeyError:
        raise ValueError(
            f"unknown map method {name!r}; expected one of {sorted(methods())}"
        ) from None


def packages() -> dict[str, str]:
    """PyPI package -> version range, of every registered method (sorted)."""
    out: dict[str, str] = {}
    for method in methods().values():
        out.update(method.packages)
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))
