"""Paper figures on synthetic embeddings/metrics and a tiny random-init CNN."""

import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from cnnatlas import paper
from cnnatlas.demo import DigitNet
from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.filters import maximize
from cnnatlas.explain.render import to_rgb
from cnnatlas.io import write_parquet
from cnnatlas.provenance import provenance
from PIL import Image
from pypdf import PdfReader

from benchmarks.synthetic_maps import write_run
from tests.conftest import CLASSES, make_imagefolder, save_tiny_checkpoints

TRANSFORM = {
    "resize": 32,
    "crop": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "channels": 3,
}
FONTS = {"font_size": 6, "title_size": 7, "letter_size": 9}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("paper_run"), per_class=8)


def grid_panels(run, rows, cols):
    return [
        {
            "row": r,
            "col": c,
            "embedding": run["embedding2"],
            "predictions": run["predictions"],
        }
        for r in rows
        for c in cols
    ]


def save(fig, folder, name="fig", run_id="0123456789ab"):
    pdf, png = folder / f"{name}.pdf", folder / f"{name}.png"
    paper.save_paper_figure(fig, pdf, png, run_id, dpi=100)
    return pdf, png


def pdf_words(path):
    text = "".join(page.extract_text() for page in PdfReader(path).pages)
    return text.split()


def test_layer_grid_panels_width_letters_and_hash(run, tmp_path):
    rows, cols = ["early", "late"], ["conv", "fc1", "relu"]
    fig = paper.embedding_grid(
        grid_panels(run, rows, cols), rows, cols, "double", FONTS, "label"
    )
    assert len(fig.axes) == 6
    assert fig.get_size_inches()[0] == pytest.approx(7.2, abs=1e-9)
    assert fig.axes[0].title.get_fontsize() == 7
    pdf, png = save(fig, tmp_path)
    reader = PdfReader(pdf)
    assert float(reader.pages[0].mediabox.width) == pytest.approx(7.2 * 72)
    words = pdf_words(pdf)
    assert {"a", "b", "c", "d", "e", "f"} <= set(words)
    assert {"early", "late", "conv", "fc1", "relu"} <= set(words)
    assert "0123456789ab" not in words  # the hash is metadata, not in the picture
    assert reader.metadata["/Subject"] == "cnnatlas run 0123456789ab"
    assert "/CreationDate" not in reader.metadata
    with Image.open(png) as im:
        assert im.size[0] == 720
        assert im.info[paper.HASH_KEY] == "0123456789ab"
        assert "Software" not in im.info


def test_single_width_and_same_bytes_twice(run, tmp_path):
    rows, cols = ["seed 0"], ["perplexity 5", "perplexity 10"]
    files = []
    for name in ("one", "two"):
        fig = paper.embedding_grid(
            grid_panels(run, rows, cols), rows, cols, "single", None, "label"
        )
        files.append(save(fig, tmp_path, name))
    (pdf1, png1), (pdf2, png2) = files
    assert float(PdfReader(pdf1).pages[0].mediabox.width) == pytest.approx(3.5 * 72)
    assert pdf1.read_bytes() == pdf2.read_bytes()
    assert png1.read_bytes() == png2.read_bytes()


def test_points_are_rasterised_above_2000(tmp_path, run):
    n = 2500
    rng = np.random.default_rng(0)
    pred = pd.read_parquet(run["predictions"])
    big = pd.DataFrame({"image_id": np.arange(n)})
    big["x"], big["y"] = rng.normal(size=(2, n)).astype(np.float32)
    write_parquet(big, tmp_path / "big.parquet")
    rows = pred.sample(n, replace=True, random_state=0).assign(image_id=np.arange(n))
    write_parquet(rows, tmp_path / "pred.parquet")
    panel = {
        "row": "r",
        "col": "c",
        "embedding": tmp_path / "big.parquet",
        "predictions": tmp_path / "pred.parquet",
    }
    small = grid_panels(run, ["r"], ["c"])
    fig = paper.embedding_grid([panel], ["r"], ["c"], "single", None, "label")
    assert all(c.get_rasterized() for c in fig.axes[0].collections)
    fig = paper.embedding_grid(small, ["r"], ["c"], "single", None, "label")
    assert not any(c.get_rasterized() for c in fig.axes[0].collections)


def metrics_table():
    rows = []
    for k, ckpt in enumerate(["early", "late"]):
        for d, layer in enumerate(["conv", "fc1", "relu"]):
            for method in ("tsne", "pca"):
                rows.append(
                    {
                        "ckpt": ckpt,
                        "layer": layer,
                        "method": method,
                        "chance": 1 / 3,
                        "knn_features": 0.4 + 0.1 * d + 0.2 * k,
                    }
                )
    return pd.DataFrame(rows)


def test_separation_one_line_per_checkpoint_in_layer_order(tmp_path):
    fig = paper.separation_figure(
        metrics_table(), ["relu", "conv", "fc1"], ["early", "late"], "single", FONTS
    )
    (ax,) = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert np.allclose(lines["early"], [0.6, 0.4, 0.5])
    assert np.allclose(lines["late"], [0.8, 0.6, 0.7])
    assert np.allclose(lines["chance"], 1 / 3)
    assert fig.get_size_inches()[0] == 3.5
    pdf, _ = save(fig, tmp_path)
    words = pdf_words(pdf)
    assert "early" in words and "a" not in words  # one panel: no letter


def test_figure_run_hash_is_provenance_run_hash(tmp_path, run):
    ckpts = save_tiny_checkpoints(tmp_path / "ckpt")
    checkpoints = {f"tiny/{k}": v for k, v in ckpts.items()}
    config = {"results": "results", "paper": {"dpi": 300}}
    record = provenance(config, checkpoints, run["manifest"], [], tmp_path, {})
    got = paper.figure_run_hash(config, checkpoints, run["manifest"])
    assert got == record["run_hash"] and len(got) == 12
    assert (
        paper.figure_run_hash({**config, "x": 1}, checkpoints, run["manifest"]) != got
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_cnn")
    folder = make_imagefolder(root / "images", per_class=2)
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    labels = [CLASSES.index(p.split("/")[-2]) for p in paths]
    predictions = pd.DataFrame(
        {"image_id": np.arange(len(paths)), "path": paths, "label": labels}
    )
    torch.manual_seed(0)
    return DigitNet(num_classes=3, in_channels=3, width=4).eval(), predictions


def test_gradcam_one_column_per_image(tiny, tmp_path):
    model, predictions = tiny
    fig = paper.gradcam_figure(
        model, TRANSFORM, predictions, [0, 5, 2], list(CLASSES), None, "single", FONTS
    )
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == f"#0 true {CLASSES[predictions['label'][0]]}"
    assert fig.get_size_inches()[0] == 3.5
    pdf, _ = save(fig, tmp_path)
    assert {"a", "b", "c"} <= set(pdf_words(pdf))
    with pytest.raises(CnnatlasError, match=r"image_ids \[99\]"):
        paper.gradcam_figure(model, TRANSFORM, predictions, [0, 99], list(CLASSES))


def test_filters_match_the_explain_stage_images(tiny, tmp_path):
    model, _ = tiny
    opts = {"steps": 3, "lr": 0.05, "seed": 0, "jitter": 0.05, "scale": 0.05}
    opts["rotate"] = 5.0
    fig = paper.filters_figure(
        model, TRANSFORM, "features.1.3", [0, 2, 3], opts, 2, "double", FONTS
    )
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and len(fig.axes) == 4  # 2 columns: one empty cell
    seed = (0 + zlib.crc32(b"features.1.3")) % 2**63
    images, _, _ = maximize(
        model, "features.1.3", [0, 2, 3], TRANSFORM, **(opts | {"seed": seed})
    )
    assert np.array_equal(shown[1].images[0].get_array(), to_rgb(images[1], [0], [1]))
    assert shown[2].get_title().startswith("ch 3: ")


def test_every_kind_names_a_drawing_function_of_the_library():
    from cnnatlas.plan.paper import KINDS

    for kind in KINDS.values():
        module, _, name = kind.draw.partition(":")
        assert module == "cnnatlas.paper" and name in paper.__all__
        assert callable(paper.draw_function(kind.draw))
    with pytest.raises(ValueError, match="kind 'poster' is not one of"):
        paper.draw_figure({"kind": "poster"}, FONTS)
