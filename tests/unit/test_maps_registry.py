"""The registry of map methods and the files derived from it."""

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pytest
from cnnatlas.maps import AXES, MapSpec, get_method, methods, packages
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
    block = section("maps", name)
    assert block["type"] == "object" and block["default"] == {}
    assert block.get("additionalProperties") is False
    props = block.get("properties", {})
    assert all("default" in p for p in props.values()), name
    assert get_method(name).options() == defaults("maps", name)


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
    axes = {"perplexity": 5.0, "seed": 1}
    spec = MapSpec(2, *(axes[a] if a in method.axes else 0 for a in AXES))
    options = {"n_iter": 50, "early_exaggeration_iter": 20} if name == "tsne" else {}
    options = {k: v for k, v in options.items() if k in method.options()}
    runs = [list(method.maps(x.astype(np.float32), [spec], options)) for _ in range(2)]
    (got_spec, coords, params), (_, again, _) = runs[0][0], runs[1][0]
    assert got_spec == spec and coords.shape == (60, 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    np.testing.assert_array_equal(coords, again)
    assert set(params["versions"]) == set(method.packages)
