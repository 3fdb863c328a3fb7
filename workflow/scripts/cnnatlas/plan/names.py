"""The names every planner shares: wildcards, numbers and map names as file names spell
them. The lowest module of the planner: `plan.core` and the stage planners import it."""

import re
from collections.abc import Iterable
from typing import Protocol

from cnnatlas import maps

__all__ = ["Wildcards", "alternatives", "map_spec", "map_name"]


class Wildcards(Protocol):
    """What an input function receives: Snakemake's wildcards (attribute access)."""

    def __getattr__(self, name: str) -> str: ...


def alternatives(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly `names` (longest first, escaped)."""
    return "|".join(map(re.escape, sorted(set(names), key=len, reverse=True)))


def map_spec(method: str, dim: str, perplexity: str, seed: str) -> maps.MapSpec:
    """The typed map of (method, dim, perplexity, seed) as file names spell them
    (`Maps.params`): None for an axis the method lacks."""
    values = {"dim": dim, "perplexity": perplexity, "seed": seed}
    return maps.read_spec(method, values)


def map_name(method: str, dim: str, perplexity: str, seed: str) -> str:
    """A map's file stem, {method}-{dim}d-p{perplexity}-s{seed} (`cnnatlas.maps.map_name`)."""
    return maps.map_name(method, map_spec(method, dim, perplexity, seed))
