"""The interactive map in a real headless Chromium (Debian's /usr/bin/chromium via playwright).

Opens a generated map from disk (file://), hovers a known point and checks the thumbnail
beside the plot shows that point's image and the hover text names its path; switches the
colour mode; isolates a class from the legend; saves a screenshot; and checks that an image
named `<img src=x onerror=alert(1)>.png` in a class named `<b>cls</b>` stays text.
"""

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cnnatlas import interactive, plots, thumbnails
from PIL import Image

from benchmarks.synthetic_maps import XSS_CLASS, XSS_FILE, write_run

CHROMIUM = "/usr/bin/chromium"
SIZE, ZOOM = 48, 2

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chromium(has):
    if not (has("chromium") and Path(CHROMIUM).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{CHROMIUM} is missing under CI=true: .ci/run installs Debian's chromium"
            )
        pytest.skip(f"no {CHROMIUM} on this machine (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is missing under CI=true: it is in the test extras")
        pytest.skip("playwright's Python client is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A synthetic run with the XSS image and its map two folders below the sheets."""
    root = tmp_path_factory.mktemp("browser")
    run = write_run(root, per_class=6, dims=(2, 3), xss=True)
    index = thumbnails.write_thumbnail_sheets(
        run["manifest"], root / "thumbnails", SIZE
    )
    df, classes = plots.load_points(run["embedding2"], run["predictions"])
    html = root / "model" / "figures" / "map.html"
    thumbs = {**index, "prefix": "../../thumbnails/", "zoom": ZOOM}
    interactive.write_interactive(df, classes, html, f"map of {XSS_CLASS}", thumbs)
    df3, _ = plots.load_points(run["embedding3"], run["predictions"])
    html3 = html.with_name("map3d.html")
    interactive.write_interactive(df3, classes, html3, "3-D", thumbs, "domain")
    return {"html": html, "html3": html3, "df": df, "classes": classes}


@pytest.fixture
def page(chromium, site):
    page = chromium.new_page(
        viewport={"width": 1300, "height": 800}, device_scale_factor=1
    )
    page.dialogs, page.errors = [], []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(site["html"].as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    yield page
    page.close()


def _point_xy(page, image_id: int) -> tuple[float, float]:
    """Screen position of the point of `image_id`, from plotly's own axes."""
    return tuple(
        page.evaluate(
            """(id) => {
          const d = document.getElementById('cnnatlas-map'), L = d._fullLayout;
          const t = d._fullData.find(t => t.customdata.includes(id));
          const k = t.customdata.indexOf(id), r = d.getBoundingClientRect();
          return [r.left + L.xaxis._offset + L.xaxis.l2p(t.x[k]),
                  r.top + L.yaxis._offset + L.yaxis.l2p(t.y[k])];
        }""",
            image_id,
        )
    )


def _hover(page, image_id: int) -> str:
    page.mouse.move(*_point_xy(page, image_id))
    page.wait_for_function(
        "(id) => document.getElementById('cnnatlas-thumb').dataset.imageId === String(id)",
        arg=image_id,
        timeout=10_000,
    )
    page.wait_for_selector(".hoverlayer .hovertext", timeout=10_000)
    return page.text_content(".hoverlayer .hovertext")


def _marker_colours(page) -> list:
    return page.evaluate(
        "() => document.getElementById('cnnatlas-map')._fullData.map(t => JSON.stringify(t.marker.color))"
    )


def test_hover_shows_the_points_image_and_path(page, site):
    df = site["df"]
    row = df[df["path"].str.endswith("class1/img_03.png")].iloc[0]
    text = _hover(page, int(row["image_id"]))
    assert row["path"] in text
    assert f"true: {site['classes'][row['label']]}" in text
    shot = np.asarray(
        Image.open(io.BytesIO(page.locator("#cnnatlas-thumb").screenshot())).convert(
            "RGB"
        )
    )
    shown = shot[1:-1, 1:-1][::ZOOM, ::ZOOM].astype(
        int
    )  # inside the 1 px border, one pixel per zoom
    expected = np.asarray(thumbnails.thumbnail(row["path"], SIZE)).astype(int)
    assert shown.shape == expected.shape
    assert np.abs(shown - expected).mean() < 4
    other = np.asarray(thumbnails.thumbnail(df["path"].iloc[0], SIZE)).astype(int)
    assert np.abs(shown - other).mean() > 10
    assert row["path"] in page.text_content("#cnnatlas-info")


def test_colour_mode_switch_changes_colours(page, site):
    before = _marker_colours(page)
    plot = page.locator("#cnnatlas-map")
    shot_before = np.asarray(Image.open(io.BytesIO(plot.screenshot())).convert("RGB"))
    page.select_option("#cnnatlas-colour", "correct")
    page.wait_for_function(
        "() => document.querySelector('.legendtext').textContent === 'correct'",
        timeout=10_000,
    )
    after = _marker_colours(page)
    assert set(before) == {f'"{s.colour}"' for s in plots.class_styles(site["classes"])}
    assert set(after) == {f'"{c}"' for c in plots.CORRECT_COLOURS.values()}
    shot_after = np.asarray(Image.open(io.BytesIO(plot.screenshot())).convert("RGB"))
    assert np.abs(shot_after.astype(int) - shot_before.astype(int)).sum() > 0
    page.select_option("#cnnatlas-colour", "confidence")
    page.wait_for_function(
        "() => Array.isArray(document.getElementById('cnnatlas-map')._fullData[0].marker.color)"
    )


def test_legend_click_isolates_a_class(page):
    page.locator(".legend .traces").nth(1).click()
    page.wait_for_timeout(500)
    visible = page.evaluate(
        "() => document.getElementById('cnnatlas-map')._fullData"
        ".filter(t => t.visible === true).map(t => t.legendgroup)"
    )
    assert visible and set(visible) == {"g1"}


def test_screenshot_is_a_nonblank_png(page, tmp_path):
    path = tmp_path / "map.png"
    page.screenshot(path=str(path))
    im = Image.open(path)
    assert im.format == "PNG" and im.size == (1300, 800)
    arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 5 and len(np.unique(arr.reshape(-1, 3), axis=0)) > 10


def test_file_and_class_names_stay_text(page, site):
    df = site["df"]
    row = df[df["path"].str.endswith(XSS_FILE)].iloc[0]
    text = _hover(page, int(row["image_id"]))
    assert XSS_FILE in text and f"true: {XSS_CLASS}" in text
    assert XSS_CLASS in page.eval_on_selector_all(
        ".legendtext", "es => es.map(e => e.textContent)"
    )
    assert page.text_content("#cnnatlas-title") == f"map of {XSS_CLASS}"
    assert page.title() == f"map of {XSS_CLASS}"
    page.wait_for_timeout(500)  # an injected onerror would have fired by now
    assert page.dialogs == [] and page.errors == []
    counts = page.evaluate(
        "() => ['img', 'b', 'script'].map(t => document.getElementsByTagName(t).length)"
    )
    assert counts == [0, 0, 3]  # plotly.js, the payload, the page's script
    assert page.evaluate(
        "() => document.querySelector('.hoverlayer b, .legend b, svg img') === null"
    )


def test_3d_page_draws_every_point(chromium, site):
    page = chromium.new_page(viewport={"width": 1300, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site["html3"].as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    info = page.evaluate(
        "() => { const d = document.getElementById('cnnatlas-map')._fullData;"
        " return [d.map(t => t.type), d.reduce((n, t) => n + t.x.length, 0)]; }"
    )
    assert set(info[0]) == {"scatter3d"} and info[1] == len(site["df"])
    assert page.eval_on_selector("#cnnatlas-colour", "e => e.value") == "domain"
    assert page.locator("canvas").count() > 0 and errors == []
    page.close()


_CLOUD = "/cloud|chart studio|share|upload|plotly\\.com/i"


def _modebar_titles(page) -> list[str]:
    page.hover(".plot-container")
    page.wait_for_selector(".modebar-btn", state="attached", timeout=10_000)
    return page.eval_on_selector_all(
        ".modebar-btn", "bs => bs.map(b => b.getAttribute('data-title') || '')"
    )


def test_no_control_sends_data_off_the_machine(page):
    titles = _modebar_titles(page)
    assert any("png" in t.lower() for t in titles)  # the modebar is there
    assert (
        page.evaluate(
            f"""() => [...document.querySelectorAll('.modebar-btn, a, button')]
          .filter(b => {_CLOUD}.test((b.getAttribute('data-title') || '') + ' '
                                     + (b.getAttribute('href') || '') + ' ' + b.textContent))
          .length"""
        )
        == 0
    )


def test_a_missing_thumbnail_sheet_says_so(chromium, site, tmp_path):
    copy = tmp_path / "map.html"  # without the sheets beside it
    copy.write_bytes(site["html"].read_bytes())
    page = chromium.new_page(viewport={"width": 1300, "height": 800})
    page.goto(copy.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    row = site["df"].iloc[2]
    page.mouse.move(*_point_xy(page, int(row["image_id"])))
    page.wait_for_selector("#cnnatlas-thumb[data-loaded='0']", timeout=10_000)
    assert "sheet-0000.png could not be loaded" in page.text_content("#cnnatlas-thumb")
    page.close()


def test_numeric_colouring_works_above_the_argument_limit(chromium, tmp_path):
    """Math.min.apply fails above ~124,000 values; the page colours 200,000 points."""
    n, classes = 200_000, ["a", "b"]
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "image_id": np.arange(n),
            "x": rng.normal(size=n).astype(np.float32),
            "y": rng.normal(size=n).astype(np.float32),
            "path": [f"p{i}" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "pred": rng.integers(0, 2, n),
            "confidence": rng.uniform(0.5, 1, n),
            "topk_ids": [[0, 1]] * n,
            "topk_names": [classes] * n,
            "topk_probs": [[0.6, 0.4]] * n,
        }
    )
    df["correct"] = df["label"] == df["pred"]
    df["pred_name"] = [classes[p] for p in df["pred"]]
    thumbs = {"size": 8, "columns": 64, "per_sheet": 4096, "sheets": [], "prefix": "",
              "zoom": 1}  # fmt: skip
    html = tmp_path / "big.html"
    interactive.write_interactive(df, classes, html, "big", thumbs, "confidence", [])
    page = chromium.new_page(viewport={"width": 1300, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    cmin, cmax = page.evaluate(
        "() => { const m = document.getElementById('cnnatlas-map')._fullData[0].marker;"
        " return [m.cmin, m.cmax]; }"
    )
    assert errors == []
    assert cmin == pytest.approx(df["confidence"].min(), abs=1e-5)
    assert cmax == pytest.approx(df["confidence"].max(), abs=1e-5)
    page.close()


def test_evolution_slider_waits_and_shows_the_first_checkpoint(chromium, tmp_path):
    from cnnatlas.evolution_plots import slider_figure, write_slider_html

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    maps = [rng.normal(size=(40, 2)) + k * 5 for k in range(3)]
    hovers = [[f"image {i}" for i in range(40)]] * 3
    fig = slider_figure(maps, ["a", "b", "c"], labels, ["x", "<b>y</b>"], hovers, "t")
    html = tmp_path / "slider.html"
    write_slider_html(fig, html)
    page = chromium.new_page(viewport={"width": 1300, "height": 800})
    page.goto(html.as_uri())
    page.wait_for_selector(".scatterlayer .trace", timeout=30_000)
    page.wait_for_timeout(2500)  # an autoplay (500 ms transitions) would have moved on
    xs = page.evaluate(
        "() => document.getElementById('evolution')._fullData[0].x.slice(0, 5)"
    )
    assert np.allclose(xs, maps[0][labels == 0][:5, 0])
    active = page.evaluate(
        "() => document.getElementById('evolution')._fullLayout.sliders[0].active"
    )
    assert active == 0
    assert "checkpoint: a" in page.evaluate(
        "() => document.querySelector('.slider-container').textContent"
    )
    titles = _modebar_titles(page)
    assert titles and not [t for t in titles if "cloud" in t.lower()]
    page.close()
