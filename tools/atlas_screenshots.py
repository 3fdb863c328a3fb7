"""Regenerate the atlas screenshots of the docs from a finished demo run.

    .venv/bin/snakemake --cores all          # the demo, into results/
    .venv/bin/python tools/atlas_screenshots.py

docs/atlas-compare.png: results/compare.html with relu (left) and features.1.3 (right)
of the last checkpoint, a filter on confidence in the left half, a confusion cell
selected (linked to the right half) and the contours on. Headless Chromium
(/usr/bin/chromium through playwright); deterministic data, so only fonts and the
software renderer change the pixels.
"""

import argparse
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def compare_url(results: Path, ckpt: str) -> str:
    view = {"model": "digitnet", "ckpt": ckpt, "method": "tsne", "layers": "contours"}
    a = urlencode({**view, "layer": "relu"})
    b = urlencode({**view, "layer": "features.1.3"})
    return (
        (results / "compare.html").as_uri()
        + "#"
        + urlencode({"a": a, "b": b}, quote_via=quote)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=REPO / "results")
    ap.add_argument("--ckpt", default="step0600")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "atlas-compare.png")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(
            viewport={"width": 1800, "height": 1150}, device_scale_factor=1
        )
        page.goto(compare_url(args.results, args.ckpt))
        left, right = (
            page.locator(f"#frame-{k}").element_handle().content_frame() for k in "ab"
        )
        for f in (left, right):
            f.wait_for_selector("body[data-ready='1']", timeout=60_000)
        # a confidence filter in the left half: the images the model is unsure of
        hist = left.locator(".filter[data-field='confidence'] canvas")
        hist.scroll_into_view_if_needed()
        box = hist.bounding_box()  # in the page's coordinates
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 1, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.85, y, steps=4)
        page.mouse.up()
        left.wait_for_function("() => 'confidence' in cnnatlas.state.filters")
        # the largest off-diagonal confusion cell, selected in both halves
        left.evaluate(
            """() => {
              const cells = [...document.querySelectorAll('#atlas-confusion-table td')]
                .filter((td) => td.dataset.true !== td.dataset.pred && td.textContent);
              cells.sort((a, b) => Number(b.textContent) - Number(a.textContent));
              cells[0].click();
            }"""
        )
        right.wait_for_function("() => cnnatlas.selection().length > 0")
        for f in (left, right):
            f.evaluate("() => cnnatlas.settled()")
        page.mouse.move(5, 5)
        page.screenshot(path=str(args.out))
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
