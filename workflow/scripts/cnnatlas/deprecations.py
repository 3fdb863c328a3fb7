"""Config keys and values under their old names, accepted for one release.

`upgrade_config(config)` runs before the config is validated (common.smk, `cnnatlas
plan`): it moves the values of a renamed key to its new name, and a renamed paper
figure kind to its new name, in place, and returns one warning per rename it made, to
be printed once. A config that sets both the old and the new key is an error naming
both. The next release removes the old names from RENAMED_KEYS and RENAMED_PAPER_KINDS.
"""

from collections.abc import Mapping, MutableMapping
from typing import Any

from cnnatlas.errors import ConfigError

__all__ = ["RENAMED_KEYS", "RENAMED_PAPER_KINDS", "upgrade_config"]

# old dotted key -> new dotted key; the last part is renamed, its parent stays
RENAMED_KEYS = {"explain.gradcam": "explain.saliency"}
# old kind of a paper figure (paper.figures.<name>.kind) -> new kind
RENAMED_PAPER_KINDS = {"gradcam": "saliency"}

REMOVAL = "the old name will be removed in the next release"


def _parent(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for key in dotted.split(".")[:-1]:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _rename_key(config: MutableMapping[str, Any], old: str, new: str) -> str | None:
    node = _parent(config, old)
    old_key, new_key = old.rsplit(".", 1)[-1], new.rsplit(".", 1)[-1]
    if not isinstance(node, MutableMapping) or old_key not in node:
        return None
    if new_key in node:
        raise ConfigError(
            f"{old} and {new} are both set; {old} is the old name of {new}: "
            f"move its values under {new} and remove {old}"
        )
    # rebuilt in the same order, so the config reads as if written with the new key
    items = [(new_key if k == old_key else k, v) for k, v in node.items()]
    node.clear()
    node.update(items)
    return f"{old} is deprecated, its values are read as {new}: rename it; {REMOVAL}"


def _rename_kinds(config: Mapping[str, Any]) -> list[str]:
    paper = config.get("paper")
    figures = paper.get("figures") if isinstance(paper, Mapping) else None
    renamed: dict[str, list[str]] = {}
    for name, figure in (figures or {}).items():
        kind = figure.get("kind") if isinstance(figure, MutableMapping) else None
        if isinstance(kind, str) and kind in RENAMED_PAPER_KINDS:
            figure["kind"] = RENAMED_PAPER_KINDS[kind]
            renamed.setdefault(kind, []).append(f"paper.figures.{name}.kind")
    return [
        f"paper figure kind {old!r} is deprecated ({', '.join(keys)}), read as "
        f"{RENAMED_PAPER_KINDS[old]!r}: rename it; {REMOVAL}"
        for old, keys in renamed.items()
    ]


def upgrade_config(config: MutableMapping[str, Any]) -> list[str]:
    """Rename, in `config`, the old keys and paper kinds to their new names; returns
    one deprecation warning per rename. ConfigError when an old key and its new key
    are both set."""
    notes = [_rename_key(config, old, new) for old, new in RENAMED_KEYS.items()]
    return [n for n in notes if n] + _rename_kinds(config)
