"""The library modules a workflow script imports, found by reading the code (ast).

Snakemake re-runs a job when its script changes, not when a module the script imports
changes; rules therefore list those modules as inputs. `library_files` finds them:
every `cnnatlas` module the script imports (at the top or inside a function),
transitively, with the packages on the way. A module that imports modules by name
(`importlib.import_module`, `pkgutil.iter_modules`: a registry such as
`cnnatlas.maps`) depends on every module of its package.
"""

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

__all__ = ["PACKAGE", "imported_names", "imported_modules", "library_files"]

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


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under `node`, at any depth, except the body of an
    `if TYPE_CHECKING:` (never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif _type_checking(child):
            for other in child.orelse:
                yield from _statements(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _statements(child)


def _names(tree: ast.Module, package: str) -> set[str]:
    found: set[str] = set()
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        found.add(base)
        found.update(f"{base}.{a.name}" for a in node.names)
    return found


def imported_names(path: str | Path, module: str) -> set[str]:
    """Every dotted name the import statements of the file `path` (module `module`)
    name, relative ones resolved, at the top or inside a function, except those under
    `if TYPE_CHECKING:` (never run): `from a import b` names `a` and `a.b`."""
    path = Path(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return _names(tree, package)


@cache
def _direct(root: Path, path: Path, module: str) -> frozenset[str]:
    """The cnnatlas modules that the file `path` (module `module`) imports directly."""
    found: set[str] = set()
    for name in imported_names(path, module):
        if name.split(".")[0] == PACKAGE and _file(root, name):
            found.update(_parents(name))
    if path.name == "__init__.py" and any(
        (node.attr if isinstance(node, ast.Attribute) else node.id) in _DYNAMIC
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute | ast.Name)
    ):
        found |= {
            f"{module}.{p.stem}"
            for p in path.parent.glob("*.py")
            if not p.stem.startswith("_")
        }
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
