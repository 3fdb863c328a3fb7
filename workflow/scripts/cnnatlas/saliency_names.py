"""The names of the saliency methods, known without importing torch.

The workflow checks the config's method lists when it is parsed, before any job runs;
importing `cnnatlas.explain.saliency` there would cost every snakemake call the ~2.5 s
of importing torch. So the names are read from the package's sources: every class
decorated with `@register` declares `name = "<literal>"` (a unit test checks that this
list equals the runtime registry). This module sits beside the schema, below the
planner, and imports nothing of `cnnatlas.explain`.
"""

import ast
from collections.abc import Sequence
from pathlib import Path

from cnnatlas.errors import CnnatlasError

__all__ = ["saliency_method_names", "check_saliency_methods"]

PACKAGE = Path(__file__).parent / "explain" / "saliency"


def _registered(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        decorated = isinstance(node, ast.ClassDef) and any(
            isinstance(d, ast.Name) and d.id == "register" for d in node.decorator_list
        )
        for stmt in node.body if decorated else []:
            if (
                isinstance(stmt, ast.Assign)
                and any(
                    isinstance(t, ast.Name) and t.id == "name" for t in stmt.targets
                )
                and isinstance(stmt.value, ast.Constant)
            ):
                names.append(stmt.value.value)
    return names


def saliency_method_names() -> list[str]:
    """Every registered method name, in the registry's order (module name order)."""
    out: list[str] = []
    for path in sorted(PACKAGE.glob("*.py"), key=lambda p: p.stem):
        if path.stem != "base" and not path.stem.startswith("_"):
            out += _registered(ast.parse(path.read_text(), filename=str(path)))
    return out


def check_saliency_methods(methods: Sequence[str], key: str) -> list[str]:
    """`methods` if every one is a saliency method; else a CnnatlasError naming `key`."""
    known = saliency_method_names()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise CnnatlasError(
            f"{key}: {unknown} are not saliency methods; choose from {known}"
        )
    return list(methods)
