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
    "FitJob",
    "EvolveJob",
    "Maps",
    "MapMethod",
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


@dataclass(frozen=True)
class FitJob:
    """What a fit function gets: features `x` [N, D], the maps to make, the method's
    options (the schema's defaults filled), threads, the features' name for messages,
    and the images' class labels [N] (None: unknown; a subsample is then uniform).
    The fit yields (spec, coordinates float32 [N, dim], parameters for the metadata)."""

    x: np.ndarray
    specs: Sequence[MapSpec]
    options: Mapping[str, Any]
    n_jobs: int = 1
    name: str = "features"
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class EvolveJob:
    """What an evolve function gets: features [N, D] per checkpoint in training order,
    the perplexity and seed of evolution.*, the method's options, threads, and names
    for messages. It returns (aligned maps, independent maps), one [N, 2] per checkpoint."""

    features: Sequence[np.ndarray]
    perplexity: float
    seed: int
    options: Mapping[str, Any]
    n_jobs: int = 1
    names: Sequence[str] | None = None


Maps = Iterator[tuple[MapSpec, np.ndarray, dict[str, Any]]]


@dataclass(frozen=True)
class MapMethod:
    """A map method as the workflow sees it (see the module docstring)."""

    name: str
    title: str
    axes: tuple[str, ...]
    packages: Mapping[str, str]
    fit: Callable[[FitJob], Maps]
    batched: bool = False
    # What to try when the map loses class structure the features have (diagnosis).
    advice: str = "raise perplexity or iterations, check normalisation"
    # None: the method makes no training-evolution maps.
    evolve: Callable[[EvolveJob], tuple[list[np.ndarray], list[np.ndarray]]] | None = (
        None
    )

    def options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`given` options over the schema's defaults of `maps.<name>`."""
        return with_defaults(given, f"maps.{self.name}")

    def maps(
        self,
        x: np.ndarray,
        specs: Sequence[MapSpec],
        options: Mapping[str, Any] | None = None,
        n_jobs: int = 1,
        name: str = "features",
        labels: np.ndarray | None = None,
    ) -> Maps:
        """Every map of `specs` of features `x` [N, D]: (spec, coordinates, parameters)."""
        job = FitJob(x, specs, self.options(options), n_jobs, name, labels)
        return self.fit(job)

    def evolution(
        self,
        features: Sequence[np.ndarray],
        perplexity: float,
        seed: int,
        options: Mapping[str, Any] | None = None,
        n_jobs: int = 1,
        names: Sequence[str] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(aligned, independent) 2-D maps of a layer's features per checkpoint."""
        if self.evolve is None:
            raise ValueError(f"map method {self.name!r} has no training evolution")
        opts = self.options(options)
        return self.evolve(EvolveJob(features, perplexity, seed, opts, n_jobs, names))


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
