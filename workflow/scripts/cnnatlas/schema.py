"""Defaults read from the workflow's JSON Schema, the one place a default is written.

The workflow fills the config from the schema when it validates it; library functions
that are called with part of a config (or directly, from tests and benchmarks) take the
same defaults from here instead of restating them.
"""

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SCHEMA",
    "load_schema",
    "section",
    "default",
    "defaults",
    "with_defaults",
    "fill_defaults",
]

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


@cache
def load_schema() -> dict[str, Any]:
    """The config schema as a dict (read once)."""
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or the schema it points to with a local `$ref` (`#/$defs/...`)."""
    ref = node.get("$ref", "")
    if not ref.startswith("#/"):
        return node
    target: Any = load_schema()
    for key in ref[2:].split("/"):
        target = target[key]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def section(pointer: str) -> dict[str, Any]:
    """The sub-schema at a dotted config path (`maps.tsne`); `*` steps into
    additionalProperties."""
    node = load_schema()
    for key in pointer.split(".") if pointer else []:
        props = node.get("properties", {})
        if key != "*" and key not in props:
            raise KeyError(f"{SCHEMA.name} has no config key {pointer!r} (at {key!r})")
        node = _resolve(node["additionalProperties"] if key == "*" else props[key])
    return node


def default(pointer: str) -> Any:
    """The schema default of one config key, e.g. `default("extract.device")`."""
    node = section(pointer)
    if "default" not in node:
        raise KeyError(f"the schema gives no default for {pointer}")
    return node["default"]


def defaults(pointer: str) -> dict[str, Any]:
    """{key: default} of every key of the object at `pointer` that has a default."""
    props = section(pointer).get("properties", {})
    return {k: v["default"] for k, v in props.items() if "default" in v}


def with_defaults(options: Mapping[str, Any] | None, pointer: str) -> dict[str, Any]:
    """`options` over the schema's defaults of the object at `pointer` (a validated
    config section already holds them all; this serves callers without a config)."""
    return {**defaults(pointer), **(options or {})}


def fill_defaults(config: Mapping[str, Any], node: dict[str, Any] | None = None) -> Any:
    """A copy of `config` with every missing key that has a schema default filled in,
    at every depth (as the workflow's validation fills them), without validating."""
    import copy

    node = _resolve(load_schema() if node is None else node)
    if not isinstance(config, Mapping):
        return copy.deepcopy(config)
    out = {k: copy.deepcopy(v) for k, v in config.items()}
    props = node.get("properties", {})
    for key, sub in props.items():
        sub = _resolve(sub)
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out and isinstance(out[key], Mapping):
            out[key] = fill_defaults(out[key], sub)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in props and isinstance(out[key], Mapping):
                out[key] = fill_defaults(out[key], extra)
    return out
