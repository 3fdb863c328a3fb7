"""The library modules a workflow script imports, found by reading the code (ast).

Snakemake re-runs a job when its script changes, not when a module the script imports
changes; rules therefore list those modules as inputs. `library_files` finds them:
every `cnnatlas` module the script imports (at the top or inside a function),
transitively, with the packages on the way. A module that imports modules by name
(`importlib.import_module`, `pkgutil.iter_modules`: a registry such as
`cnnatlas.maps`) depends on every module of its package.
"""

import ast
from functools import cache
from pathlib import Path

__all__ = ["PACKAGE", "imported_modules", "library_files"]

PACKAGE = "cnnatlas"
_DYNAMIC = {"import_module", "iter_modules"}


def _file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def _direct(root: Path, path: Path, module: str) -> frozenset[str]:
    """The cnnatlas modules that the file `path` (module `module`) imports directly."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute | ast.Name):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name in _DYNAMIC and path.name == "__init__.py":
                found |= {
                    f"{module}.{p.stem}"
                    for p in path.parent.glob("*.py")
                    if not p.stem.startswith("_")
                }
            continue
        else:
            continue
        for name in names:
            if name.split(".")[0] == PACKAGE and _file(root, name):
                found.update(_parents(name))
    found.discard(module)
    return frozenset(found)


def imported_modules(script: str | Path, root: str | Path | None = None) -> list[str]:
    """Dotted names of every cnnatlas module `script` imports, transitively (sorted).

    `root` is the folder holding the `cnnatlas` package (default: the script's folder).
    """
    script = Path(script).resolve()
    root = Path(root).resolve() if root else script.parent
    seen: set[str] = set()
    todo = list(_direct(root, script, "__script__"))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _file(root, module)
        if path is not None:
            todo += _direct(root, path, module) - seen
    return sorted(seen)


def library_files(script: str | Path, root: str | Path | None = None) -> list[str]:
    """The files of every cnnatlas module `script` imports, transitively (sorted paths),
    for a rule's inputs."""
    script = Path(script).resolve()
    root = Path(root).resolve() if root else script.parent
    files = (_file(root, m) for m in imported_modules(script, root))
    return sorted(str(f) for f in files if f is not None)
