"""The configuration reference, docs/configuration.md, written from the config schema.

`python -m cnnatlas.confdoc` rewrites the page; `--check` only reports whether it is
stale (exit 1), as `python -m cnnatlas.maps --check` does for the map registry's files.
Every key of the schema gets its type, default, allowed values, description and an
example (the demo's `config.yaml` value where it sets the key, else the default). The
page is a pure function of the schema and config.yaml, so it is byte-stable.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from cnnatlas.io import sync_page
from cnnatlas.schema import SCHEMA, load_schema

__all__ = ["Key", "keys", "undescribed", "render", "PAGE", "CONFIG", "main"]

ROOT = SCHEMA.parents[2]
PAGE = ROOT / "docs" / "configuration.md"
CONFIG = ROOT / "config.yaml"

# The name a reader gives an entry of a mapping whose keys the user chooses.
PLACEHOLDERS = {"models": "<model>", "figures": "<figure>"}


@dataclass(frozen=True)
class Key:
    """One config key: its dotted path, the schema node that describes it."""

    path: tuple[str, ...]
    node: dict[str, Any]

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _children(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[Key]:
    for name, child in node.get("properties", {}).items():
        yield Key((*path, name), child)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        placeholder = PLACEHOLDERS.get(path[-1] if path else "", "<name>")
        yield Key((*path, placeholder), extra)


def keys(schema: dict[str, Any] | None = None) -> list[Key]:
    """Every key of the schema, depth first in the schema's order."""
    root = schema if schema is not None else load_schema()

    def walk(key: Key) -> Iterator[Key]:
        node = _resolve(key.node, root)
        key = Key(key.path, node)
        yield key
        for child in _children(node, key.path):
            yield from walk(child)

    out: list[Key] = []
    for child in _children(root, ()):
        out.extend(walk(child))
    return out


def undescribed(schema: dict[str, Any] | None = None) -> list[str]:
    """Keys whose schema node has no `description`."""
    return [k.name for k in keys(schema) if not k.node.get("description")]


def _type(node: dict[str, Any]) -> str:
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type(n) for n in node.get("oneOf", node.get("anyOf")))
    kind = node.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    out = []
    for k in kinds:
        if k == "array" and isinstance(node.get("items"), dict):
            out.append(f"list of {_type(node['items'])}")
        elif k == "object" and isinstance(node.get("additionalProperties"), dict):
            out.append(f"mapping to {_type(node['additionalProperties'])}")
        else:
            out.append(str(k))
    return " or ".join(out)


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _allowed(node: dict[str, Any]) -> str:
    parts: list[str] = []
    for alt in node.get("oneOf", node.get("anyOf", [])):
        text = _allowed(alt)
        if text:
            parts.append(text)
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{_value(v)}`" for v in node["enum"]))
    bounds = {
        "minimum": "≥",
        "exclusiveMinimum": ">",
        "maximum": "≤",
        "exclusiveMaximum": "<",
        "minLength": "length ≥",
        "minItems": "items ≥",
        "maxItems": "items ≤",
        "minProperties": "entries ≥",
    }
    for word, sign in bounds.items():
        if word in node:
            parts.append(f"{sign} {node[word]}")
    if node.get("uniqueItems"):
        parts.append("no repeats")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    items = node.get("items")
    if isinstance(items, dict):
        inner = _allowed(_resolve(items, load_schema()))
        if inner:
            parts.append(f"each item {inner}")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" not in extra:
        inner = _allowed(extra)
        if inner:
            parts.append(f"each value {inner}")
    if node.get("required"):
        parts.append("requires " + _names(node["required"]))
    cond = node.get("if", {}).get("required")
    if cond:  # a conditional requirement (`if: {required: [...]}, then:, else:`)
        then, other = node["then"].get("required"), node.get("else", {}).get("required")
        parts.append(f"with {_names(cond)}: requires {_names(then)}")
        if other:
            parts.append(f"else requires {_names(other)}")
    return "; ".join(parts)


def _names(keys: list[str]) -> str:
    return ", ".join(f"`{r}`" for r in keys)


def _lookup(config: Any, path: tuple[str, ...]) -> tuple[bool, Any, list[str]]:
    """The config's value at `path` (a placeholder takes the first name set there)."""
    names: list[str] = []
    for part in path:
        if part.startswith("<") and isinstance(config, dict) and config:
            part = sorted(config)[0]
        if not (isinstance(config, dict) and part in config):
            return False, None, []
        config = config[part]
        names.append(part)
    return True, config, names


def _example(key: Key, config: dict[str, Any]) -> str | None:
    found, value, names = _lookup(config, key.path)
    if not found:
        if "default" not in key.node:
            return None
        value = key.node["default"]
        names = [p.strip("<>") for p in key.path]
    flow: Any = value
    for part in reversed(names):
        flow = {part: flow}
    text = yaml.safe_dump(flow, default_flow_style=True, sort_keys=False, width=1000)
    return text.strip().removesuffix("...").strip()


def _escape(text: str) -> str:
    """One line of markdown: `<`, `>` and `*` outside code spans are shown as text."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = (
            parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", r"\*")
        )
    return "`".join(parts)


HEADER = """\
# Configuration reference

<!-- Generated by `python -m cnnatlas.confdoc` from
workflow/schemas/config.schema.yaml; do not edit by hand. -->

Every key of `config.yaml`, as the schema
(`workflow/schemas/config.schema.yaml`) defines it. The schema is checked before any job
runs: an unknown key or a wrong value stops the run, naming the key. A key that is not
set takes the default shown here; the schema is the only place a default is written.
Examples show the demo's `config.yaml` value where it sets the key. Keys written
`<model>` or `<figure>` are names you choose.
"""


def render(
    schema: dict[str, Any] | None = None, config: dict[str, Any] | None = None
) -> str:
    """The page's markdown."""
    root = schema if schema is not None else load_schema()
    if config is None:
        config = yaml.safe_load(CONFIG.read_text()) or {}
    lines = [HEADER]
    for key in keys(root):
        node = key.node
        level = "##" if len(key.path) == 1 else "###"
        lines.append(f"{level} `{key.name}`\n")
        facts = [f"**type** {_escape(_type(node))}"]
        if "default" in node:
            facts.append(f"**default** `{_value(node['default'])}`")
        elif len(key.path) > 1:
            facts.append("**no default**")
        allowed = _allowed(node)
        if allowed:
            facts.append(f"**allowed** {_escape(allowed)}")
        lines.append(" · ".join(facts) + "\n")
        if node.get("description"):
            lines.append(_escape(node["description"]) + "\n")
        example = _example(key, config) if len(key.path) > 1 else None
        if example:
            lines.append(f"Example: `{example}`\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnnatlas.confdoc", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="only report a stale page")
    args = parser.parse_args(argv)
    missing = undescribed()
    for name in missing:
        print(f"no description: {name}", file=sys.stderr)
    stale = sync_page(PAGE, render(), "python -m cnnatlas.confdoc", args.check)
    return 1 if (stale and args.check) or missing else 0


if __name__ == "__main__":
    sys.exit(main())
