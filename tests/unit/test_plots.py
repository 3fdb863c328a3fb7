"""Static maps: sizes, non-blank pixels, selectable PDF text, consistent class colours, bytes."""

import numpy as np
import pytest
from cnnatlas import plots
from cnnatlas.errors import CnnatlasError
from PIL import Image
from pypdf import PdfReader

from benchmarks.synthetic_maps import write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("plots"), per_class=8, dims=(2, 3))


@pytest.fixture(scope="module")
def points(run):
    return plots.load_points(run["embedding2"], run["predictions"])


def _rgb(hexcolour: str) -> tuple[int, int, int]:
    return tuple(int(hexcolour[i : i + 2], 16) for i in (1, 3, 5))


def _count(png, hexcolour: str) -> int:
    arr = np.asarray(Image.open(png).convert("RGB"))
    return int((arr == np.array(_rgb(hexcolour))).all(axis=-1).sum())


def test_class_styles_are_fixed_by_index_and_distinct():
    a = plots.class_styles([f"c{i}" for i in range(70)])
    b = plots.class_styles(["x", "y", "z"])
    assert [(s.colour, s.marker) for s in a[:3]] == [(s.colour, s.marker) for s in b]
    assert len({(s.colour, s.marker) for s in a}) == 70


def test_load_points_joins_on_image_id(points, run):
    df, classes = points
    assert classes == run["classes"]
    assert df["image_id"].tolist() == list(range(len(df)))
    assert {"x", "y", "label", "pred", "confidence", "correct", "domain"} <= set(
        df.columns
    )


def test_png_size_not_blank_and_pdf_text_selectable(points, tmp_path):
    df, classes = points
    fig = plots.plot_embedding(df, classes, "label", title="fc1 tsne", width=3.0)
    plots.save_figure(fig, tmp_path / "a.png", tmp_path / "a.pdf", dpi=100)
    im = Image.open(tmp_path / "a.png")
    assert im.size == (round((3.0 + 1.3) * 100), 300)
    arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20
    text = PdfReader(tmp_path / "a.pdf").pages[0].extract_text()
    for name in [*classes, "misclassified", "fc1 tsne"]:
        assert name in text


def test_class_colour_is_the_same_in_two_figures(points, tmp_path):
    df, classes = points
    first = df[df["label"].isin([0, 1])]
    second = df[df["label"].isin([1, 2])]
    for name, part in (("first", first), ("second", second)):
        fig = plots.plot_embedding(part, classes, "label", width=3.0)
        plots.save_figure(fig, tmp_path / f"{name}.png", dpi=100)
    colours = [s.colour for s in plots.class_styles(classes)]
    assert _count(tmp_path / "first.png", colours[1]) > 20
    assert _count(tmp_path / "second.png", colours[1]) > 20
    assert _count(tmp_path / "first.png", colours[0]) > 20
    assert _count(tmp_path / "second.png", colours[0]) == 0
    assert _count(tmp_path / "first.png", colours[2]) == 0


def test_reruns_are_byte_identical(points, tmp_path):
    df, classes = points
    for k in (1, 2):
        fig = plots.plot_embedding(df, classes, "domain", width=3.0)
        plots.save_figure(fig, tmp_path / f"{k}.png", tmp_path / f"{k}.pdf", dpi=80)
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()
    assert (tmp_path / "1.pdf").read_bytes() == (tmp_path / "2.pdf").read_bytes()


def _has_image(pdf) -> bool:
    res = PdfReader(pdf).pages[0]["/Resources"]
    xobjects = res.get("/XObject", {})
    return any(x.get_object()["/Subtype"] == "/Image" for x in xobjects.values())


def test_points_rasterised_only_above_threshold(points, tmp_path, monkeypatch):
    df, classes = points
    fig = plots.plot_embedding(df, classes, "label", width=3.0)
    plots.save_figure(fig, pdf=tmp_path / "vector.pdf", dpi=80)
    monkeypatch.setattr(plots, "RASTER_ABOVE", 10)
    fig = plots.plot_embedding(df, classes, "label", width=3.0)
    plots.save_figure(fig, pdf=tmp_path / "raster.pdf", dpi=80)
    assert not _has_image(tmp_path / "vector.pdf")
    assert _has_image(tmp_path / "raster.pdf")
    assert "circle" in PdfReader(tmp_path / "raster.pdf").pages[0].extract_text()


@pytest.mark.parametrize("mode", ["pred", "correct", "confidence", "domain"])
def test_colour_modes_and_3d(run, mode, tmp_path):
    df, classes = plots.load_points(run["embedding3"], run["predictions"])
    fig = plots.plot_embedding(df, classes, mode, width=2.5)
    assert fig.axes[0].name == "3d"
    assert (len(fig.axes) == 2) == (mode == "confidence")  # a colour bar
    plots.save_figure(fig, tmp_path / "m.png", dpi=60)
    assert np.asarray(Image.open(tmp_path / "m.png").convert("L")).std() > 5


def test_grid_shares_one_legend(points, tmp_path):
    df, classes = points
    fig = plots.plot_grid(
        [[("a", df), ("b", df)], [("c", df), None]],
        classes,
        "label",
        row_labels=["p5", "p30"],
        col_labels=["s0", "s1"],
        panel_size=1.5,
    )
    assert len(fig.axes) == 3 and len(fig.legends) == 1
    plots.save_figure(fig, pdf=tmp_path / "g.pdf", dpi=300)
    text = PdfReader(tmp_path / "g.pdf").pages[0].extract_text()
    assert all(t in text for t in ("p5", "p30", "s0", "s1", "square"))


def test_unknown_colour_by_names_the_key(points):
    df, classes = points
    with pytest.raises(CnnatlasError, match=r"figures.colour_by: 'site'.*domain"):
        plots.plot_embedding(df, classes, "site", width=4.0)


def test_embedding_with_unknown_image_id_is_refused(run, tmp_path):
    import pandas as pd

    emb = pd.read_parquet(run["embedding2"])
    emb.loc[0, "image_id"] = 999
    emb.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(CnnatlasError, match="image_id 999"):
        plots.load_points(tmp_path / "bad.parquet", run["predictions"])
