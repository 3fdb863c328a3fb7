"""The library's import graph, read from the code (ast): no loops, and a planner that
imports no drawing code, torch, matplotlib or pandas."""

from pathlib import Path

import pytest
from cnnatlas.imports import PACKAGE, imported_names

LIB = Path(__file__).resolve().parents[2] / "workflow/scripts" / PACKAGE

# What the planner (cnnatlas.plan) must not reach: the drawing and torch modules of the
# library, and the heavy packages they bring.
DRAWING = {
    "cnnatlas.demo",
    "cnnatlas.evolution_plots",
    "cnnatlas.explain",
    "cnnatlas.extract",
    "cnnatlas.figures",
    "cnnatlas.index",
    "cnnatlas.interactive",
    "cnnatlas.models",
    "cnnatlas.paper",
    "cnnatlas.plots",
    "cnnatlas.projector",
    "cnnatlas.similarity_plots",
    "cnnatlas.thumbnails",
    "cnnatlas.torchutil",
    "cnnatlas.viewer",
}
HEAVY = {"matplotlib", "pandas", "torch", "torchvision"}


def _module(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _names() -> dict[str, set[str]]:
    """{module: every dotted name its import statements name}, over the library."""
    return {
        _module(p): imported_names(p, _module(p)) for p in sorted(LIB.rglob("*.py"))
    }


def _graph(names: dict[str, set[str]]) -> dict[str, set[str]]:
    """{module: the library modules it imports} (`from a import b` names a.b when b is
    a module, and a)."""
    return {
        m: {n for n in found if n in names and n != m} for m, found in names.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One loop of `graph` as a path [a, b, ..., a], or None when it has none."""
    done: set[str] = set()

    def visit(path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt in path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done:
                found = visit(path + [nxt])
                if found:
                    return found
        done.add(path[-1])
        return None

    for node in sorted(graph):
        found = None if node in done else visit([node])
        if found:
            return found
    return None


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_the_library_has_no_import_loop():
    graph = _graph(_names())
    assert len(graph) > 50 and "cnnatlas.plan.core" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import loop: " + " -> ".join(cycle)


def test_imports_inside_functions_and_type_checking(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    import matplotlib\n"
        "else:\n    import json\n"
        "def f():\n    from cnnatlas.maps import get_method\n"
    )
    assert imported_names(module, "cnnatlas.sub.m") == {
        "typing",
        "typing.TYPE_CHECKING",
        "cnnatlas.sub",
        "cnnatlas.sub.sibling",
        "json",
        "cnnatlas.maps",
        "cnnatlas.maps.get_method",
    }


@pytest.mark.parametrize("package", ["cnnatlas.plan"])
def test_the_planner_imports_no_drawing_code(package):
    """Everything the planner imports, transitively (in the library, at any depth of a
    module), stays clear of the drawing and torch modules and of the heavy packages."""
    names = _names()
    graph = _graph(names)
    reached = {m for m in graph if m == package or m.startswith(f"{package}.")}
    todo = list(reached)
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    drawing = sorted(
        m for m in reached if any(m == d or m.startswith(f"{d}.") for d in DRAWING)
    )
    assert drawing == [], f"{package} reaches {drawing}"
    heavy = sorted(
        f"{m} imports {n}"
        for m in reached
        for n in names[m]
        if n.split(".")[0] in HEAVY
    )
    assert heavy == []


def test_benchmarks_import_nothing_from_the_tests():
    """The tests may use the benchmarks' helpers (benchmarks/scale_data.py, ...), not
    the other way round; the library imports neither."""
    bench = LIB.parents[2] / "benchmarks"
    found = sorted(
        f"{p.name} imports {n}"
        for p in bench.glob("*.py")
        for n in imported_names(p, p.stem)
        if n.split(".")[0] == "tests"
    )
    assert found == []
    assert "scale" not in {p.stem for p in LIB.glob("*.py")}  # a benchmark tool
    names = _names()
    assert not [m for m in names if names[m] & {"benchmarks", "tests"}]
