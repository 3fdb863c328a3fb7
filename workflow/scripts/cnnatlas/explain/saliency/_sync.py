"""Keep the files that list the saliency methods in step with the registry.

The descriptions of the config schema's saliency method lists (`explain.saliency.methods`,
`explain.trust.methods`) and config.yaml's comment listing the methods and its list of
every method to check are written from the registry's names:
`python -m cnnatlas.explain.saliency` rewrites them, `python -m cnnatlas.explain.saliency
--check` (and tests/unit/test_saliency_registry.py) fails when one disagrees. The names
come from `cnnatlas.saliency_names` (read without torch, proven equal to `METHODS`);
`cnnatlas.generated` compares and rewrites the FILES.
"""

import re
from collections.abc import Callable

from cnnatlas.saliency_names import saliency_method_names

__all__ = ["FILES", "SCHEMA_MARKER"]

# A schema description ends with this phrase on a line, then the names on the next one.
SCHEMA_MARKER = "registry's saliency methods:"


def _replace(text: str, pattern: str, value: str, file: str, least: int) -> str:
    new, n = re.subn(pattern, lambda m: m.group(1) + value + m.group(2), text)
    if n < least:
        raise ValueError(f"{file}: {n} lists of saliency methods found, not {least}")
    return new


def _schema(text: str) -> str:
    names = ", ".join(saliency_method_names())
    pattern = rf"({re.escape(SCHEMA_MARKER)}\n +)[^\n]*(\n)"
    return _replace(text, pattern, names, "config.schema.yaml", 2)


def _config(text: str) -> str:
    names = saliency_method_names()
    text = _replace(
        text, r"(# saliency methods: )[^\n]*()", ", ".join(names), "config.yaml", 1
    )
    every = r"(methods: )\[[^\]\n]*\](\s+# every saliency method)"
    return _replace(text, every, f"[{', '.join(names)}]", "config.yaml", 1)


FILES: dict[str, Callable[[str], str]] = {
    "workflow/schemas/config.schema.yaml": _schema,
    "config.yaml": _config,
}
