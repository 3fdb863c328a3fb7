"""The names every planner shares: wildcards, numbers and map names as file names spell
them. The lowest module of the planner: `plan.core` and the stage planners import it."""

import re
from collections.abc import Iterable
from typing import Protocol

__all__ = ["Wildcards", "fmt_number", "alternatives", "map_name"]


class Wildcards(Protocol):
    """What an input function receives: Snakemake's wildcards (attribute access)."""

    def __getattr__(self, name: str) -> str: ...


def fmt_number(value: float | str) -> str:
    """A perplexity as it appears in file names: 30 -> '30', 7.5 -> '7.5'."""
    return f"{float(value):g}"


def alternatives(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly `names` (longest first, escaped)."""
    return "|".join(map(re.escape, sorted(set(names), key=len, reverse=True)))


def map_name(method: str, dim: str, perplexity: str, seed: str) -> str:
    """A map's file stem: {method}-{dim}d-p{perplexity}-s{seed}."""
    return f"{method}-{dim}d-p{perplexity}-s{seed}"
