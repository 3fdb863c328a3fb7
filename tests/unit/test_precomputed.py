"""Features extracted elsewhere (`features_from`): the folder's checks, row order, the
import's files (the forward pass's, byte for byte) and the planner's choices."""

import copy
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from cnnatlas.data import build_manifest
from cnnatlas.errors import CnnatlasError
from cnnatlas.extract import extract, import_features
from cnnatlas.plan import Plan
from cnnatlas.precomputed import (
    PROBS_MIN,
    complete_models,
    copy_rows,
    dataset_root,
    open_folder,
    read_logits,
    row_order,
)
from cnnatlas.provenance import sha256_file
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config.yaml").read_text())
KEY = "models.m.features_from.c"
TF = {"resize": 32, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
LAYERS = {"layer3": "avg", "avgpool": "flatten"}


def write_folder(folder: Path, n: int = 6, d: int = 4, k: int = 3, **arrays) -> Path:
    """An import folder of random float64 arrays: layers a and b, logits (or `arrays`)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    default = {"a": rng.normal(size=(n, d)), "b": rng.normal(size=(n, 2 * d))}
    default["logits"] = rng.normal(size=(n, k))
    for name, array in (default | arrays).items():
        if array is not None:
            np.save(folder / f"{name}.npy", array)
    return folder


def test_a_folder_is_read_as_memmaps_with_its_rows(tmp_path):
    f = open_folder(write_folder(tmp_path), ["a", "b"], KEY)
    assert f.n == 6 and not f.probs and f.paths is None
    assert isinstance(f.layers["a"], np.memmap) and f.layers["b"].shape == (6, 8)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"b": None}, r"b\.npy does not exist: .*models\.m\.features_from\.c"),
        ({"logits": None}, r"logits\.npy does not exist.*logits\.npy or probs\.npy"),
        ({"probs": np.ones((6, 3))}, "both logits.npy and probs.npy"),
        ({"a": np.zeros(6)}, r"a\.npy: a 1-D float64 array, not a 2-D float array"),
        ({"a": np.zeros((6, 2), np.int64)}, "int64 array, not a 2-D float"),
        ({"a": np.zeros((5, 2))}, r"a\.npy has 5 rows but logits\.npy has 6"),
    ],
)
def test_format_errors_name_the_file_and_the_key(tmp_path, arrays, match):
    folder = write_folder(tmp_path, **arrays)
    with pytest.raises(CnnatlasError, match=match) as err:
        open_folder(folder, ["a", "b"], KEY)
    assert KEY in str(err.value) or "logits" in str(err.value)


def test_a_missing_folder_names_the_key(tmp_path):
    with pytest.raises(CnnatlasError, match=f"{KEY}: .* is not a folder"):
        open_folder(tmp_path / "nowhere", ["a"], KEY)


def test_without_paths_rows_are_the_manifest_in_order(tmp_path):
    f = open_folder(write_folder(tmp_path), ["a"], KEY)
    paths = [f"x/{i}.png" for i in range(6)]
    assert row_order(f, paths, KEY).tolist() == list(range(6))
    with pytest.raises(CnnatlasError, match=r"logits\.npy has 6 rows but the manif"):
        row_order(f, paths[:5], KEY)


def test_paths_reorder_rows_and_extra_rows_are_dropped_with_a_warning(tmp_path, caplog):
    folder = write_folder(tmp_path)
    (folder / "paths.txt").write_text("\n".join(["c", "a", "z", "b", "y", "d"]) + "\n")
    f = open_folder(folder, ["a"], KEY)
    with caplog.at_level(logging.WARNING):
        order = row_order(f, ["a", "b", "c", "d"], KEY)
    assert order.tolist() == [1, 3, 0, 5]
    assert "2 rows of images that are not in the manifest are left out" in caplog.text


@pytest.mark.parametrize("root", ["data/val", "data/val/", "./data/val"])
def test_paths_are_relative_to_the_dataset_root_or_as_the_manifest_stores_them(
    tmp_path, root
):
    folder = write_folder(tmp_path, n=3)
    (folder / "paths.txt").write_text("b/2.png\ndata/val/a/1.png\n/abs/c.png\n")
    manifest = ["data/val/a/1.png", "data/val/b/2.png", "/abs/c.png"]
    f = open_folder(folder, ["a"], KEY)
    assert row_order(f, manifest, KEY, root).tolist() == [1, 0, 2]
    assert dataset_root({"kind": "imagefolder", "path": "data/val"}) == "data/val"
    assert dataset_root({"kind": "manifest", "path": "data/val.csv"}) == "data"


def test_paths_missing_images_are_listed(tmp_path):
    folder = write_folder(tmp_path)
    (folder / "paths.txt").write_text("\n".join("abcdef"))
    f = open_folder(folder, ["a"], KEY)
    with pytest.raises(
        CnnatlasError, match=r"lacks 2 of the manifest's 7 .*\['g', 'h'\]"
    ):
        row_order(f, list("abcdegh"), KEY, root="data")


def test_paths_must_have_one_line_per_row(tmp_path):
    folder = write_folder(tmp_path)
    (folder / "paths.txt").write_text("a\nb\n")
    with pytest.raises(CnnatlasError, match=r"paths\.txt lists 2 paths but .* 6 rows"):
        open_folder(folder, ["a"], KEY)


def test_probabilities_become_clipped_log_logits(tmp_path):
    probs = np.array([[0.7, 0.3, 0.0], [0.2, 0.5, 0.3]])
    f = open_folder(write_folder(tmp_path, n=2, logits=None, probs=probs), ["a"], KEY)
    logits = read_logits(f, np.array([1, 0]))
    assert f.probs and logits.dtype == np.float32
    expected = np.log(np.maximum(probs[[1, 0]], PROBS_MIN)).astype(np.float32)
    np.testing.assert_array_equal(logits, expected)
    np.testing.assert_array_equal(read_logits(f, np.array([1, 0]), rows=1), expected)
    soft = torch.softmax(torch.from_numpy(logits).double(), 1).numpy()
    np.testing.assert_allclose(soft, probs[[1, 0]], atol=1e-10)


@pytest.mark.parametrize("order", [np.arange(10), np.arange(10)[::-1].copy()])
@pytest.mark.parametrize("rows", [1, 3, 64])
def test_block_copy_equals_fancy_indexing_as_float32(tmp_path, order, rows):
    source = np.random.default_rng(1).normal(size=(10, 5))  # float64
    np.save(tmp_path / "s.npy", source)
    out = np.zeros((10, 5), np.float32)
    copy_rows(np.load(tmp_path / "s.npy", mmap_mode="r"), order, out, rows=rows)
    np.testing.assert_array_equal(out, source[order].astype(np.float32))


def test_complete_models_fills_checkpoints_and_names_a_checkpoint_without_folder():
    models = {"m": {"features_from": {"a": "fa", "b": "fb"}, "layers": {"x": "avg"}}}
    complete_models(models)
    assert models["m"]["checkpoints"] == {"a": "fa", "b": "fb"}
    models["m"]["checkpoints"] = {"a": "w.pt", "c": "w.pt", "b": "w.pt"}
    with pytest.raises(CnnatlasError, match=r"models\.m\.features_from\.c: checkpoint"):
        complete_models(models)
    models["m"]["checkpoints"] = {"a": "w.pt"}
    with pytest.raises(CnnatlasError, match=r"features_from\.b: 'b' is not a checkp"):
        complete_models(models)


# --- the import writes what the forward pass writes ---


@pytest.fixture(scope="module")
def network_run(imagefolder, tmp_path_factory):
    """A forward pass of a random-init resnet18: its manifest, outputs and logits."""
    out = tmp_path_factory.mktemp("network")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=3)
    manifest = out / "manifest.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, manifest)
    layers = LAYERS | {"fc": "avg"}  # fc's features are the logits
    extract(manifest, model, layers, out / "p.parquet", out / "features", TF, topk=2)
    return out


def _export(run: Path, folder: Path, probs: bool = False) -> Path:
    """The network run's features, in the import format, rows shuffled (paths.txt)."""
    paths = pd.read_parquet(run / "manifest.parquet")["path"].tolist()
    perm = np.random.default_rng(3).permutation(len(paths))
    folder.mkdir()
    for layer in LAYERS:
        np.save(
            folder / f"{layer}.npy", np.load(run / "features" / f"{layer}.npy")[perm]
        )
    logits = np.load(run / "features" / "fc.npy")[perm]
    if probs:
        np.save(folder / "probs.npy", torch.softmax(torch.from_numpy(logits), 1))
    else:
        np.save(folder / "logits.npy", logits.astype(np.float64))
    (folder / "paths.txt").write_text("".join(paths[i] + "\n" for i in perm))
    return folder


def _import(run: Path, folder: Path, out: Path, **kw) -> None:
    import_features(
        run / "manifest.parquet", folder, list(LAYERS), out / "p.parquet",
        out / "features", out / "imported.json", topk=2, key=KEY, **kw,
    )  # fmt: skip


def test_import_writes_the_forward_pass_files(network_run, tmp_path):
    folder = _export(network_run, tmp_path / "folder")
    _import(network_run, folder, tmp_path, num_classes=3)
    for layer in LAYERS:
        a, b = network_run / "features" / f"{layer}.npy", tmp_path / "features"
        assert sha256_file(a) == sha256_file(b / f"{layer}.npy")
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == sorted(
        f"{layer}.npy" for layer in LAYERS
    )
    # the fc features are the network's float32 logits: the same predictions
    assert sha256_file(network_run / "p.parquet") == sha256_file(tmp_path / "p.parquet")
    record = json.loads((tmp_path / "imported.json").read_text())
    assert record["folder"] == str(folder)
    assert set(record["files"]) == {
        "layer3.npy",
        "avgpool.npy",
        "logits.npy",
        "paths.txt",
    }
    assert record["files"]["paths.txt"] == sha256_file(folder / "paths.txt")


def test_import_of_probabilities_predicts_the_same(network_run, tmp_path):
    _import(
        network_run, _export(network_run, tmp_path / "folder", probs=True), tmp_path
    )
    a, b = (
        pd.read_parquet(network_run / "p.parquet"),
        pd.read_parquet(tmp_path / "p.parquet"),
    )
    assert a.columns.tolist() == b.columns.tolist()
    assert (a["pred"] == b["pred"]).all() and (a["correct"] == b["correct"]).all()
    np.testing.assert_allclose(np.stack(a["probs"]), np.stack(b["probs"]), atol=1e-6)


def test_import_checks_the_number_of_outputs(network_run, tmp_path):
    folder = _export(network_run, tmp_path / "folder")
    with pytest.raises(CnnatlasError, match="3 outputs per image but models.model.num"):
        _import(network_run, folder, tmp_path, num_classes=10)


# --- the planner ---


def plan_of(models: dict, **config) -> Plan:
    dataset = {"kind": "imagefolder", "path": "data"}
    config = copy.deepcopy({"dataset": dataset, "models": models, **config})
    validate(config, SCHEMA)
    return Plan(config)


IMPORTED = {"features_from": {"a": "fa", "b": "fb"}, "layers": {"fc1": "avg"}}


def test_schema_needs_no_network_for_an_imported_model():
    plan = plan_of({"net": DEMO["models"]["digitnet"], "ext": IMPORTED})
    assert plan.models["ext"]["checkpoints"] == {"a": "fa", "b": "fb"}
    with pytest.raises(Exception, match="'arch' is a required property"):
        plan_of({"ext": {"layers": {"fc1": "avg"}, "checkpoints": {"a": "x.pt"}}})


def test_the_planner_imports_imported_models_and_extracts_the_others():
    plan = plan_of({"net": DEMO["models"]["digitnet"], "ext": IMPORTED})
    assert plan.extract.models(imported=True) == "ext"
    assert plan.extract.models(imported=False) == "net"
    assert plan_of({"ext": IMPORTED}).extract.models(imported=False) == "(?!)"
    files = plan.checkpoint_files()
    assert files["ext/a"] == plan.extract.record("ext", "a")
    assert files["ext/a"].endswith("ext/a/imported.json")
    assert files["net/step0005"].endswith(".pt")
    wc = SimpleNamespace(model="ext", ckpt="b")
    assert plan.extract.import_folder(wc) == "fb"
    assert plan.extract.import_key(wc) == "models.ext.features_from.b"
    # explained: only the network's checkpoints
    assert {m for m, _ in plan.explain.explained()} == {"net"}


@pytest.mark.parametrize(
    "kind", ["saliency", "filters", "saliency_curves", "saliency_randomisation"]
)
def test_paper_kinds_that_need_the_network_refuse_an_imported_model(kind):
    figure = {"kind": kind, "model": "ext", "checkpoint": "a", "layer": "fc1"}
    with pytest.raises(ValueError, match=f"paper.figures.f.kind: {kind} needs the net"):
        plan_of({"ext": IMPORTED}, paper={"figures": {"f": figure}})
