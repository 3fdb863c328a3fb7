"""Keep the files that list the map methods in step with the registry.

The config schema's method enums (`$defs.map_method`, `$defs.evolution_method`), the
conda environment of the maps stage (envs/reduce.yaml) and pyproject.toml's
dependencies are derived from `cnnatlas.maps.methods()`: `python -m cnnatlas.maps`
rewrites them, `python -m cnnatlas.maps --check` (and tests/unit/test_maps_registry.py)
fails when one disagrees.
"""

import re
from collections.abc import Callable

from cnnatlas import generated
from cnnatlas.maps import methods, packages

__all__ = ["FILES", "expected", "stale", "sync"]

MARKER = "map method packages not listed above (python -m cnnatlas.maps)"


def _schema(text: str) -> str:
    names = list(methods())
    evolving = [n for n, m in methods().items() if m.evolve is not None]
    for key, values in (("map_method", names), ("evolution_method", evolving)):
        pattern = rf"(\n  {key}:\n(?:    .*\n)*?    enum: )\[[^\]]*\]"
        if not re.search(pattern, text):
            raise ValueError(f"config.schema.yaml: no $defs.{key}.enum to update")
        text = re.sub(pattern, rf"\g<1>[{', '.join(values)}]", text, count=1)
    return text


def _block(text: str, indent: str, prefix: str, line: Callable[[str], str]) -> str:
    """`text` with the lines after MARKER replaced by the registry's packages that the
    lines before it do not list."""
    head, sep, tail = text.partition(f"{indent}# {MARKER}\n")
    if not sep:
        raise ValueError(f"no line '# {MARKER}' to update")
    listed = head.lower()
    rest = tail.splitlines(keepends=True)
    # The block ends at the first line that is not a generated entry.
    n = next((i for i, x in enumerate(rest) if not x.startswith(prefix)), len(rest))
    entries = [
        f"{prefix}{line(name + spec)}\n"
        for name, spec in packages().items()
        if f"{name}{spec}".lower() not in listed
    ]
    return head + sep + "".join(entries) + "".join(rest[n:])


def _env(text: str) -> str:
    return _block(text, "  ", "  - ", str.lower)


def _pyproject(text: str) -> str:
    return _block(text, "    ", '    "', lambda req: f'{req}",')


FILES: dict[str, Callable[[str], str]] = {
    "workflow/schemas/config.schema.yaml": _schema,
    "envs/reduce.yaml": _env,
    "pyproject.toml": _pyproject,
}


def expected(path: str) -> str:
    """The text the registry asks of `path` (a key of FILES)."""
    return generated.expected(FILES, path)


def stale() -> list[str]:
    """The files of FILES whose text disagrees with the registry."""
    return generated.stale(FILES)


def sync() -> list[str]:
    """Rewrite every stale file; returns their paths."""
    return generated.sync(FILES)
