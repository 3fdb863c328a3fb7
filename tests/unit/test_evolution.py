import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.errors import CnnatlasError
from cnnatlas.evolution import (
    META_KEY,
    alignment_table,
    disparity,
    displacement,
    evolve_layer,
    read_evolution,
)
from cnnatlas.evolution_plots import (
    frame_positions,
    plot_strip,
    render_evolution,
    slider_figure,
)
from cnnatlas.io import read_parquet_meta
from cnnatlas.maps import get_method
from cnnatlas.maps.toolbox import procrustes_align
from cnnatlas.plots import class_styles
from PIL import Image

FAST = {"n_iter": 150, "early_exaggeration_iter": 100}


def drifted(n=240, d=20, steps=3, seed=0, drift=0.6):
    """Features of the same points at `steps` checkpoints: clusters that move, noise that
    grows and feature directions re-weighted, so each checkpoint's PCA axes differ."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, n)
    centers = rng.normal(0, 4, (6, d))
    noise = rng.normal(size=(n, d))
    out = []
    for _ in range(steps):
        centers = centers + rng.normal(0, 2 * drift, centers.shape)
        noise = noise + rng.normal(0, drift, noise.shape)
        scale = np.exp(rng.normal(0, drift, d))
        out.append(((centers[labels] + noise) * scale).astype(np.float32))
    return out, labels


@pytest.fixture(scope="module")
def series():
    return drifted()


@pytest.fixture(scope="module")
def tsne(series):
    xs, _ = series
    return get_method("tsne").evolution(xs, 20, 0, FAST)


def test_aligned_tsne_moves_points_far_less_than_independent_maps(tsne):
    aligned, independent = tsne
    np.testing.assert_array_equal(aligned[0], independent[0])  # both start from PCA
    t = alignment_table("tsne", ["a", "b", "c"], aligned, independent)
    assert len(t) == 4
    mean = t.groupby("kind")[["displacement", "disparity"]].mean()
    assert (
        mean.loc["aligned", "displacement"]
        < 0.5 * mean.loc["independent", "displacement"]
    )
    assert mean.loc["aligned", "disparity"] < 0.5 * mean.loc["independent", "disparity"]


def test_aligned_pca_removes_rotations_and_reflections(series):
    xs, _ = series
    aligned, independent = get_method("pca").evolution(xs, 30, 0)
    t = alignment_table("pca", ["a", "b", "c"], aligned, independent)
    a, i = (t[t.kind == k].reset_index() for k in ("aligned", "independent"))
    assert (a["displacement"] < 0.8 * i["displacement"]).all()
    # the disparity allows rotations, so Procrustes alignment cannot change it
    np.testing.assert_allclose(a["disparity"], i["disparity"], rtol=1e-6)


def test_tsne_evolution_is_reproducible_with_a_seed(series, tsne):
    xs, _ = series
    again, _ = get_method("tsne").evolution(xs[:2], 20, 0, FAST)
    np.testing.assert_array_equal(again[0], tsne[0][0])
    np.testing.assert_array_equal(again[1], tsne[0][1])


def test_procrustes_recovers_a_rotated_reflected_shifted_map():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(50, 2)).astype(np.float32)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref @ rot) * [-1, 1] + [5, -3]
    np.testing.assert_allclose(procrustes_align(ref, moved), ref, atol=1e-5)
    assert displacement(ref, moved) > 0.5
    assert disparity(ref, moved) < 1e-10


def test_evolve_layer_writes_maps_in_checkpoint_order(tmp_path, series):
    xs, _ = series
    files = {}
    for name, x in zip(["late", "early"], xs[:2], strict=True):  # order is the config's
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], x)
    table = evolve_layer(
        files, "pca", tmp_path / "maps", tmp_path / "align.parquet", 30, 0
    )
    assert table[["from_ckpt", "to_ckpt"]].drop_duplicates().values.tolist() == [
        ["late", "early"]
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "align.parquet"), table)
    df = pd.read_parquet(tmp_path / "maps" / "early.parquet")
    assert list(df.columns) == ["image_id", "x", "y"] and len(df) == len(xs[0])
    assert df["x"].dtype == np.float32
    meta = json.loads(read_parquet_meta(tmp_path / "maps" / "early.parquet")[META_KEY])
    assert meta["order"] == 1 and meta["ckpts"] == ["late", "early"]
    maps = read_evolution(tmp_path / "maps", ["late", "early"])
    np.testing.assert_allclose(
        maps[1],
        procrustes_align(maps[0], get_method("pca").evolution(xs[1:2], 30, 0)[0][0]),
        atol=1e-4,
    )


def test_evolve_layer_refuses_bad_inputs(tmp_path, series):
    xs, _ = series
    np.save(tmp_path / "a.npy", xs[0])
    np.save(tmp_path / "b.npy", xs[1][:-1])
    with pytest.raises(CnnatlasError, match="at least 2 checkpoints"):
        evolve_layer(
            {"a": tmp_path / "a.npy"}, "pca", tmp_path / "m", tmp_path / "t.pq", 30, 0
        )
    with pytest.raises(CnnatlasError, match="same manifest"):
        evolve_layer({"a": tmp_path / "a.npy", "b": tmp_path / "b.npy"}, "pca",
                     tmp_path / "m", tmp_path / "t.pq", 30, 0)  # fmt: skip


def test_frame_positions_hold_at_checkpoints_and_interpolate_between():
    a, b = np.zeros((3, 2)), np.ones((3, 2))
    steps = frame_positions([a, b], frames=3, hold=2)
    assert [pos for _, pos in steps] == [0, 0, 0.25, 0.5, 0.75, 1, 1]
    np.testing.assert_allclose(steps[3][0], 0.5)
    np.testing.assert_array_equal(steps[-1][0], b)


@pytest.fixture
def rendered_inputs(tmp_path, series):
    xs, labels = series
    n = len(labels)
    classes = [f"class {i}" for i in range(6)]
    from cnnatlas.data import write_manifest

    man = pd.DataFrame({"image_id": np.arange(n), "path": [f"{i}.png" for i in range(n)],
                        "label": labels.astype(np.int64),
                        "label_name": [classes[i] for i in labels]})  # fmt: skip
    write_manifest(man, tmp_path / "manifest.parquet", classes)
    preds = {}
    for c in ("a", "b", "c"):
        preds[c] = tmp_path / f"pred-{c}.parquet"
        man.assign(pred_name=man["label_name"], confidence=0.5).to_parquet(preds[c])
    aligned, _ = get_method("pca").evolution(xs, 30, 0)
    maps = tmp_path / "maps"
    maps.mkdir()
    for c, xy in zip("abc", aligned, strict=True):
        pd.DataFrame(
            {"image_id": np.arange(n), "x": xy[:, 0], "y": xy[:, 1]}
        ).to_parquet(maps / f"{c}.parquet")
    return tmp_path, preds, aligned, labels


def _render(root, preds, out):
    render_evolution(root / "maps", ["a", "b", "c"], root / "manifest.parquet", preds,
                     out / "strip.png", out / "strip.pdf", out / "anim.gif",
                     out / "slider.html", title="layer", frames=4, fps=4)  # fmt: skip


def test_render_writes_strip_gif_and_slider_with_the_same_bytes_twice(rendered_inputs):
    root, preds, aligned, labels = rendered_inputs
    for out in (root / "one", root / "two"):
        _render(root, preds, out)
    for name in ("strip.png", "strip.pdf", "anim.gif", "slider.html"):
        assert (root / "one" / name).read_bytes() == (
            root / "two" / name
        ).read_bytes(), name
    with Image.open(root / "one" / "strip.png") as im:
        w, h = im.size
        assert w == round(3 * 2.6 * 110)  # three 2.6-inch panels side by side, 110 dpi
        assert h < w / 1.5
    with Image.open(root / "one" / "anim.gif") as im:
        # 2 held frames at each of 3 checkpoints + 4 between each pair (PIL merges the
        # identical held frames into one longer frame)
        assert 3 + 2 * 4 <= im.n_frames <= 3 * 2 + 2 * 4
    html = (root / "one" / "slider.html").read_text()
    assert '<script src="http' not in html and "plotly.js" in html.lower()


def _coloured_columns(panel: np.ndarray) -> np.ndarray:
    """Columns of a panel's plot area holding saturated (class-coloured) pixels."""
    rgb = panel[:, :, :3].astype(int)
    saturated = rgb.max(axis=2) - rgb.min(axis=2) > 60
    return np.flatnonzero(saturated.any(axis=0))


def test_a_collapsed_checkpoint_is_spread_over_its_strip_panel(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    late = rng.normal(size=(120, 2)) * 10 + labels[:, None] * 15
    early = late.mean(axis=0) + late / 200  # all within 1% of the frame
    png = tmp_path / "strip.png"
    plot_strip([early, late], ["step0005", "step0100"], labels, ["a", "b", "c"], png)
    with Image.open(png) as im:
        img = np.asarray(im.convert("RGB"))
    h, w = img.shape[:2]
    body = img[: int(h * 0.75)]  # the legend's markers sit below
    first = _coloured_columns(body[:, : w // 2])
    # spread over at least a third of the panel, not one dot
    assert first.max() - first.min() > w // 2 / 3


def test_slider_figure_has_one_frame_per_checkpoint_with_every_point(rendered_inputs):
    root, preds, aligned, labels = rendered_inputs
    hovers = [[f"p{i}" for i in range(len(labels))]] * 3
    fig = slider_figure(
        aligned, ["a", "b", "c"], labels, [f"c{i}" for i in range(6)], hovers
    )
    assert [f.name for f in fig.frames] == ["a", "b", "c"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["a", "b", "c"]
    for frame, xy in zip(fig.frames, aligned, strict=True):
        assert sum(len(t.x) for t in frame.data) == len(labels)
        t0 = frame.data[0]
        np.testing.assert_allclose(t0.x, xy[labels == 0, 0])
        # every class in the atlas-wide colour and marker of the static figures
        styles = class_styles([f"c{i}" for i in range(6)])
        assert [t.marker.color for t in frame.data] == [st.colour for st in styles]
        assert frame.data[1].marker.symbol == "square" and styles[1].marker == "s"


@pytest.fixture(scope="module")
def demo_features(tmp_path_factory):
    """relu features of the demo's held-out digits after 5 and 60 SGD steps of the demo's
    own training (real data, real training, real forward pass)."""
    from cnnatlas.data import build_manifest
    from cnnatlas.demo import demo_transform, train, write_digits
    from cnnatlas.extract import extract
    from cnnatlas.models import load_model

    root = tmp_path_factory.mktemp("demo")
    write_digits(root / "digits", 32, 0.2, 0)
    ckpts = [root / "step5.pt", root / "step60.pt"]
    train(root / "digits" / "train", ckpts, [5, 60], demo_transform(), 64, 0.05, 0)
    build_manifest(
        {"kind": "imagefolder", "path": str(root / "digits" / "test")}, root / "m.pq"
    )
    spec = {"arch": "cnnatlas.demo:DigitNet", "num_classes": 10}
    out = []
    for ckpt in ckpts:
        extract(root / "m.pq", load_model(spec, ckpt), {"relu": "avg"},
                root / f"{ckpt.stem}.pq", root / ckpt.stem, demo_transform())  # fmt: skip
        out.append(np.load(root / ckpt.stem / "relu.npy"))
    return out


def test_aligned_tsne_is_clearly_closer_on_the_demos_training_checkpoints(
    demo_features,
):
    aligned, independent = get_method("tsne").evolution(demo_features, 30, 0)
    t = alignment_table("tsne", ["step5", "step60"], aligned, independent)
    a, i = (t.set_index("kind").loc[k] for k in ("aligned", "independent"))
    assert a["displacement"] < 0.8 * i["displacement"]
    assert a["disparity"] < 0.8 * i["disparity"]
