"""The map methods, one module each in this package, found by name.

A method module defines `METHOD = MapMethod(...)`: its name (as written in the config and
in file names), the sweep axes it takes from the config (`perplexity` from
maps.perplexities, `seed` from maps.seeds), the PyPI packages it needs (their versions go into each map's metadata;
envs/reduce.yaml and pyproject.toml list them, kept in step by `python -m cnnatlas.maps`),
whether one job should make the maps of every layer (a costly start-up per process),
and its fit function. Its options and their defaults are the block `maps.<name>` of the
config schema. Nothing else in the workflow names a method: a new method is a new module
here plus its schema block.

Method modules import their heavy dependencies inside the fit function, so the planner
can read the registry while Snakemake parses the workflow. What they share (features,
PCA, subsamples, worker pools) is `cnnatlas.maps.toolbox`; `cnnatlas.mapping` writes a
job's maps with them.

A map's sweep point is a `MapSpec`: its dimension and the values of its method's axes,
None for an axis the method lacks (`MapMethod.spec`, `MapMethod.sweep`). It is spelled
in one place: `map_fields` (metadata and tables: 0 for a missing axis), `map_values`
(wildcard values), `map_name` (file names: `tsne-2d-p30-s0`, `pca-2d-p0-s0`), and read
back by `read_spec` and `parse_map_name`; `MapSpec.label` words it for people
("perplexity 30, seed 0"; nothing for PCA).
"""

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from cnnatlas.schema import with_defaults

__all__ = [
    "AXES",
    "MapSpec",
    "map_fields",
    "map_values",
    "map_name",
    "parse_map_name",
    "read_spec",
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


# How a label words each axis: in full, and short (a sweep grid's panel titles).
_WORDS = {"perplexity": ("perplexity {}", "p{}"), "seed": ("seed {}", "s{}")}


@dataclass(frozen=True)
class MapSpec:
    """One map of a sweep: its dimension and the values of its method's sweep axes;
    None for an axis the method does not have (PCA: both). Made by `MapMethod.spec`."""

    dim: int
    perplexity: float | None = None
    seed: int | None = None

    def label(self, short: bool = False) -> str:
        """The axes it has, in words: 'perplexity 30, seed 0' ('p30 s0' short); '' for
        a map without sweep axes."""
        values = {"perplexity": self.perplexity, "seed": self.seed}
        words = [
            _WORDS[a][short].format(_spell(a, v))
            for a, v in values.items()
            if v is not None
        ]
        return (" " if short else ", ").join(words)


def _spell(axis: str, value: float | int) -> str:
    """An axis value as file names and labels write it: perplexity 30 -> '30', 7.5 ->
    '7.5'; seed 0 -> '0'."""
    return f"{float(value):g}" if axis == "perplexity" else str(int(value))


def map_fields(spec: MapSpec) -> dict[str, Any]:
    """{dim, perplexity, seed} as a map's metadata and the metrics table record them:
    int, float, int; 0 for an axis its method lacks (the output contract)."""
    return {
        "dim": int(spec.dim),
        "perplexity": 0.0 if spec.perplexity is None else float(spec.perplexity),
        "seed": 0 if spec.seed is None else int(spec.seed),
    }


def map_values(spec: MapSpec) -> tuple[str, str, str]:
    """(dim, perplexity, seed) as file names and wildcards spell them: ('2', '30', '0');
    '0' for an axis its method lacks."""
    f = map_fields(spec)
    return str(f["dim"]), _spell("perplexity", f["perplexity"]), str(f["seed"])


def map_name(method: str, spec: MapSpec) -> str:
    """A map's file stem: {method}-{dim}d-p{perplexity}-s{seed} (`map_values`)."""
    dim, perplexity, seed = map_values(spec)
    return f"{method}-{dim}d-p{perplexity}-s{seed}"


_NAME = re.compile(
    r"(?P<method>.+)-(?P<dim>\d+)d-p(?P<perplexity>[^-]+)-s(?P<seed>\d+)"
)


def parse_map_name(name: str) -> tuple[str, MapSpec]:
    """(method, spec) of a file stem written by `map_name` (an error for any other,
    e.g. a perplexity in the name of a method without that axis)."""
    found = _NAME.fullmatch(name)
    if found is None:
        raise ValueError(
            f"{name!r} is not a map name ({{method}}-{{dim}}d-p{{perplexity}}-s{{seed}})"
        )
    method, spec = found["method"], read_spec(found["method"], found.groupdict())
    if map_name(method, spec) != name:
        raise ValueError(f"{name!r} is not a name the workflow writes for {method}")
    return method, spec


def read_spec(method: str, values: Mapping[str, Any]) -> MapSpec:
    """The MapSpec of a map of `method` from anything that spells it: wildcards, a
    parsed file name, a map's metadata, a metrics row ({dim, perplexity, seed}, as
    strings or numbers). The method's axes decide which values it keeps."""
    return get_method(method).spec(
        values["dim"], values.get("perplexity"), values.get("seed")
    )


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

    def spec(self, dim: Any, perplexity: Any = None, seed: Any = None) -> MapSpec:
        """A map of this method, typed (strings such as wildcard values are read): the
        values of the axes it has; the others are None, whatever was given."""
        p = (
            float(perplexity)
            if "perplexity" in self.axes and perplexity is not None
            else None
        )
        s = int(seed) if "seed" in self.axes and seed is not None else None
        return MapSpec(int(dim), p, s)

    def sweep(self, maps: Mapping[str, Any]) -> list[MapSpec]:
        """Its maps of a `maps:` config: every dim x the config list of each axis it has
        (AXES), in config order."""
        values = {a: maps[AXES[a]] if a in self.axes else [None] for a in AXES}
        return [
            self.spec(dim, p, s)
            for dim in maps["dims"]
            for p in values["perplexity"]
            for s in values["seed"]
        ]

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
