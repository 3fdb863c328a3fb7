"""The atlas page's view and selection in a real headless Chromium: the legend and the
drawn points stay in step under quick clicks, a box selects from the press to the release
whatever the pointer did between, `fit` zooms to the points and another map starts from
the whole frame, hover and pin mark their points without redrawing the points. On the
synthetic run of test_browser_atlas.py."""

import numpy as np
import pandas as pd
import pytest
from cnnatlas.viewer import write_atlas

from tests.integration.test_browser_atlas import _open, _screen, page, site  # noqa: F401
from tests.integration.test_browser_maps import chromium  # noqa: F401
from tests.synthetic_atlas import _map

pytestmark = pytest.mark.integration


def _drawn_vs_legend(page):  # noqa: F811
    page.evaluate("() => cnnatlas.settled()")
    return page.evaluate(
        """() => {
          const items = [...document.querySelectorAll('#atlas-legend li')];
          const hidden = items.filter((li) => li.classList.contains('hidden'));
          const shown = items.filter((li) => !li.classList.contains('hidden'))
            .reduce((n, li) => n + Number(li.querySelector('.count').textContent), 0);
          return {
            legend_hidden: hidden.map((li) => li.querySelector('.name').textContent).sort(),
            state_hidden: [...cnnatlas.state.hidden].sort(),
            legend_shown: shown,
            drawn: cnnatlas.scatterplot.get('filteredPoints').length,
          };
        }"""
    )


def test_quick_legend_clicks_leave_the_legend_and_the_points_in_step(page):  # noqa: F811
    warnings = []
    page.on("console", lambda m: warnings.append(m.text))
    page.locator("#atlas-legend li .name").first.dblclick()
    seen = _drawn_vs_legend(page)
    assert seen["legend_hidden"] == seen["state_hidden"] == []
    assert seen["drawn"] == seen["legend_shown"]
    # two names clicked one right after the other, while the first redraw runs
    page.evaluate(
        """() => { const names = document.querySelectorAll('#atlas-legend li .name');
                   names[1].click(); names[2].click(); }"""
    )
    seen = _drawn_vs_legend(page)
    assert len(seen["state_hidden"]) == 2
    assert seen["legend_hidden"] == seen["state_hidden"]
    assert seen["drawn"] == seen["legend_shown"]
    assert not [w for w in warnings if "Ignoring draw call" in w]


def _clear_box(screen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle over the middle of the points, holding at least 5 of them, with no
    point within 4 px of an edge."""
    for q in range(5, 45):
        lo, hi = (
            np.percentile(screen, q, axis=0),
            np.percentile(screen, 100 - q, axis=0),
        )
        near = np.any(
            (np.abs(screen - lo) < 4) | (np.abs(screen - hi) < 4), axis=1
        ) & np.all((screen > lo - 4) & (screen < hi + 4), axis=1)
        inside = np.all((screen > lo) & (screen < hi), axis=1)
        if not near.any() and inside.sum() >= 5:
            return lo, hi
    raise AssertionError("no rectangle clear of the points")


def _box_select(page, moves: int = 2) -> np.ndarray:  # noqa: F811
    """Drag a box over the middle of the points with the box tool; returns which
    points lie inside it."""
    screen = _screen(page)
    lo, hi = _clear_box(screen)
    page.click("[data-tool='box']")
    page.mouse.move(*lo)
    page.mouse.down()
    page.mouse.move(*hi, steps=moves)
    page.mouse.up()
    page.wait_for_function("() => Number(document.body.dataset.boxes || 0) > 0")
    return np.all((screen > lo) & (screen < hi), axis=1)


@pytest.mark.parametrize("moves", [1, 3])
def test_a_box_selects_from_the_press_to_the_release(page, moves):  # noqa: F811
    inside = _box_select(page, moves)
    assert inside.sum() >= 5
    assert (
        page.evaluate("() => cnnatlas.selection()") == np.flatnonzero(inside).tolist()
    )


def _distance(page) -> float:  # noqa: F811
    return page.evaluate("() => cnnatlas.scatterplot.get('cameraDistance')")


def test_fit_zooms_to_the_points_and_another_map_starts_unzoomed(page):  # noqa: F811
    whole = _distance(page)
    box = page.locator("#atlas-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(6):
        page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"() => cnnatlas.scatterplot.get('cameraDistance') < {whole} / 2"
    )
    page.select_option("#atlas-method", "pca")
    page.wait_for_function("() => cnnatlas.state.method === 'pca'")
    page.evaluate("() => cnnatlas.settled()")
    assert _distance(page) == pytest.approx(whole)
    page.click("#atlas-fit")
    page.wait_for_function(
        f"() => cnnatlas.scatterplot.get('cameraDistance') !== {whole}"
    )
    page.wait_for_timeout(0)
    screen = _screen(page)
    span = screen.max(axis=0) - screen.min(axis=0)
    inside = (screen >= [box["x"], box["y"]]) & (
        screen <= [box["x"] + box["width"], box["y"] + box["height"]]
    )
    assert inside.all()
    # fitted: the points span most of the canvas along one axis (padding 10%)
    assert max(span[0] / box["width"], span[1] / box["height"]) > 0.8


def test_a_checkpoint_in_a_small_part_of_the_shared_frame_says_so_and_fits(
    chromium,  # noqa: F811
    site,  # noqa: F811
    tmp_path,
):
    """Aligned maps share one frame: an early checkpoint whose points sit close
    together (an early PCA map) reads as one dot until `fit` zooms to it."""
    emb = pd.read_parquet(site["embedding2"])[["x", "y"]].to_numpy()
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    _map(emb * 0.02, aligned / "early.parquet")
    _map(emb * 3.0, aligned / "late.parquet")
    evolution = [{**site["inputs"]["evolution"][0], "dir": aligned}]
    atlas = site["atlas"].with_name("atlas-small.html")
    write_atlas(atlas, **{**site["inputs"], "evolution": evolution})
    url = atlas.as_uri() + "#model=net&ckpt=early&layer=fc&method=tsne+aligned"
    page = _open(chromium, url)  # noqa: F811
    try:
        assert "press fit" in page.text_content("#atlas-small")
        box = page.locator("#atlas-canvas").bounding_box()
        before = np.ptp(_screen(page), axis=0).max() / box["width"]
        assert before < 0.1
        page.click("#atlas-fit")
        page.wait_for_function("() => cnnatlas.scatterplot.get('cameraDistance') < 0.5")
        span = np.ptp(_screen(page), axis=0) / [box["width"], box["height"]]
        assert span.max() > 0.5, span
        page.select_option("#atlas-ckpt", "late")
        # the late checkpoint's points fill the frame: the note goes
        page.wait_for_function("() => cnnatlas.live.map.ckpt === 'late'")
        page.evaluate("() => cnnatlas.settled()")
        page.wait_for_function("() => !document.getElementById('atlas-small')")
        assert page.problems == []
        assert page.problems == []
    finally:
        page.close()


def test_search_with_a_class_hidden_selects_and_counts_the_shown_matches(page, site):  # noqa: F811
    man = pd.read_parquet(site["manifest"])
    first = page.locator("#atlas-legend li .name").first
    hidden = first.text_content()
    first.click()
    page.wait_for_function("(c) => cnnatlas.state.hidden.has(c)", arg=hidden)
    page.evaluate("() => cnnatlas.settled()")
    page.fill("#atlas-search", "class")
    hit = man["path"].str.lower().str.contains("class", regex=False)
    hit |= man["label_name"].str.lower().str.contains("class", regex=False)
    hit |= man["domain"].str.lower().str.contains("class", regex=False)
    in_hidden = hit & (man["label_name"] == hidden)
    expected = man.loc[hit & ~in_hidden, "image_id"].tolist()
    assert expected and in_hidden.any()
    page.wait_for_function(
        "(n) => cnnatlas.selection().length === n", arg=len(expected), timeout=10_000
    )
    assert page.evaluate("() => cnnatlas.selection()") == sorted(expected)
    count = page.text_content("#atlas-search-count")
    assert count.startswith(f"{len(expected)} matches (")
    assert count.endswith(f"; {int(in_hidden.sum())} more in hidden classes")
    by_path = int((man["path"].str.lower().str.contains("class") & ~in_hidden).sum())
    assert f"{by_path} by path" in count


def test_a_phone_width_page_does_not_scroll_sideways(chromium, site):  # noqa: F811
    page = chromium.new_page(viewport={"width": 390, "height": 800})  # noqa: F811
    try:
        page.goto(site["atlas"].as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
        for part in ("#atlas-plot", "aside"):
            box = page.locator(part).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, part
        assert page.locator("#atlas-plot").bounding_box()["width"] > 300
    finally:
        page.close()


def test_the_zoom_and_centre_live_in_the_url(chromium, page):  # noqa: F811
    box = page.locator("#atlas-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
    for _ in range(4):
        page.mouse.wheel(0, -400)
    page.wait_for_function(
        "() => new URLSearchParams(location.hash.slice(1)).has('view')"
        " && cnnatlas.scatterplot.get('cameraDistance') < 0.5"
    )
    # the address follows once the wheel rests
    page.wait_for_function(
        """() => { const v = new URLSearchParams(location.hash.slice(1)).get('view');
                   const d = Number(v.split(',')[2]);
                   return Math.abs(d - cnnatlas.scatterplot.get('cameraDistance')) < 1e-4; }"""
    )
    screen = _screen(page)
    other = _open(chromium, page.url)
    try:
        other.evaluate("() => cnnatlas.settled()")
        assert np.allclose(_screen(other), screen, atol=0.5)
        assert other.problems == []
    finally:
        other.close()
    # fit (the 0 key) zooms back out to the points, and the address follows
    page.keyboard.press("0")
    page.wait_for_function(
        """() => { const d = cnnatlas.scatterplot.get('cameraDistance');
                   const v = new URLSearchParams(location.hash.slice(1)).get('view');
                   return d > 0.5 && (v === null
                     ? Math.abs(d - 1) < 1e-6 : Math.abs(Number(v.split(',')[2]) - d) < 1e-4); }"""
    )


# Every draw of the points, counted as regl-scatterplot announces it.
COUNT_DRAWS = """() => { window.draws = 0;
  cnnatlas.scatterplot.subscribe('drawing', () => { window.draws += 1; }); }"""
FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
# Until the camera rests (a wheel's easing or a zoom's animation ended): the same view
# over five frames.
STILL = """async () => {
  const view = () => String(cnnatlas.scatterplot.get('cameraView'));
  const frame = () => new Promise(r => requestAnimationFrame(r));
  let same = 0, last = view();
  while (same < 5) { await frame(); const v = view(); same = v === last ? same + 1 : 0; last = v; }
}"""


def _lone_points(screen: np.ndarray, gap: float = 14) -> list[int]:
    d = np.linalg.norm(screen[:, None] - screen[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return np.flatnonzero(d.min(axis=1) > gap).tolist()


def test_hover_and_pin_mark_their_point_without_redrawing_the_points(page, site):  # noqa: F811
    """The hovered point is ringed on a layer above the points, named at the cursor and
    described in the panel; a click pins it and rings its neighbours; regl-scatterplot
    draws nothing for either (it redrew every point for each before)."""
    page.evaluate("() => cnnatlas.settled()")
    page.evaluate(COUNT_DRAWS)
    screen = _screen(page)
    lone = _lone_points(screen)
    assert len(lone) >= 3
    man = pd.read_parquet(site["manifest"]).set_index("image_id")
    for i in lone[:3]:
        page.mouse.move(5, 5)
        page.mouse.move(*screen[i])
        page.wait_for_function(
            "(i) => document.getElementById('atlas-hover').dataset.imageId === String(i)",
            arg=i,
        )
        assert page.evaluate("() => cnnatlas.live.hover") == i
        tip = page.locator("#atlas-tooltip")
        assert tip.is_visible()
        assert tip.text_content().startswith(f"{man.loc[i, 'label_name']} → ")
        # the tooltip sits by the cursor
        tb = tip.bounding_box()
        assert (
            abs(tb["x"] - screen[i][0]) < 40
            and abs(tb["y"] + tb["height"] - screen[i][1]) < 40
        )
    # the ring is drawn on the hover layer, around the point
    ink = page.evaluate(
        """(p) => { const c = document.getElementById('atlas-hoverlayer');
          const r = c.getBoundingClientRect(); const k = c.width / r.width;
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0, far = 0;
          for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
            if (d[4 * (y * c.width + x) + 3] === 0) continue;
            n++; if (Math.hypot(x / k + r.left - p[0], y / k + r.top - p[1]) > 20) far++;
          }
          return [n, far]; }""",
        screen[lone[2]].tolist(),
    )
    assert ink[0] > 10 and ink[1] == 0, ink
    page.mouse.move(*(screen[lone[0]] + [0.5, -0.5]))
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("(i) => cnnatlas.pinned() === i", arg=lone[0])
    page.evaluate(FRAMES)
    assert page.evaluate("() => window.draws") == 0
    # leaving the map hides the tooltip
    page.mouse.move(2, 2)
    page.wait_for_function("() => document.getElementById('atlas-tooltip').hidden")


def test_the_page_finds_the_point_under_the_cursor_as_regl_scatterplot_places_it(page):  # noqa: F811
    """The page's own projection equals regl-scatterplot's after a zoom and a pan, and its
    hit test finds each point at its place (the nearest one where points overlap)."""
    box = page.locator("#atlas-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.6)
    page.mouse.wheel(0, -150)
    page.mouse.down()
    page.mouse.move(
        box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4
    )
    page.mouse.up()
    page.wait_for_function("() => cnnatlas.scatterplot.get('cameraDistance') < 0.98")
    page.evaluate("() => cnnatlas.settled()")
    page.evaluate(FRAMES)
    screen = _screen(page)
    ours = np.array(
        page.evaluate(
            "(n) => [...Array(n).keys()].map((i) => cnnatlas.project(i))", len(screen)
        )
    )
    assert np.abs(ours - screen).max() < 0.01
    found = page.evaluate(
        "(s) => s.map(([x, y]) => cnnatlas.pointAt(x, y))", screen.tolist()
    )
    on = (screen[:, 0] > box["x"]) & (screen[:, 0] < box["x"] + box["width"])
    on &= (screen[:, 1] > box["y"]) & (screen[:, 1] < box["y"] + box["height"])
    assert on.sum() >= 5
    for i in np.flatnonzero(on):
        j = found[i]
        d = np.linalg.norm(screen - screen[i], axis=1)
        assert j >= 0 and d[j] == d.min(), (i, j)
    assert page.evaluate("() => cnnatlas.pointAt(-50, -50)") == -1


def _matrix(page) -> dict:  # noqa: F811
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll(
             '#atlas-confusion-table td')].map((td) => [
             `${td.dataset.true},${td.dataset.pred}`, Number(td.textContent || 0)]))"""
    )


def _counts(labels, preds, ids=None) -> dict:
    ids = range(len(labels)) if ids is None else ids
    out = {}
    for i in ids:
        key = f"{labels[i]},{preds[i]}"
        out[key] = out.get(key, 0) + 1
    return out


def test_the_confusion_matrix_selects_a_cell_and_counts_a_selection(page, site):  # noqa: F811
    """The matrix counts true × predicted classes at the map's checkpoint; a click on a
    cell selects exactly its images; a box selection shows its own counts."""
    man = pd.read_parquet(site["manifest"]).sort_values("image_id")
    pred = pd.read_parquet(site["predictions"]).sort_values("image_id")
    labels = man["label"].to_numpy()
    preds = pred["pred"].to_numpy()  # outputs are the dataset's classes here
    page.evaluate("() => cnnatlas.settled()")
    cells = _matrix(page)
    want = _counts(labels, preds)
    assert {k: v for k, v in cells.items() if v} == want
    assert page.text_content("#atlas-confusion-scope").startswith(
        f"all {len(man)} images"
    )
    # an off-diagonal cell: its images, exactly, on the map and in the grid
    t, q = map(int, max((k for k in want if k.split(",")[0] != k.split(",")[1]),
                        key=lambda k: (want[k], k)).split(","))  # fmt: skip
    page.click(f"#atlas-confusion-table td[data-true='{t}'][data-pred='{q}']")
    expected = np.flatnonzero((labels == t) & (preds == q)).tolist()
    page.wait_for_function(
        "(n) => cnnatlas.selection().length === n", arg=len(expected)
    )
    assert page.evaluate("() => cnnatlas.selection()") == expected
    grid = page.eval_on_selector_all(
        "#atlas-grid figure", "fs => fs.map(f => Number(f.dataset.imageId))"
    )
    assert grid == expected
    assert page.locator("#atlas-confusion-table td.on").count() == 1
    # a box on the map: the matrix counts the selected images only
    _box_select(page)
    boxed = page.evaluate("() => cnnatlas.selection()")
    assert boxed != expected
    cells = _matrix(page)
    assert {k: v for k, v in cells.items() if v} == _counts(labels, preds, boxed)
    assert page.text_content("#atlas-confusion-scope").startswith(
        f"the {len(boxed)} selected images"
    )


def test_explain_these_copies_a_config_snippet_the_schema_accepts(page, site):  # noqa: F811
    """`explain these` turns the selection into explain.images.ids; merged into the
    demo config the result validates against the workflow's schema."""
    import jsonschema
    import yaml
    from cnnatlas.schema import load_schema

    from tests.conftest import REPO

    page.fill("#atlas-search", "class")
    page.wait_for_function("() => cnnatlas.selection().length > 0")
    selected = page.evaluate("() => cnnatlas.selection()")
    page.click("#atlas-explain")
    snippet = yaml.safe_load(page.input_value("#atlas-ids"))
    assert snippet == {"explain": {"images": {"ids": selected}}}
    assert f"these {len(selected)} images" in page.input_value("#atlas-ids")
    # a larger selection: the first 32
    text = page.evaluate("() => cnnatlas.explainSnippet([...Array(40).keys()])")
    assert yaml.safe_load(text) == {"explain": {"images": {"ids": list(range(32))}}}
    assert "the first 32 of the 40 selected images" in text
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.setdefault("explain", {})["images"] = snippet["explain"]["images"]
    errors = list(jsonschema.Draft7Validator(load_schema()).iter_errors(config))
    assert errors == []
    # the validator does reject a wrong snippet (the check can fail)
    config["explain"]["images"]["ids"] = ["3"]
    assert list(jsonschema.Draft7Validator(load_schema()).iter_errors(config))


def _drawn(page) -> list[int]:  # noqa: F811
    page.evaluate("() => cnnatlas.settled()")
    return sorted(page.evaluate("() => cnnatlas.scatterplot.get('filteredPoints')"))


def _brush(page, field: str, a: float, b: float) -> None:  # noqa: F811
    box = page.locator(f".filter[data-field='{field}'] canvas").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + a * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + b * box["width"], y, steps=3)
    page.mouse.up()


def test_range_filters_keep_the_points_inside_and_live_in_the_url(chromium, page, site):  # noqa: F811
    """A drag across the confidence histogram keeps the points whose confidence is in
    the range; a loss range narrows it further; hiding a class combines with both; the
    address restores them; each histogram counts the points the other filters keep."""
    pred = pd.read_parquet(site["predictions"]).sort_values("image_id")
    conf = pred["confidence"].to_numpy(np.float32).astype(np.float64)
    loss = pred["loss"].to_numpy(np.float64)
    fields = page.eval_on_selector_all(".filter", "fs => fs.map(f => f.dataset.field)")
    assert fields[:4] == ["confidence", "loss", "entropy", "margin"]
    _brush(page, "confidence", 0.3, 0.95)
    page.wait_for_function("() => 'confidence' in cnnatlas.state.filters")
    lo, hi = page.evaluate("() => cnnatlas.state.filters.confidence")
    assert conf.min() < lo < hi < conf.max()
    keep = (conf >= lo) & (conf <= hi)
    assert 0 < keep.sum() < len(conf)
    page.wait_for_function(
        "(n) => cnnatlas.scatterplot.get('filteredPoints').length === n",
        arg=int(keep.sum()),
    )
    assert _drawn(page) == np.flatnonzero(keep).tolist()
    _brush(page, "loss", 0.0, 0.5)
    page.wait_for_function("() => 'loss' in cnnatlas.state.filters")
    llo, lhi = page.evaluate("() => cnnatlas.state.filters.loss")
    # the page holds the losses to four significant digits
    shown_loss = np.array(
        page.evaluate("() => Array.from(cnnatlas.live.run.scores.loss)")
    )
    assert np.allclose(shown_loss, loss, rtol=1e-3)
    keep &= (shown_loss >= llo) & (shown_loss <= lhi)
    page.wait_for_function(
        "(n) => cnnatlas.scatterplot.get('filteredPoints').length === n",
        arg=int(keep.sum()),
    )
    assert _drawn(page) == np.flatnonzero(keep).tolist()
    # the confidence histogram counts what the loss filter keeps (its own range aside)
    shown = page.evaluate(
        """() => { const c = document.querySelector(".filter[data-field='confidence'] canvas");
                   return c.getContext('2d').getImageData(0, 0, c.width, c.height).data
                     .some((v, k) => k % 4 === 3 && v > 0); }"""
    )
    assert shown
    # a hidden class combines with the ranges
    labels = pd.read_parquet(site["manifest"]).sort_values("image_id")["label_name"]
    first = page.locator("#atlas-legend li .name").first
    hidden = first.text_content()
    first.click()
    page.wait_for_function("(c) => cnnatlas.state.hidden.has(c)", arg=hidden)
    keep &= (labels != hidden).to_numpy()
    page.wait_for_function(
        "(n) => cnnatlas.scatterplot.get('filteredPoints').length === n",
        arg=int(keep.sum()),
    )
    assert _drawn(page) == np.flatnonzero(keep).tolist()
    # each histogram counts the points of the shown classes that the other filters keep
    # (its extent in 24 bins), those inside its own range too, and the selected ones
    page.fill("#atlas-search", "class")
    page.wait_for_function("() => cnnatlas.selection().length > 0")
    selected = np.zeros(len(conf), bool)
    selected[page.evaluate("() => cnnatlas.selection()")] = True
    hists = {h["name"]: h for h in page.evaluate("() => cnnatlas.histograms()")}
    shown_conf = np.array(
        page.evaluate("() => Array.from(cnnatlas.live.run.confidence)")
    )
    in_conf = (shown_conf >= lo) & (shown_conf <= hi)
    in_loss = (shown_loss >= llo) & (shown_loss <= lhi)
    visible = (labels != hidden).to_numpy()
    for name, values, own, others in (
        ("confidence", shown_conf, in_conf, in_loss),
        ("loss", shown_loss, in_loss, in_conf),
    ):
        h = hists[name]
        assert h["extent"] == [values.min(), values.max()]
        span = values.max() - values.min()
        bins = np.minimum(23, np.floor((values - values.min()) / span * 24)).astype(int)
        counted = visible & others
        for key, mask in (("base", counted), ("inside", counted & own),
                          ("selected", counted & selected)):  # fmt: skip
            assert h[key] == np.bincount(bins[mask], minlength=24).tolist(), (name, key)
    page.fill("#atlas-search", "")
    # the address keeps the filters
    page.wait_for_function("() => location.hash.includes('filter=')")
    other = _open(chromium, page.url)
    try:
        assert _drawn(other) == np.flatnonzero(keep).tolist()
        assert other.evaluate("() => cnnatlas.state.filters") == {
            "confidence": [lo, hi],
            "loss": [llo, lhi],
        }
    finally:
        other.close()
    # a click on a histogram clears its filter
    box = page.locator(".filter[data-field='loss'] canvas").bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)
    page.wait_for_function("() => !('loss' in cnnatlas.state.filters)")


def test_colour_by_loss_spans_the_losses(page, site):  # noqa: F811
    pred = pd.read_parquet(site["predictions"])
    page.select_option("#atlas-colour", "loss")
    page.wait_for_function(
        "() => cnnatlas.live.mode && cnnatlas.state.colour === 'loss'"
    )
    page.evaluate("() => cnnatlas.settled()")
    assert page.text_content("#atlas-legend h3") == "colour: loss"
    lo, hi = page.evaluate("() => cnnatlas.live.mode.range")
    assert lo == pytest.approx(pred["loss"].min(), rel=1e-3)
    assert hi == pytest.approx(pred["loss"].max(), rel=1e-3)


def test_contours_and_cluster_labels_are_drawn_where_the_map_puts_them(chromium, page):  # noqa: F811
    """Both toggles draw the map's precomputed contours and labels on their layer, at the
    place regl-scatterplot puts those map coordinates; the address keeps them on."""
    density = page.evaluate("() => cnnatlas.live.map.density")
    assert density["contours"] and density["clusters"]
    page.check("#atlas-contours")
    page.check("#atlas-clusters")
    page.wait_for_function(
        "(n) => document.getElementById('atlas-density').dataset.drawn === n",
        arg=f"{len(density['contours'])},{len(density['clusters'])}",
    )
    # ink around the first cluster label's place: near the point closest to it
    norm = page.evaluate("() => cnnatlas.live.norm")
    c = density["clusters"][0]
    g = np.array([(c["x"] - norm["cx"]) / norm["s"], (c["y"] - norm["cy"]) / norm["s"]])
    pts = np.array(page.evaluate("() => cnnatlas.live.points.map((p) => [p[0], p[1]])"))
    d = np.linalg.norm(pts - g, axis=1)
    assert d.min() < 0.3  # a dense region's label sits among its points
    k = page.evaluate(
        "() => document.getElementById('atlas-density').width"
        " / document.getElementById('atlas-canvas').getBoundingClientRect().width"
    )
    x, y = page.evaluate("(i) => cnnatlas.project(i)", int(d.argmin()))
    box = page.locator("#atlas-canvas").bounding_box()
    ink = page.evaluate(
        """([x, y, k]) => { const cv = document.getElementById('atlas-density');
          const d = cv.getContext('2d').getImageData(Math.max(0, x * k - 40 * k),
            Math.max(0, y * k - 40 * k), 80 * k, 80 * k).data;
          let n = 0; for (let j = 3; j < d.length; j += 4) if (d[j] > 0) n++; return n; }""",
        [x - box["x"], y - box["y"], k],
    )
    assert ink > 20
    page.wait_for_function("() => location.hash.includes('layers=contours%2Cclusters')")
    other = _open(chromium, page.url)
    try:
        assert other.is_checked("#atlas-contours") and other.is_checked(
            "#atlas-clusters"
        )
        other.wait_for_function(
            "() => (document.getElementById('atlas-density').dataset.drawn || '0,0') !== '0,0'"
        )
    finally:
        other.close()
    page.uncheck("#atlas-contours")
    page.wait_for_function(
        "(n) => document.getElementById('atlas-density').dataset.drawn === n",
        arg=f"0,{len(density['clusters'])}",
    )


def _in_view(page) -> list[int]:  # noqa: F811
    screen = _screen(page)
    box = page.locator("#atlas-canvas").bounding_box()
    inside = (screen[:, 0] >= box["x"]) & (screen[:, 0] <= box["x"] + box["width"])
    inside &= (screen[:, 1] >= box["y"]) & (screen[:, 1] <= box["y"] + box["height"])
    drawn = set(_drawn(page))
    return [i for i in np.flatnonzero(inside).tolist() if i in drawn]


def test_svg_and_png_export_the_view(page, site):  # noqa: F811
    """SVG: one vector mark per point in view, in its class's colour and at its place;
    PNG: the canvas's pixels, the points in their colours."""
    import xml.etree.ElementTree as ET

    from PIL import Image

    labels = (
        pd.read_parquet(site["manifest"]).sort_values("image_id")["label"].to_numpy()
    )
    colours = page.evaluate(
        "() => JSON.parse(document.getElementById('cnnatlas-data').textContent).class_colours"
    )
    # zoom in a little, so that some points leave the view
    box = page.locator("#atlas-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.wheel(0, -250)
    page.wait_for_function("() => cnnatlas.scatterplot.get('cameraDistance') < 0.95")
    page.evaluate(STILL)
    in_view = _in_view(page)
    assert 0 < len(in_view) < len(labels)
    with page.expect_download() as got:
        page.click("#atlas-svg")
    svg = ET.parse(got.value.path()).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    marks = svg.findall("s:g[@id='points']/s:path", ns)
    ids = [int(m.get("data-image-id")) for m in marks]
    assert sorted(ids) == in_view
    for m in marks:
        i = int(m.get("data-image-id"))
        assert m.get("fill") == colours[labels[i] % len(colours)]
    with page.expect_download() as got:
        page.click("#atlas-png")
    img = np.asarray(Image.open(got.value.path()).convert("RGB")).astype(int)
    k = page.evaluate("() => window.devicePixelRatio")
    assert img.shape[:2] == (round(box["height"] * k), round(box["width"] * k))
    screen = _screen(page)
    lone = [i for i in _lone_points(screen) if i in in_view]
    assert lone
    for i in lone[:3]:
        x, y = (screen[i] - [box["x"], box["y"]]) * k
        rgb = img[int(y), int(x)]
        want = np.array(
            [int(colours[labels[i] % len(colours)][j : j + 2], 16) for j in (1, 3, 5)]
        )
        assert np.abs(rgb - want).max() < 60, (i, rgb, want)


def test_keyboard_shortcuts_and_their_help(page):  # noqa: F811
    page.keyboard.press("?")
    assert page.locator("#atlas-help").is_visible()
    keys = page.eval_on_selector_all(
        "#atlas-help-keys kbd", "ks => ks.map(k => k.textContent)"
    )
    assert {"?", "0", "r", "s", "c", "k", "/", "Escape"} <= set(keys)
    page.keyboard.press("?")
    assert not page.locator("#atlas-help").is_visible()
    for key, tool in (("l", "lasso"), ("b", "box"), ("p", "pan")):
        page.keyboard.press(key)
        assert page.evaluate("() => cnnatlas.state.tool") == tool
    page.keyboard.press("c")
    page.wait_for_function("() => cnnatlas.state.contours === true")
    assert page.is_checked("#atlas-contours")
    # "/" focuses the search; Escape leaves it, a second Escape clears the selection
    page.keyboard.press("/")
    page.keyboard.type("class")
    page.wait_for_function("() => cnnatlas.selection().length > 0")
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    page.wait_for_function("() => cnnatlas.selection().length === 0")


def test_s_zooms_to_the_selection_and_r_resets(page):  # noqa: F811
    _box_select(page)
    chosen = page.evaluate("() => cnnatlas.selection()")
    page.keyboard.press("s")
    page.wait_for_function("() => cnnatlas.scatterplot.get('cameraDistance') < 0.99")
    page.evaluate(STILL)
    after = _screen(page)[chosen]
    box = page.locator("#atlas-canvas").bounding_box()
    assert (after[:, 0] >= box["x"]).all() and (
        after[:, 0] <= box["x"] + box["width"]
    ).all()
    span = np.ptp(after, axis=0) / [box["width"], box["height"]]
    assert span.max() > 0.6  # the selection now fills most of the view
    page.keyboard.press("r")
    page.wait_for_function(
        "() => Math.abs(cnnatlas.scatterplot.get('cameraDistance') - 1) < 1e-6"
    )


def test_dark_mode_follows_the_system_setting(chromium, site):  # noqa: F811
    page = chromium.new_page(color_scheme="dark")  # noqa: F811
    try:
        page.goto(site["atlas"].as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert (
            page.evaluate("() => getComputedStyle(document.body).backgroundColor")
            == "rgb(22, 22, 22)"
        )
        bg = page.evaluate(
            "() => Array.from(cnnatlas.scatterplot.get('backgroundColor'))"
        )
        assert np.allclose(bg[:3], [22 / 255] * 3, atol=0.01)
    finally:
        page.close()
