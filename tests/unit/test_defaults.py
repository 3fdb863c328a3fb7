"""The schema is the one place a default is written: no function of the library restates
one as a keyword default (`k: int = 10` beside `maps.metrics.k: 10`), where it would
silently disagree with the workflow once the schema's default changes. The settings
come from the caller; the few defaults of the Python API that the docs show are listed
in ALLOWED and held equal to the schema's."""

import ast
from pathlib import Path
from typing import Any

import pytest
from cnnatlas import schema

LIBRARY = Path(schema.__file__).parent

# (function, parameter): the schema keys whose default the keyword default equals.
# Public API that the docs (docs/maps.md, "Using the pieces") show being called from
# Python with these left out.
ALLOWED = {
    ("prepare_features", "standardize"): (
        "maps.tsne.standardize",
        "maps.pca.standardize",
        "maps.umap.standardize",
        "maps.pacmap.standardize",
    ),
    ("prepare_features", "pca_components"): (
        "maps.tsne.pca_components",
        "maps.umap.pca_components",
        "maps.pacmap.pca_components",
    ),
    ("tsne_affinities", "metric"): ("maps.tsne.metric",),
    ("tsne_affinities", "neighbors"): ("maps.tsne.neighbors",),
}


def schema_defaults(node: dict[str, Any] | None = None, path: str = "") -> dict:
    """{dotted key: default} of every key of the schema that has one (`*` steps into
    additionalProperties, `[]` into array items, as `schema.section` spells them)."""
    node = schema._resolve(schema.load_schema() if node is None else node)
    out = {path: node["default"]} if path and "default" in node else {}
    children = [
        (f"{path}.{k}".lstrip("."), v) for k, v in node.get("properties", {}).items()
    ]
    for key, step in (("additionalProperties", "*"), ("items", "[]")):
        if isinstance(node.get(key), dict):
            children.append((f"{path}.{step}".lstrip("."), node[key]))
    children += [
        (path, sub) for way in ("oneOf", "anyOf", "allOf") for sub in node.get(way, [])
    ]
    for child_path, child in children:
        out.update(schema_defaults(child, child_path))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: 5 == 5.0 and (1, 2) == [1, 2], but True is not 1."""
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    return type(a) is type(b) and a == b


def _keyword_defaults(node: ast.AST):
    """(parameter, default node) of a function's parameters that have a default."""
    a = node.args
    positional = a.posonlyargs + a.args
    yield from zip(
        positional[len(positional) - len(a.defaults) :], a.defaults, strict=True
    )
    yield from (
        (p, d)
        for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
        if d is not None
    )


def restated(source: str, defaults: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(function, parameter, schema key, line) of every keyword default in `source` whose
    parameter is named as the last part of a schema key and whose value (a literal)
    equals that key's default. None is left out: a None default means "not given" and is
    resolved in the function, so it holds no setting of its own."""
    by_name: dict[str, list[tuple[str, Any]]] = {}
    for key, value in defaults.items():
        by_name.setdefault(key.rsplit(".", 1)[-1], []).append((key, value))
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for param, default in _keyword_defaults(node):
            try:
                value = ast.literal_eval(default)
            except ValueError:
                continue  # a name or a call (`default("extract.device")`)
            if value is None:
                continue
            for key, schema_value in by_name.get(param.arg, []):
                if _same(value, schema_value):
                    name = getattr(node, "name", "<lambda>")
                    found.append((name, param.arg, key, default.lineno))
    return found


def _library() -> dict[str, str]:
    return {
        str(p.relative_to(LIBRARY)): p.read_text(encoding="utf-8")
        for p in sorted(LIBRARY.rglob("*.py"))
    }


def test_no_library_default_restates_the_schema():
    defaults = schema_defaults()
    offending = [
        f"{path}:{line} {func}({param}=...) restates {key}"
        for path, source in _library().items()
        for func, param, key, line in restated(source, defaults)
        if (func, param) not in ALLOWED
    ]
    assert not offending, "\n".join(offending)


def test_allowed_defaults_equal_the_schema_and_are_still_there():
    defaults = schema_defaults()
    found: dict[tuple[str, str], set[str]] = {}
    for source in _library().values():
        for func, param, key, _ in restated(source, defaults):
            found.setdefault((func, param), set()).add(key)
    for entry, keys in ALLOWED.items():
        # every listed key matched: the default equals each one's schema default
        assert set(keys) <= found.get(entry, set()), (entry, keys)


def test_the_checker_finds_a_restated_default_added_to_metrics():
    defaults = schema_defaults()
    metrics = _library()["metrics.py"]
    assert not restated(metrics, defaults)
    added = metrics + "\n\ndef recall(x, y, k: int = 10, *, folds=5):\n    return x\n"
    assert [found[:3] for found in restated(added, defaults)] == [
        ("recall", "k", "maps.metrics.k"),
        ("recall", "folds", "maps.metrics.folds"),
    ]
    # another value, another name or a default read from the schema pass
    for fine in ("k: int = 5", "neighbours: int = 10", 'k: int = default("maps.k")'):
        assert not restated(f"def f(x, {fine}):\n    pass\n", defaults)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("maps.metrics.k", 10),
        ("explain.filters.steps", 256),
        ("models.*.transform.channels", 3),
        ("paper.figures.*.width", "double"),
    ],
)
def test_schema_defaults_are_read_at_every_depth(key, value):
    assert schema_defaults()[key] == value == schema.default(key)
