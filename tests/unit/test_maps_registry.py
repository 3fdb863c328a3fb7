"""The registry of map methods and the files derived from it."""

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest
from cnnatlas.maps import (
    AXES,
    MapSpec,
    get_method,
    map_fields,
    map_name,
    map_values,
    methods,
    packages,
    parse_map_name,
    read_spec,
)
from cnnatlas.maps._sync import FILES, expected, stale
from cnnatlas.schema import defaults, load_schema, section

REPO = Path(__file__).resolve().parents[2]


def test_every_method_module_is_registered_and_well_formed():
    found = methods()
    assert {"tsne", "pca", "umap"} <= set(found)
    for name, method in found.items():
        assert method.name == name
        assert set(method.axes) <= set(AXES), name
        assert method.packages and callable(method.fit)
        for package in method.packages:  # the registry names real distributions
            try:
                version(package)
            except PackageNotFoundError:
                pytest.fail(f"{name} needs {package}, which is not installed")
    with pytest.raises(ValueError, match="unknown map method 'nope'; expected one of"):
        get_method("nope")


@pytest.mark.parametrize("name", sorted(methods()))
def test_each_method_has_a_schema_block_whose_options_all_have_defaults(name):
    block = section(f"maps.{name}")
    assert block["type"] == "object" and block["default"] == {}
    assert block.get("additionalProperties") is False
    props = block.get("properties", {})
    assert all("default" in p for p in props.values()), name
    assert get_method(name).options() == defaults(f"maps.{name}")


def test_schema_enums_envs_and_pyproject_agree_with_the_registry():
    assert stale() == [], "run: PYTHONPATH=workflow/scripts python -m cnnatlas.maps"
    schema = load_schema()["$defs"]
    assert schema["map_method"]["enum"] == list(methods())
    evolving = [n for n, m in methods().items() if m.evolve is not None]
    assert schema["evolution_method"]["enum"] == evolving
    env = (REPO / "envs/reduce.yaml").read_text().lower()
    pyproject = (REPO / "pyproject.toml").read_text().lower()
    for name, spec in packages().items():
        assert f"- {name.lower()}{spec}" in env
        assert f'"{name.lower()}{spec}"' in pyproject


def test_sync_adds_a_missing_package_and_the_check_command_fails_on_it(tmp_path):
    env = (REPO / "envs/reduce.yaml").read_text()
    assert expected("envs/reduce.yaml") == env
    name = next(iter(sorted(n for n in packages() if n.lower() not in ("numpy",))))
    without = "".join(
        line for line in env.splitlines(keepends=True) if name.lower() not in line
    )
    assert FILES["envs/reduce.yaml"](without).count(name.lower()) == 1
    check = subprocess.run(
        [sys.executable, "-m", "cnnatlas.maps", "--check"],
        cwd=REPO / "workflow/scripts",
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "map methods:" in check.stdout


@pytest.mark.parametrize("name", sorted(methods()))
def test_each_method_maps_blobs_reproducibly_with_its_defaults(name):
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(0, 5, (3, 12)), 20, axis=0) + rng.normal(0, 1, (60, 12))
    method = get_method(name)
    spec = method.spec(2, perplexity=5.0, seed=1)
    options = {"n_iter": 50, "early_exaggeration_iter": 20} if name == "tsne" else {}
    options = {k: v for k, v in options.items() if k in method.options()}
    runs = [list(method.maps(x.astype(np.float32), [spec], options)) for _ in range(2)]
    (got_spec, coords, params), (_, again, _) = runs[0][0], runs[1][0]
    assert got_spec == spec and coords.shape == (60, 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords, again)
    assert set(params["versions"]) == set(method.packages)


def test_a_sweep_point_is_typed_from_the_methods_axes():
    tsne, pca, umap = (get_method(m) for m in ("tsne", "pca", "umap"))
    config = {"dims": [2, 3], "perplexities": [10, 7.5], "seeds": [0, 1]}
    assert tsne.sweep(config)[:3] == [
        MapSpec(2, 10.0, 0),
        MapSpec(2, 10.0, 1),
        MapSpec(2, 7.5, 0),
    ]
    assert pca.sweep(config) == [MapSpec(2), MapSpec(3)]  # no axis: None, not 0
    assert umap.sweep(config)[:2] == [MapSpec(2, None, 0), MapSpec(2, None, 1)]
    # wildcard strings are read; values of an axis the method lacks are dropped
    assert tsne.spec("3", "30", "1") == MapSpec(3, 30.0, 1)
    assert pca.spec(2, 30.0, 1) == MapSpec(2)


@pytest.mark.parametrize(
    "method, spec, name, fields",
    [
        ("tsne", MapSpec(2, 30.0, 0), "tsne-2d-p30-s0", (2, 30.0, 0)),
        ("tsne", MapSpec(3, 7.5, 1), "tsne-3d-p7.5-s1", (3, 7.5, 1)),
        ("pca", MapSpec(2), "pca-2d-p0-s0", (2, 0.0, 0)),
        ("umap", MapSpec(3, None, 1), "umap-3d-p0-s1", (3, 0.0, 1)),
        ("pacmap", MapSpec(2, None, 4), "pacmap-2d-p0-s4", (2, 0.0, 4)),
    ],
)
def test_a_sweep_point_is_spelled_and_read_back_in_one_place(
    method, spec, name, fields
):
    assert map_name(method, spec) == name
    assert tuple(map_fields(spec).values()) == fields
    assert parse_map_name(name) == (method, spec)
    # from wildcards (strings) and from the metadata a map records (numbers)
    wildcards = dict(zip(("dim", "perplexity", "seed"), map_values(spec), strict=True))
    assert read_spec(method, wildcards) == spec
    assert read_spec(method, {"method": method, **map_fields(spec)}) == spec


def test_a_name_the_workflow_does_not_write_is_refused():
    with pytest.raises(ValueError, match="not a map name"):
        parse_map_name("tsne-2d-s0")
    with pytest.raises(ValueError, match="not a name the workflow writes for pca"):
        parse_map_name("pca-2d-p30-s0")


@pytest.mark.parametrize(
    "method, long, short",
    [
        ("tsne", "perplexity 30, seed 1", "p30 s1"),
        ("umap", "seed 1", "s1"),
        ("pacmap", "seed 1", "s1"),
        ("pca", "", ""),
    ],
)
def test_a_label_names_only_the_axes_of_its_method(method, long, short):
    spec = get_method(method).spec(2, 30.0, 1)
    assert spec.label() == long and spec.label(short=True) == short
