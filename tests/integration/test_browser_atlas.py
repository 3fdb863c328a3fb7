"""The atlas page in a real headless Chromium (Debian's /usr/bin/chromium via playwright).

On a synthetic run (tests/synthetic_atlas.py) opened from file://: the page loads without
a console error; a lasso drawn with the mouse selects exactly the image_ids that Python
finds inside that polygon; a box does the same; search selects the rows whose path, class
or metadata holds the text; a clicked point's highlighted neighbours are the precomputed
feature-space neighbours; hostile class and file names add no element; the URL hash
restores the view; a missing thumbnail sheet says so.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cnnatlas.viewer import compare_href, write_compare_page
from matplotlib.path import Path as Polygon

from benchmarks.synthetic_maps import XSS_CLASS, XSS_FILE
from tests.integration.test_browser_maps import chromium  # noqa: F401
from tests.synthetic_atlas import GRADCAM_IDS, write_atlas_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return write_atlas_run(tmp_path_factory.mktemp("atlas"), per_class=8)


def _open(chromium, url: str):  # noqa: F811
    page = chromium.new_page(
        viewport={"width": 1300, "height": 900}, device_scale_factor=1
    )
    page.problems, page.dialogs, page.requests = [], [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on(
        "console",
        lambda m: (
            page.problems.append(m.text) if m.type in ("error", "assert") else None
        ),
    )
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page


@pytest.fixture
def page(chromium, site):  # noqa: F811
    page = _open(chromium, site["atlas"].as_uri())
    yield page
    page.close()


def _screen(page) -> np.ndarray:
    return np.array(page.evaluate("() => cnnatlas.screenAll()")).reshape(-1, 2)


def _xy(site, name="early-tsne.parquet") -> np.ndarray:
    df = pd.read_parquet(site["root"] / name).sort_values("image_id")
    return df[["x", "y"]].to_numpy(np.float64)


def _guarded_polygon(screen: np.ndarray, centre: np.ndarray, corners: int = 7):
    """A polygon around `centre` with no point within 4 px of its edge (so that how a
    lasso samples the mouse path cannot change which points are inside)."""
    angles = np.linspace(0, 2 * np.pi, corners, endpoint=False) + 0.3
    for radius in np.arange(40, 200, 3):
        ring = centre + radius * np.c_[np.cos(angles), np.sin(angles)] * [1.0, 0.8]
        poly = Polygon(np.vstack([ring, ring[:1]]))
        inside = poly.contains_points(screen)
        near = poly.contains_points(screen, radius=8) != poly.contains_points(
            screen, radius=-8
        )
        if inside.sum() >= 3 and not near.any():
            return ring, inside
    raise AssertionError("no polygon with a guard band around the cluster")


def _drag(page, ring: np.ndarray, steps: int = 8) -> None:
    page.mouse.move(*ring[0])
    page.mouse.down()
    for a, b in zip(ring, np.vstack([ring[1:], ring[:1]]), strict=True):
        for t in np.linspace(0, 1, steps)[1:]:
            page.mouse.move(*(a + t * (b - a)))
            page.wait_for_timeout(8)
    page.mouse.up()


def test_loads_without_console_errors(page, site):
    assert page.problems == []
    assert page.evaluate("() => document.querySelectorAll('#atlas-canvas').length") == 1
    options = page.eval_on_selector_all(
        "#atlas-method option", "os => os.map(o => o.value)"
    )
    assert options == ["tsne", "pca", "tsne aligned"]
    assert (
        page.text_content("#atlas-diagnosis") == "no metrics were computed for this map"
    )
    # No network: the page asked for nothing but files beside it and its own blobs.
    page.evaluate("() => cnnatlas.hover(3)")
    page.wait_for_selector("#atlas-hover .thumb[data-loaded='1']", timeout=10_000)
    assert page.requests and all(
        u.startswith(("file://", "blob:", "data:")) for u in page.requests
    ), page.requests


def test_lasso_selects_the_points_inside(page, site):
    screen = _screen(page)
    labels = pd.read_parquet(site["manifest"])["label"].to_numpy()
    ring, inside = _guarded_polygon(screen, screen[labels == 2].mean(axis=0))
    page.click("[data-tool='lasso']")
    _drag(page, ring)
    page.wait_for_function("() => cnnatlas.selection().length > 0", timeout=10_000)
    selected = page.evaluate("() => cnnatlas.selection()")
    assert selected == np.flatnonzero(inside).tolist()
    # The polygon the page recorded, in data coordinates, holds the same embedding rows.
    lasso = np.array(page.evaluate("() => cnnatlas.lasso()"))
    again = Polygon(np.vstack([lasso, lasso[:1]])).contains_points(_xy(site))
    assert np.flatnonzero(again).tolist() == selected
    # The grid shows each selected image with its label and prediction, the counts add up.
    assert page.locator("#atlas-grid figure").count() == len(selected)
    shown = page.eval_on_selector_all(
        "#atlas-grid figure", "fs => fs.map(f => Number(f.dataset.imageId))"
    )
    assert shown == selected
    counts = page.eval_on_selector_all(
        "#atlas-counts tr[data-class] td:nth-child(3)",
        "ts => ts.map(t => Number(t.textContent))",
    )
    assert sum(counts) == len(selected)
    with page.expect_download() as dl:
        page.click("#atlas-csv")
    csv = pd.read_csv(dl.value.path())
    assert csv["image_id"].tolist() == selected
    man = pd.read_parquet(site["manifest"]).set_index("image_id")
    assert csv["path"].tolist() == man.loc[selected, "path"].tolist()
    page.click("#atlas-copy")
    assert page.input_value("#atlas-ids").split("\n") == [str(i) for i in selected]


def test_box_selects_the_points_inside(page):
    screen = _screen(page)
    lo, hi = np.percentile(screen, 30, axis=0), np.percentile(screen, 70, axis=0)
    page.click("[data-tool='box']")
    page.mouse.move(*(lo - 1))
    page.mouse.down()
    # The lasso starts at the first pointer move after the press: make that the corner.
    page.mouse.move(*lo)
    page.wait_for_timeout(20)
    for t in np.linspace(0, 1, 10)[1:]:
        page.mouse.move(*(lo + t * (hi - lo)))
        page.wait_for_timeout(20)
    # The lasso samples the pointer at most every few ms: dwell on the corner.
    page.mouse.move(*(hi + 0.5))
    page.wait_for_timeout(20)
    page.mouse.move(*hi)
    page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_function("() => cnnatlas.selection().length > 0", timeout=10_000)
    inside = np.all((screen > lo) & (screen < hi), axis=1)
    near = np.any(np.abs(screen - lo) < 2, axis=1) | np.any(
        np.abs(screen - hi) < 2, axis=1
    )
    got = set(page.evaluate("() => cnnatlas.selection()"))
    assert (
        set(np.flatnonzero(inside & ~near)) <= got <= set(np.flatnonzero(inside | near))
    )


@pytest.mark.parametrize("query", ["class1/", "TARGET", "cls</b>", "img_03"])
def test_search_selects_matching_rows(page, site, query):
    page.fill("#atlas-search", query)
    man = pd.read_parquet(site["manifest"])
    q = query.lower()
    hit = man["path"].str.lower().str.contains(q, regex=False)
    hit |= man["label_name"].str.lower().str.contains(q, regex=False)
    hit |= man["domain"].str.lower().str.contains(q, regex=False)
    expected = man.loc[hit, "image_id"].tolist()
    assert expected  # the query means something on this run
    page.wait_for_function(
        "(n) => cnnatlas.selection().length === n", arg=len(expected), timeout=10_000
    )
    assert page.evaluate("() => cnnatlas.selection()") == sorted(expected)
    assert (
        page.evaluate("() => cnnatlas.scatterplot.get('selectedPoints')").sort() is None
    )
    assert sorted(
        page.evaluate("() => cnnatlas.scatterplot.get('selectedPoints')")
    ) == sorted(expected)


def _isolated_point(screen: np.ndarray) -> int:
    d = np.linalg.norm(screen[:, None] - screen[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return int(np.argmax(d.min(axis=1)))


def test_click_pins_a_point_and_rings_its_feature_neighbours(page, site):
    screen = _screen(page)
    i = (
        int(GRADCAM_IDS[1])
        if _clear_of_others(screen, GRADCAM_IDS[1])
        else _isolated_point(screen)
    )
    page.mouse.click(*screen[i])
    page.wait_for_function("(i) => cnnatlas.pinned() === i", arg=i, timeout=10_000)
    expected = np.load(site["root"] / "early-neighbors.npy")[i].tolist()
    assert page.evaluate("() => cnnatlas.highlighted()") == expected
    xy = _xy(site)
    d = np.linalg.norm(xy - xy[i], axis=1)
    d[i] = np.inf
    in_map = set(np.argsort(d, kind="stable")[: len(expected)].tolist())
    shared = len(in_map & set(expected))
    assert page.evaluate("() => cnnatlas.sharedNeighbours()") == shared
    assert page.text_content("#atlas-neighbour-count").startswith(
        f"{shared} of its {len(expected)} nearest neighbours in feature space"
    )
    # the gallery: feature-space neighbours with their distances, map neighbours with
    # theirs, each marked where it is a neighbour in the other space too
    cols = page.eval_on_selector_all(
        "#atlas-gallery .gallery-col",
        """cs => cs.map(c => [...c.querySelectorAll('figure')].map(f => [
             Number(f.dataset.imageId), f.classList.contains('also'),
             f.querySelector('.dist').textContent]))""",
    )
    dist = np.load(site["root"] / "early-neighbor_distances.npy")[i]
    map_order = np.argsort(d, kind="stable")[: len(expected)].tolist()
    assert [c[0] for c in cols[0]] == expected
    assert [c[0] for c in cols[1]] == map_order
    assert [c[1] for c in cols[0]] == [j in in_map for j in expected]
    assert [c[1] for c in cols[1]] == [j in set(expected) for j in map_order]
    # distances to three significant digits (the page holds the feature distances as
    # half floats, within 2^-11)
    shown = [[float(c[2].removeprefix("d ")) for c in col] for col in cols]
    assert all(v == float(f"{v:.3g}") for col in shown for v in col)
    assert np.allclose(shown[0], dist, rtol=5.5e-3, atol=0)
    assert np.allclose(shown[1], d[map_order], rtol=5e-3, atol=0)
    if i in GRADCAM_IDS:
        src = page.get_attribute("#atlas-pin img.gradcam", "src")
        assert src.endswith(f"early/gradcam/{i:05d}.png")
        page.wait_for_function(
            "() => document.querySelector('#atlas-pin img.gradcam').naturalWidth === 20"
        )
    # a click on a gallery image pins it
    page.click(f"#atlas-gallery .gallery-col figure[data-image-id='{expected[0]}']")
    page.wait_for_function("(j) => cnnatlas.pinned() === j", arg=expected[0])


def _clear_of_others(screen: np.ndarray, i: int) -> bool:
    d = np.linalg.norm(screen - screen[i], axis=1)
    d[i] = np.inf
    return bool(d.min() > 14)


def test_hostile_names_add_no_element(page, site):
    man = pd.read_parquet(site["manifest"])
    bad = int(man.index[man["path"].str.endswith(XSS_FILE)][0])
    page.fill("#atlas-search", "")
    page.fill("#atlas-search", "onerror")  # selects the file into the grid
    page.wait_for_function("() => cnnatlas.selection().length === 1")
    page.evaluate("(i) => cnnatlas.hover(i, [10, 10])", bad)  # the tooltip too
    page.wait_for_function(
        "(i) => document.getElementById('atlas-hover').dataset.imageId === String(i)",
        arg=bad,
    )
    assert XSS_FILE in page.text_content("#atlas-hover-text")
    assert f"true: {XSS_CLASS}" in page.text_content("#atlas-hover-text")
    assert page.text_content("#atlas-tooltip").startswith(f"{XSS_CLASS} → ")
    legend = page.eval_on_selector_all(
        "#atlas-legend .name", "es => es.map(e => e.textContent)"
    )
    assert XSS_CLASS in legend
    assert page.text_content("#atlas-title") == "atlas of <b>cls</b>"
    page.wait_for_timeout(300)  # an injected onerror would have fired by now
    assert page.dialogs == [] and page.problems == []
    tags = page.evaluate(
        "() => ['img', 'b', 'script'].map(t => document.getElementsByTagName(t).length)"
    )
    assert tags == [0, 0, 2]  # the data and the bundle


def test_hash_restores_the_view(chromium, page, site):  # noqa: F811
    page.select_option("#atlas-method", "pca")
    page.select_option("#atlas-colour", "correct")
    page.fill("#atlas-search", "class3/")
    screen = _screen(page)
    i = _isolated_point(screen)
    page.mouse.click(*screen[i])
    page.wait_for_function("(i) => cnnatlas.pinned() === i", arg=i)
    page.locator("#atlas-legend .only").first.click()
    page.wait_for_function("() => location.hash.includes('hide=')")
    url = page.url
    assert "#" in url
    state = page.evaluate(
        "() => JSON.stringify([cnnatlas.state.method, cnnatlas.state.colour,"
        " cnnatlas.selection(), cnnatlas.state.pin, [...cnnatlas.state.hidden],"
        " cnnatlas.scatterplot.get('filteredPoints').length])"
    )
    other = _open(chromium, url)
    try:
        assert other.eval_on_selector("#atlas-method", "e => e.value") == "pca"
        assert other.eval_on_selector("#atlas-colour", "e => e.value") == "correct"
        assert other.input_value("#atlas-search") == "class3/"
        restored = other.evaluate(
            "() => JSON.stringify([cnnatlas.state.method, cnnatlas.state.colour,"
            " cnnatlas.selection(), cnnatlas.state.pin, [...cnnatlas.state.hidden],"
            " cnnatlas.scatterplot.get('filteredPoints').length])"
        )
        assert json.loads(restored) == json.loads(state)
        assert other.locator("#atlas-pin pre").count() == 1
        assert other.problems == []
    finally:
        other.close()


def test_aligned_checkpoints_transition(page):
    page.select_option("#atlas-method", "tsne aligned")
    page.wait_for_function("() => cnnatlas.live.map.method === 'tsne aligned'")
    before = _screen(page)
    page.evaluate(
        "() => { window.moves = 0; window.moved = 0; const s = cnnatlas.scatterplot;"
        " s.subscribe('transitionStart', () => window.moves++);"
        " s.subscribe('transitionEnd', () => window.moved++); }"
    )
    page.select_option("#atlas-ckpt", "late")
    # one transition, waited for by its end event (a fixed wait fails on a loaded machine)
    page.wait_for_function("() => window.moved === 1", timeout=30_000)
    assert page.evaluate("() => window.moves") == 1
    after = _screen(page)
    # The aligned maps differ by +1 in x and y: every point moved by the same offset.
    shift = after - before
    assert np.allclose(shift, shift[0], atol=0.5) and np.abs(shift[0]).min() > 1


def test_missing_thumbnail_sheet_says_so(chromium, site, tmp_path):  # noqa: F811
    copy = tmp_path / "atlas.html"
    shutil.copy(site["atlas"], copy)  # the sheets are not beside the copy
    page = _open(chromium, copy.as_uri())
    try:
        page.evaluate("() => cnnatlas.hover(3)")
        page.wait_for_selector("#atlas-hover .thumb.missing", timeout=10_000)
        text = page.text_content("#atlas-hover .thumb")
        assert "thumbnails/sheet-0000.png could not be loaded" in text
    finally:
        page.close()
    assert Path(site["root"] / "thumbnails" / "sheet-0000.png").exists()


def _open_compare(chromium, site, a, b, width=1300):  # noqa: F811
    """compare.html beside the atlas, opened on views a and b ((ckpt, method) of fc);
    returns the page and the list its page errors go to."""
    compare = site["atlas"].with_name("compare.html")
    write_compare_page(compare, site["atlas"])
    view = {"model": "net", "layer": "fc"}
    href = compare_href(
        "compare.html",
        {**view, "ckpt": a[0], "method": a[1]},
        {**view, "ckpt": b[0], "method": b[1]},
    )
    page = chromium.new_page(viewport={"width": width, "height": 900})
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(compare.as_uri() + "#" + href.split("#")[1])
    return page, problems


def test_compare_page_shows_the_two_views_it_names(chromium, site):  # noqa: F811
    """compare.html#a=...&b=... (the landing page's CKA cells link there) frames the
    atlas twice, each half on the view its half of the address names."""
    page, problems = _open_compare(chromium, site, ("early", "pca"), ("late", "tsne"))
    try:
        seen = {}
        for half in ("a", "b"):
            frame = page.frame_locator(f"#frame-{half}")
            frame.locator("body[data-ready='1']").wait_for(timeout=30_000)
            seen[half] = [
                frame.locator(f"#atlas-{k}").input_value() for k in ("ckpt", "method")
            ]
        assert seen == {"a": ["early", "pca"], "b": ["late", "tsne"]}
        assert page.inner_text("header").endswith("net early fc pca | net late fc tsne")
        assert problems == []
    finally:
        page.close()


def test_the_compare_page_links_hover_and_selection(chromium, site):  # noqa: F811
    """What the mouse hovers and what a search selects in one half is hovered and
    selected, as the same image_ids, in the other; unticking the link stops it."""
    page, problems = _open_compare(
        chromium, site, ("early", "tsne"), ("late", "pca"), width=1600
    )
    try:
        a, b = (
            page.locator(f"#frame-{k}").element_handle().content_frame() for k in "ab"
        )
        for f in (a, b):
            f.wait_for_selector("body[data-ready='1']", timeout=30_000)
        screen = np.array(a.evaluate("() => cnnatlas.screenAll()")).reshape(-1, 2)
        d = np.linalg.norm(screen[:, None] - screen[None], axis=2)
        np.fill_diagonal(d, np.inf)
        i = int(np.argmax(d.min(axis=1)))
        origin = page.locator("#frame-a").bounding_box()
        page.mouse.move(origin["x"] + screen[i][0], origin["y"] + screen[i][1])
        a.wait_for_function("(i) => cnnatlas.live.hover === i", arg=i)
        b.wait_for_function("(i) => cnnatlas.live.hover === i", arg=i)
        b.wait_for_function(
            "(i) => document.getElementById('atlas-hover').dataset.imageId === String(i)",
            arg=i,
        )
        man = pd.read_parquet(site["manifest"])
        name = man["label_name"].iloc[0]
        a.fill("#atlas-search", name)
        a.wait_for_function("() => cnnatlas.selection().length > 0")
        chosen = a.evaluate("() => cnnatlas.selection()")
        b.wait_for_function("(n) => cnnatlas.selection().length === n", arg=len(chosen))
        assert b.evaluate("() => cnnatlas.selection()") == chosen
        # unlinked: a selection in b stays in b
        page.uncheck("#compare-link")
        b.evaluate("() => document.getElementById('atlas-clear').click()")
        b.wait_for_function("() => cnnatlas.selection().length === 0")
        # the page heard b's selection and kept it from a
        page.wait_for_function("() => Number(document.body.dataset.unlinked || 0) > 0")
        assert a.evaluate("() => cnnatlas.selection()") == chosen
        assert problems == []
    finally:
        page.close()
