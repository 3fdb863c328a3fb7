"""Defaults read from the workflow's JSON Schema, the one place a default is written.

The workflow fills the config from the schema when it validates it; library functions
that are called with part of a config (or directly, from tests and benchmarks) take the
same defaults from here instead of restating them.
"""

from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SCHEMA", "default", "defaults"]

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA.read_text())


def _node(pointer: str) -> dict[str, Any]:
    """The sub-schema at a dotted config path; `*` steps into additionalProperties."""
    node = _schema()
    for key in pointer.split(".") if pointer else []:
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    return node


def default(pointer: str) -> Any:
    """The schema default of one config key, e.g. `default("extract.device")`."""
    node = _node(pointer)
    if "default" not in node:
        raise KeyError(f"the schema gives no default for {pointer}")
    return node["default"]


def defaults(pointer: str) -> dict[str, Any]:
    """{key: default} of every key of the object at `pointer` that has a default."""
    props = _node(pointer).get("properties", {})
    return {k: v["default"] for k, v in props.items() if "default" in v}
