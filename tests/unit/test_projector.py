import json
import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from cnnatlas.errors import CnnatlasError
from cnnatlas.projector import (
    CONFIG_FILE,
    EXPORT_FILE,
    escape_field,
    export_projector,
    pbtxt_string,
    reduced_dims,
    sprite_layout,
    stratified_sample,
    write_metadata_tsv,
    write_tensor_tsv,
)
from PIL import Image


@pytest.mark.parametrize("n", [1, 2, 30, 360, 1_000, 16_384, 100_000, 1_048_576])
def test_sprite_fits_the_projector_limit_without_sampling(n):
    keep, side = sprite_layout(n, thumbnail=64, min_thumbnail=8)
    assert keep == n
    assert 8 <= side <= 64
    assert math.ceil(math.sqrt(n)) * side <= 8192
    # one px more would not fit, unless capped by the thumbnail size
    assert side == 64 or math.ceil(math.sqrt(n)) * (side + 1) > 8192


def test_too_many_points_are_cut_to_what_fits_at_the_smallest_thumbnail():
    assert sprite_layout(1_048_577, 64, 8) == (1_048_576, 8)
    keep, side = sprite_layout(5_000, 32, 16, limit=256)
    assert (keep, side) == (256, 16)
    assert math.ceil(math.sqrt(keep)) * side <= 256


def test_stratified_sample_keeps_class_proportions_and_is_seeded():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    a = stratified_sample(labels, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100 and (np.diff(a) > 0).all()
    assert np.bincount(labels[a]).tolist() == [60, 30, 10]
    np.testing.assert_array_equal(a, stratified_sample(labels, 100, seed=3))
    assert not np.array_equal(a, stratified_sample(labels, 100, seed=4))
    np.testing.assert_array_equal(stratified_sample(labels, 5000, 0), np.arange(1000))


def test_escaped_fields_never_break_a_row(tmp_path):
    nasty = "a\tb\nc\\d\re"
    assert escape_field(nasty) == "a\\tb\\nc\\\\d\\re"
    df = pd.DataFrame({"label": [nasty, "ok"], "col\twith tab": ["x", None]})
    write_metadata_tsv(df, tmp_path / "m.tsv")
    lines = (tmp_path / "m.tsv").read_text().split("\n")
    assert lines[-1] == "" and len(lines) == 4
    assert [len(line.split("\t")) for line in lines[:3]] == [2, 2, 2]
    assert lines[1].split("\t")[0] == "a\\tb\\nc\\\\d\\re"
    assert lines[2] == "ok\t"


def test_tensor_tsv_round_trips_float32(tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * 1e3
    write_tensor_tsv(x, tmp_path / "t.tsv")
    back = np.loadtxt(tmp_path / "t.tsv", delimiter="\t", dtype=np.float32)
    np.testing.assert_array_equal(back, x)
    x[2, 3] = np.nan
    with pytest.raises(CnnatlasError, match="NaN"):
        write_tensor_tsv(x, tmp_path / "bad.tsv")


def test_pbtxt_strings_parse_back_in_the_projector_proto():
    text_format = pytest.importorskip("google.protobuf.text_format")
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    name = 'odd "name" \\ with\ttab\nnewline and ünïcode ✓'
    cfg = text_format.Parse(
        f"embeddings {{ tensor_name: {pbtxt_string(name)} }}", ProjectorConfig()
    )
    assert cfg.embeddings[0].tensor_name == name


@pytest.fixture
def run(tmp_path, imagefolder):
    """A manifest with a nasty metadata column, predictions and features of 30 images."""
    from cnnatlas.data import build_manifest

    paths = sorted(str(p) for p in imagefolder.rglob("*.png"))
    csv = tmp_path / "m.csv"
    pd.DataFrame(
        {
            "path": paths,
            "label": [p.split("/")[-2].replace("square", "sq\tuare") for p in paths],
            "note": [f"n{i}\ttab\nline" for i in range(len(paths))],
        }
    ).to_csv(csv, index=False)
    build_manifest(
        {"kind": "manifest", "path": str(csv)}, tmp_path / "manifest.parquet"
    )
    m = pd.read_parquet(tmp_path / "manifest.parquet")
    rng = np.random.default_rng(0)
    pred = m.assign(
        pred=m["label"],
        pred_name=m["label_name"],
        correct=True,
        confidence=rng.uniform(0.3, 1, len(m)),
    )
    pred.to_parquet(tmp_path / "predictions.parquet")
    feats = {}
    for layer, dim in (("conv", 8), ("fc", 16)):
        feats[layer] = tmp_path / f"{layer}.npy"
        np.save(feats[layer], rng.normal(size=(len(m), dim)).astype(np.float32))
    xy = pd.DataFrame({"image_id": m["image_id"], "x": rng.normal(size=len(m))})
    xy["y"] = rng.normal(size=len(m))
    xy.astype({"x": "float32", "y": "float32"}).to_parquet(tmp_path / "tsne-2d.parquet")
    return tmp_path, feats, m


def test_export_writes_one_entry_per_layer_and_map(run):
    tmp, feats, m = run
    out = tmp / "proj"
    maps = {"fc": [tmp / "tsne-2d.parquet"]}
    entries = export_projector(
        tmp / "predictions.parquet", tmp / "manifest.parquet", feats, out, maps
    )
    assert [(e.name, e.shape) for e in entries] == [
        ("conv", (30, 8)),
        ("fc", (30, 16)),
        ("fc tsne-2d", (30, 2)),
    ]
    for e in entries:
        t = np.loadtxt(out / e.tensor_path, delimiter="\t", dtype=np.float32)
        assert t.shape == e.shape
    np.testing.assert_array_equal(
        np.loadtxt(out / entries[1].tensor_path, delimiter="\t", dtype=np.float32),
        np.load(feats["fc"]),
    )
    rows = (out / "metadata.tsv").read_text().rstrip("\n").split("\n")
    header = rows[0].split("\t")
    assert header == [
        "label",
        "pred",
        "correct",
        "confidence",
        "path",
        "image_id",
        "note",
    ]
    assert len(rows) == 31 and all(len(r.split("\t")) == 7 for r in rows)
    assert "sq\\tuare" in (out / "metadata.tsv").read_text()
    with Image.open(out / "sprite.png") as im:
        assert im.size == (6 * 64, 6 * 64)
    assert (out / CONFIG_FILE).read_text().count("embeddings {") == 3


def test_export_samples_by_label_when_the_sprite_would_not_fit(run, caplog):
    tmp, feats, m = run
    out = tmp / "proj"
    entries = export_projector(
        tmp / "predictions.parquet", tmp / "manifest.parquet", feats, out,
        thumbnail=8, min_thumbnail=8, max_sprite_px=32,
    )  # fmt: skip
    assert "stratified sample of 16" in caplog.text
    assert entries[0].shape == (16, 8)
    meta = pd.read_csv(out / "metadata.tsv", sep="\t")
    assert len(meta) == 16
    ids = meta["image_id"].to_numpy()
    np.testing.assert_array_equal(
        np.loadtxt(out / entries[0].tensor_path, delimiter="\t", dtype=np.float32),
        np.load(feats["conv"])[ids],
    )
    assert sorted(np.bincount(m["label"].to_numpy()[ids]).tolist()) == [5, 5, 6]
    with Image.open(out / "sprite.png") as im:
        assert im.size == (32, 32)


def test_features_of_another_run_are_refused(run):
    tmp, feats, m = run
    np.save(feats["conv"], np.zeros((29, 8), np.float32))
    with pytest.raises(CnnatlasError, match="conv.npy.*30 images"):
        export_projector(
            tmp / "predictions.parquet", tmp / "manifest.parquet", feats, tmp / "p"
        )


def _tensor(out, entry) -> np.ndarray:
    return np.loadtxt(
        out / entry.tensor_path, delimiter="\t", dtype=np.float32, ndmin=2
    )


def test_a_layer_above_max_values_is_exported_as_its_principal_components(run, caplog):
    tmp, feats, m = run
    out = tmp / "proj"
    # 30 x 8 = 240 values fit 300; 30 x 16 = 480 do not: 300 // 30 = 10 components
    entries = export_projector(
        tmp / "predictions.parquet", tmp / "manifest.parquet", feats, out,
        {"fc": [tmp / "tsne-2d.parquet"]}, max_values=300, reduce="pca", pca_dims=12,
    )  # fmt: skip
    assert [(e.name, e.shape) for e in entries] == [
        ("conv", (30, 8)),
        ("fc (PCA 10 of 16)", (30, 10)),
        ("fc tsne-2d", (30, 2)),
    ]
    assert "exporting 'fc (PCA 10 of 16)'" in caplog.text
    np.testing.assert_array_equal(_tensor(out, entries[0]), np.load(feats["conv"]))
    scores = _tensor(out, entries[1]).astype(np.float64)
    x = np.load(feats["fc"]).astype(np.float64)
    x -= x.mean(0)
    eig = np.linalg.eigvalsh(np.cov(x.T))[::-1]
    # the columns are the top principal components: their variances are the top eigenvalues
    np.testing.assert_allclose(scores.var(0, ddof=1), eig[:10], rtol=1e-4)
    np.testing.assert_allclose(scores.T @ scores, np.diag(np.diag(scores.T @ scores)),
                               atol=1e-3 * eig[0] * 30)  # fmt: skip
    assert len(pd.read_csv(out / "metadata.tsv", sep="\t")) == 30
    record = json.loads((out / EXPORT_FILE).read_text())
    assert record["points"] == 30 and record["sampled"] is None
    assert [(t["name"], t["source_shape"], t["shape"], t["reduction"])
            for t in record["tensors"]] == [
        ("conv", [30, 8], [30, 8], None),
        ("fc (PCA 10 of 16)", [30, 16], [30, 10], "pca"),
    ]  # fmt: skip
    assert 'tensor_name: "fc (PCA 10 of 16)"' in (out / CONFIG_FILE).read_text()
    again = export_projector(
        tmp / "predictions.parquet", tmp / "manifest.parquet", feats, tmp / "again",
        max_values=300, pca_dims=12,
    )  # fmt: skip
    assert (tmp / "again" / again[1].tensor_path).read_bytes() == (
        out / entries[1].tensor_path
    ).read_bytes()


def test_sample_mode_exports_the_same_stratified_points_everywhere(run, caplog):
    tmp, feats, m = run
    out = tmp / "proj"
    # the widest layer has 16 dims: 160 // 16 = 10 points for every tensor
    entries = export_projector(
        tmp / "predictions.parquet", tmp / "manifest.parquet", feats, out,
        {"fc": [tmp / "tsne-2d.parquet"]}, max_values=160, reduce="sample", seed=3,
    )  # fmt: skip
    assert [(e.name, e.shape) for e in entries] == [
        ("conv", (10, 8)),
        ("fc", (10, 16)),
        ("fc tsne-2d", (10, 2)),
    ]
    assert "sample of 10 of 30 points" in caplog.text
    ids = pd.read_csv(out / "metadata.tsv", sep="\t")["image_id"].to_numpy()
    assert len(ids) == 10 and list(ids) == sorted(ids)
    np.testing.assert_array_equal(_tensor(out, entries[0]), np.load(feats["conv"])[ids])
    np.testing.assert_array_equal(_tensor(out, entries[1]), np.load(feats["fc"])[ids])
    xy = pd.read_parquet(tmp / "tsne-2d.parquet").sort_values("image_id")
    np.testing.assert_array_equal(
        _tensor(out, entries[2])[:, 0], xy["x"].to_numpy()[ids]
    )
    assert sorted(np.bincount(m["label"].to_numpy()[ids]).tolist()) == [3, 3, 4]
    with Image.open(out / "sprite.png") as im:
        assert im.size == (4 * 64, 4 * 64)  # ceil(sqrt(10)) thumbnails a row
    record = json.loads((out / EXPORT_FILE).read_text())
    assert record["points"] == 10 and "max_values" in record["sampled"]


def test_reduced_dims_keeps_fitting_layers_and_refuses_under_two_components():
    assert reduced_dims(50_000, 512, 50_000_000, 128) == 512
    assert reduced_dims(50_000, 2048, 50_000_000, 128) == 128
    assert reduced_dims(50_000, 2048, 50_000_000, 4096) == 1000
    assert reduced_dims(50_000, 2048, None, 128) == 2048
    assert reduced_dims(30, 64, 1_000, 128) == 30  # no more components than points
    with pytest.raises(CnnatlasError, match="projector.max_values.*reduce: sample"):
        reduced_dims(50_000, 2048, 60_000, 128)


def test_export_reads_one_layer_at_a_time(run):
    """Peak traced memory stays near one layer while four layers are exported."""
    tmp, feats, m = run
    big = {f"l{i}": tmp / f"l{i}.npy" for i in range(4)}
    for i, path in enumerate(big.values()):
        np.save(path, np.full((len(m), 6_000), i, np.float32))
    layer_bytes = len(m) * 6_000 * 4
    tracemalloc.start()
    try:
        export_projector(
            tmp / "predictions.parquet", tmp / "manifest.parquet", big, tmp / "proj",
            thumbnail=8, max_values=None,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one layer's copy, its finite-check mask, the TSV writer's row strings: about 2.1;
    # loading all four layers first would need at least 4
    assert layer_bytes < peak < 3 * layer_bytes
