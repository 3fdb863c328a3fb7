"""Interactive maps and thumbnail sheets: payload, escaping, sizes, bytes (the browser test drives the page)."""

import json
import re

import numpy as np
import pytest
from cnnatlas import interactive, plots, thumbnails
from PIL import Image

from benchmarks.synthetic_maps import XSS_CLASS, XSS_FILE, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("interactive")
    out = write_run(root, per_class=5, dims=(2, 3), xss=True)
    out["thumbs"] = thumbnails.write_thumbnail_sheets(
        out["manifest"], root / "thumbnails", 16
    )
    return out


def _thumbs(run):
    return {**run["thumbs"], "prefix": "thumbnails/", "zoom": 2}


def test_sheet_cell_i_is_image_i(run):
    import pandas as pd

    man = pd.read_parquet(run["manifest"])
    index = run["thumbs"]
    assert index["n"] == len(man) and index["sheets"] == ["sheet-0000.png"]
    sheet = np.asarray(Image.open(run["root"] / "thumbnails" / index["sheets"][0]))
    assert sheet.shape == (16, thumbnails.SHEET_COLUMNS * 16, 3)
    for i in (0, 7, len(man) - 1):
        cell = sheet[:, i * 16 : (i + 1) * 16]
        assert np.array_equal(
            cell, np.asarray(thumbnails.thumbnail(man["path"][i], 16))
        )


def test_payload_modes_and_text(run):
    df, classes = plots.load_points(run["embedding2"], run["predictions"])
    payload = interactive.map_payload(df, classes, "t", _thumbs(run))
    assert set(payload["modes"]) == {"label", "pred", "correct", "confidence", "domain"}
    assert payload["modes"]["domain"]["names"] == ["source", "target"]
    assert payload["modes"]["confidence"]["kind"] == "number"
    assert payload["modes"]["label"]["codes"] == df["label"].tolist()
    assert [len(c) for c in payload["coords"]] == [len(df), len(df)]
    odd = df.index[df["path"].str.endswith(XSS_FILE)][0]
    assert payload["info"][odd].startswith(df["path"][odd])
    assert f"true: {XSS_CLASS}" in payload["info"][odd]
    colours = [s.colour for s in plots.class_styles(classes)]
    assert payload["modes"]["label"]["colours"] == colours


def test_html_holds_no_markup_from_the_data(run, tmp_path):
    df, classes = plots.load_points(run["embedding2"], run["predictions"])
    size = interactive.write_interactive(
        df, classes, tmp_path / "m.html", XSS_CLASS, _thumbs(run)
    )
    page = (tmp_path / "m.html").read_text()
    assert size == len(page.encode())
    data = re.search(r'id="cnnatlas-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data and ">" not in data
    payload = json.loads(data)
    assert XSS_CLASS in payload["modes"]["label"]["names"]
    outside = page.replace(data, "")
    plotly_js = re.search(r"<script>(.*?)</script>", outside, re.S).group(1)
    rest = outside.replace(plotly_js, "")
    assert XSS_FILE not in rest and XSS_CLASS not in rest
    assert "&lt;b&gt;cls&lt;/b&gt;" in rest  # the <title>


def test_html_is_byte_identical_on_rerun(run, tmp_path):
    df, classes = plots.load_points(run["embedding3"], run["predictions"])
    for k in (1, 2):
        interactive.write_interactive(
            df, classes, tmp_path / f"{k}.html", "t", _thumbs(run)
        )
    assert (tmp_path / "1.html").read_bytes() == (tmp_path / "2.html").read_bytes()
    payload = json.loads(
        re.search(
            r'id="cnnatlas-data">(.*?)</script>',
            (tmp_path / "1.html").read_text(),
            re.S,
        ).group(1)
    )
    assert payload["dim"] == 3 and len(payload["coords"]) == 3
