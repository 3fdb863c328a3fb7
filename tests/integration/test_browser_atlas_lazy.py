"""An atlas page whose data sits beside it (atlas_files/, as a run above
figures.atlas_inline_mb writes it) in a real headless Chromium, opened from file://: it
draws the same points as the self-contained page, reads a point's path, top-k and
neighbours only when the point is shown, and says which folder is missing when it is.

The synthetic run is small, so the page is written with no inline data at all, a low
block size kept inline and parts of 8 rows: every mechanism of a large page, at once.
"""

import shutil

import numpy as np
import pandas as pd
import pytest
from cnnatlas.viewer import atlas, write_atlas

from tests.integration.test_browser_atlas import _open, _screen
from tests.integration.test_browser_maps import chromium  # noqa: F401
from tests.synthetic_atlas import atlas_header, write_atlas_run

pytestmark = pytest.mark.integration

PART_ROWS = 8


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    run = write_atlas_run(tmp_path_factory.mktemp("lazy"), per_class=8)
    lazy = run["root"] / "lazy.html"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(atlas, "INLINE_MAX", 100)
        write_atlas(lazy, inline_mb=0, part_rows=PART_ROWS, **run["inputs"])
    return {**run, "lazy": lazy}


def _sidecars(page) -> list[str]:
    return sorted({u.rsplit("/", 1)[1] for u in page.requests if "/lazy_files/" in u})


def test_the_page_holds_no_large_block(site):
    header = atlas_header(site["lazy"].read_text())
    assert all(len(b) <= 100 for b in header["blocks"] if isinstance(b, str))
    assert len(header["paths"]["parts"]) == -(-site["n"] // PART_ROWS)
    files = list(atlas.sidecar_folder(site["lazy"]).glob("*.js"))
    assert len(files) == sum(isinstance(b, dict) for b in header["blocks"])


def test_draws_the_points_of_the_self_contained_page(chromium, site):  # noqa: F811
    whole = _open(chromium, site["atlas"].as_uri())
    lazy = _open(chromium, site["lazy"].as_uri())
    try:
        assert lazy.problems == [] and whole.problems == []
        assert np.allclose(_screen(lazy), _screen(whole), atol=0.01)
        assert lazy.requests and all(
            u.startswith(("file://", "blob:", "data:")) for u in lazy.requests
        )
        # drawn without any point's path, top-k or neighbours: those parts wait
        header = atlas_header(site["lazy"].read_text())
        ckpt = lazy.evaluate("() => cnnatlas.live.runKey")
        unread = {
            f"{b}.js"
            for ref in (
                header["paths"],
                header["runs"][ckpt]["topk_ids"],
                header["neighbors"][f"{ckpt}/fc"],
            )
            for b in ref["parts"]
        }
        read = set(_sidecars(lazy))
        assert read and not read & unread
    finally:
        whole.close()
        lazy.close()


def test_hover_pin_and_search_read_their_parts(chromium, site):  # noqa: F811
    page = _open(chromium, site["lazy"].as_uri())
    try:
        man = pd.read_parquet(site["manifest"])
        i = site["n"] - 1  # in the last part of each table
        before = set(_sidecars(page))
        page.evaluate("(i) => cnnatlas.hover(i)", i)
        page.wait_for_function(
            "(i) => document.getElementById('atlas-hover').dataset.imageId === String(i)",
            arg=i,
            timeout=10_000,
        )
        text = page.text_content("#atlas-hover-text")
        assert text.splitlines()[0] == man["path"][i]
        header = atlas_header(site["lazy"].read_text())
        part = header["paths"]["parts"][i // PART_ROWS]
        assert f"{part}.js" not in before and f"{part}.js" in _sidecars(page)
        page.evaluate(f"() => {{ location.hash = location.hash + '&pin={i}'; }}")
        page.wait_for_function("(i) => cnnatlas.pinned() === i", arg=i, timeout=10_000)
        ckpt = page.evaluate("() => cnnatlas.live.runKey").split("/")[1]
        expected = np.load(site["root"] / f"{ckpt}-neighbors.npy")[i].tolist()
        assert page.evaluate("() => cnnatlas.highlighted()") == expected
        # a search reads every path
        page.fill("#atlas-search", "img_03")
        hit = man["path"].str.lower().str.contains("img_03", regex=False)
        hit |= man["label_name"].str.lower().str.contains("img_03", regex=False)
        hit |= man["domain"].str.lower().str.contains("img_03", regex=False)
        expected = man.loc[hit, "image_id"].tolist()
        assert expected
        page.wait_for_function(
            "(n) => cnnatlas.selection().length === n",
            arg=len(expected),
            timeout=10_000,
        )
        assert page.evaluate("() => cnnatlas.selection()") == sorted(expected)
        assert page.problems == []
    finally:
        page.close()


def test_a_missing_folder_says_so(chromium, site, tmp_path):  # noqa: F811
    copy = tmp_path / "lazy.html"
    shutil.copy(site["lazy"], copy)  # its folder is not beside the copy
    page = chromium.new_page()
    try:
        page.goto(copy.as_uri())
        page.wait_for_function(
            "() => document.getElementById('atlas-status').textContent !== ''",
            timeout=10_000,
        )
        text = page.text_content("#atlas-status")
        assert "could not be loaded: keep the folder lazy_files beside the page" in text
    finally:
        page.close()
