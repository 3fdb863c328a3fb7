"""The config schema (workflow/schemas/config.schema.yaml) as the one home of defaults.

Snakemake's `validate` fills a config's defaults from the schema. Library functions that
are called without a config (tests, benchmarks, notebooks) read the same defaults here,
so that no default is ever written twice.
"""

from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SCHEMA_FILE", "load_schema", "section", "defaults", "with_defaults"]

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


@cache
def load_schema() -> dict[str, Any]:
    """The config schema as a dict (read once)."""
    return yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref", "")
    if ref.startswith("#/"):
        target: Any = load_schema()
        for key in ref[2:].split("/"):
            target = target[key]
        return target
    return node


def section(*keys: str) -> dict[str, Any]:
    """The schema of the config section `keys`, e.g. section("maps", "tsne")."""
    node = load_schema()
    for key in keys:
        props = node.get("properties", {})
        if key not in props:
            raise KeyError(
                f"{SCHEMA_FILE.name}: no config key {'.'.join(keys)} (at {key!r})"
            )
        node = _resolve(props[key])
    return node


def defaults(*keys: str) -> dict[str, Any]:
    """{key: default} of the properties of config section `keys` that have one."""
    props = section(*keys).get("properties", {})
    return {k: v["default"] for k, v in props.items() if "default" in v}


def with_defaults(options: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    """`options` over the schema's defaults of section `keys` (a validated config
    section already holds them all; this serves callers without a config)."""
    return {**defaults(*keys), **(options or {})}
