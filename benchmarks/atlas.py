"""The atlas page against the per-map plotly page, at 10,000 / 100,000 / 1,000,000 points.

For each N: a synthetic run (10 classes, Gaussian clusters, real `predictions_table`, a
`domain` metadata column, feature-space neighbours of every point) and one 2-D map,
written once as atlas.html and once as the plotly page `interactive.write_interactive`
makes. Both are opened from file:// in headless Chromium (/usr/bin/chromium through
playwright; no GPU here, so WebGL runs on SwiftShader, Chromium's software renderer) and
timed from the page's own clock:

- page size, and the bytes of the map's coordinates inside the atlas; for a page above
  `--inline-mb` (its data in the sidecar folder atlas_files/), the folder's files and
  bytes, and one map's bytes (its coordinates and density contours: what drawing a map
  reads beyond what the first map read);
- first render: navigation start to the page's ready flag (everything decoded, drawn);
- hover: a synthetic mousemove over a point to the hover panel showing that image,
  painted (the next animation frame);
- pin: a click on a point to the pinned panel and its neighbours' rings, painted;
- draws: how many times regl-scatterplot redrew the points for the five hovers and the pin;
- lasso: a polygon holding about 1,000 points drawn with the mouse, from the release of
  the button to the image grid rendered (atlas only; plotly has no grid);
- pan (atlas): ten drag steps, then the page must still answer.

`--also-inline` measures, beside the page as `--inline-mb` writes it, the page with all
its data inside it ("atlas_inline"), in the same run.

`--maps K` writes K maps of the points (the first one's coordinates turned by a
different angle each) to see the page's size grow with the maps.

With `--baseline REF` the atlas page git revision REF writes (its own package, template
and bundle, run from an archive of the revision) is measured beside today's on the same
data, in the same run ("atlas_REF").

Prints one JSON object. Compare atlas and plotly within one run (same machine, same load).

    .venv/bin/python benchmarks/atlas.py --points 10000 100000 1000000
    .venv/bin/python benchmarks/atlas.py --points 100000 --plotly-max 0 --baseline c734ae7
    .venv/bin/python benchmarks/atlas.py --points 1280000 --plotly-max 0 --maps 4 \
        --also-inline
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.extract import predictions_table  # noqa: E402
from cnnatlas.interactive import write_interactive  # noqa: E402
from cnnatlas.io import write_parquet  # noqa: E402
from cnnatlas.metrics import feature_neighbors  # noqa: E402
from cnnatlas.plots import load_points  # noqa: E402
from cnnatlas.schema import default  # noqa: E402
from cnnatlas.viewer import write_atlas  # noqa: E402
from cnnatlas.viewer.atlas import sidecar_folder  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CLASSES = [f"class{i}" for i in range(10)]


def synthetic(folder: Path, n: int, maps: int = 1) -> dict:
    """Manifest, predictions, `maps` 2-D maps and neighbours of n points."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    man = pd.DataFrame(
        {
            "image_id": np.arange(n),
            "path": [f"data/class{c}/image_{i:07d}.png" for i, c in enumerate(labels)],
            "label": labels,
            "label_name": [CLASSES[c] for c in labels],
            "domain": np.where(rng.random(n) < 0.5, "source", "target"),
        }
    )
    meta = {"cnnatlas.classes": json.dumps(CLASSES)}
    write_parquet(man, folder / "manifest.parquet", meta=meta)
    logits = rng.normal(size=(n, 10)) + 3 * np.eye(10)[labels]
    write_parquet(
        predictions_table(man, logits, CLASSES, 5), folder / "pred.parquet", meta=meta
    )
    xy = rng.normal(size=(n, 2)) + 6 * rng.normal(size=(10, 2))[labels]
    emb = pd.DataFrame({"image_id": np.arange(n), "x": xy[:, 0], "y": xy[:, 1]})
    write_parquet(
        emb.astype({"x": np.float32, "y": np.float32}), folder / "map.parquet"
    )
    for m in range(1, maps):
        c, s = np.cos(m), np.sin(m)
        turned = emb.assign(
            x=c * xy[:, 0] - s * xy[:, 1], y=s * xy[:, 0] + c * xy[:, 1]
        )
        write_parquet(
            turned.astype({"x": np.float32, "y": np.float32}),
            folder / f"map{m}.parquet",
        )
    np.save(folder / "features.npy", xy.astype(np.float32))
    feature_neighbors(
        folder / "features.npy",
        folder / "neighbors.npy",
        k=10,
        distances_out=folder / "distances.npy",
        seed=default("maps.metrics.seed"),
    )
    return {
        "manifest": folder / "manifest.parquet",
        "predictions": {"bench/ckpt": folder / "pred.parquet"},
        "maps": [{"model": "bench", "ckpt": "ckpt", "layer": "fc", "method": "tsne",
                  "perplexity": 30, "seed": m,
                  "embedding": folder / (f"map{m}.parquet" if m else "map.parquet")}
                 for m in range(maps)],
        "neighbors": [{"model": "bench", "ckpt": "ckpt", "layer": "fc",
                       "path": folder / "neighbors.npy",
                       "distances": folder / "distances.npy"}],
    }  # fmt: skip


def open_page(browser, url: str, timeout_ms: int):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("crash", lambda *_: errors.append("page crashed"))
    page.goto(url, timeout=timeout_ms)
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    return page, errors


# From the mousemove event (its timeStamp, on the page's clock) to the hover panel showing
# the point, painted (the next animation frame).
HOVER_WAIT = """async (before) => {
  const box = document.getElementById('atlas-hover');
  // before is null for the first hover (no panel yet): playwright hands undefined over so
  while ((box.dataset.shownAt ?? null) === before) await new Promise(r => setTimeout(r, 1));
  await new Promise(r => requestAnimationFrame(r));
  return [Number(box.dataset.shownAt) - window.lastMoveAt, performance.now() - window.lastMoveAt];
}"""


# From the click (its timeStamp) to the pinned panel filled, then painted.
PIN_WAIT = """async (i) => {
  // pages before cnnatlas.pinned() filled the panel as they set state.pin
  const pinned = () => (cnnatlas.pinned ? cnnatlas.pinned() : cnnatlas.state.pin);
  while (pinned() !== i) await new Promise(r => setTimeout(r, 1));
  await new Promise(r => requestAnimationFrame(r));
  return performance.now() - window.lastClickAt;
}"""
COUNT_DRAWS = """() => { window.draws = 0;
  cnnatlas.scatterplot.subscribe('drawing', () => { window.draws += 1; }); }"""


def pin(page, screen: np.ndarray) -> float:
    """Click the point farthest from the others (so the click hits it) and time the pin."""
    centre = np.median(screen, axis=0)
    i = int(np.argmax(np.linalg.norm(screen - centre, axis=1)))
    page.mouse.move(*screen[i])
    page.wait_for_timeout(50)
    page.mouse.click(*screen[i])
    return float(page.evaluate(PIN_WAIT, i))


def hover(page, xy) -> list[float]:
    page.mouse.move(5, 5)  # away first, so that each hover is a new point
    page.wait_for_timeout(50)
    before = page.evaluate(
        "() => document.getElementById('atlas-hover').dataset.shownAt"
    )
    page.mouse.move(*xy)
    return page.evaluate(HOVER_WAIT, before)


def block_mb(header: dict, ref: dict | None, page: Path) -> float:
    """The bytes of one block, in the page (its base64) or in the sidecar folder."""
    if ref is None:
        return 0.0
    item = header["blocks"][ref["b"]]
    size = (
        len(item)
        if isinstance(item, str)
        else (page.parent / item["src"]).stat().st_size
    )
    return size / 1e6


def page_header(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    start = text.index('id="cnnatlas-data">') + len('id="cnnatlas-data">')
    return json.loads(text[start : text.index("</script>", start)])


def bench_atlas(
    browser,
    folder: Path,
    inputs: dict,
    timeout_ms: int,
    baseline: str | None = None,
    inline_mb: float | None = None,
    name: str = "atlas",
) -> dict:
    """Today's page, or with `baseline` the page git revision `baseline` writes."""
    out = folder / ("baseline.html" if baseline else f"{name}.html")
    t = time.perf_counter()
    if baseline:
        size = write_at(baseline, folder.parent, out, inputs)
    else:
        size = write_atlas(out, inline_mb=inline_mb, **inputs)
    write_s = time.perf_counter() - t
    page, errors = open_page(browser, out.as_uri(), timeout_ms)
    res = {"size_mb": size / 1e6, "write_s": write_s}
    if not baseline:
        header = page_header(out)
        files = sorted(sidecar_folder(out).glob("*.js"))
        res["sidecar_files"] = len(files)
        res["sidecar_mb"] = sum(f.stat().st_size for f in files) / 1e6
        res["maps"] = len(header["maps"])
        one = header["maps"][-1]
        res["map_xy_mb"] = block_mb(header, one["xy"], out)
        lines = (one["density"] or {}).get("lines")
        res["map_mb"] = res["map_xy_mb"] + block_mb(header, lines, out)
    res["first_render_ms"] = float(page.evaluate("() => document.body.dataset.readyAt"))
    screen = np.array(page.evaluate("() => cnnatlas.screenAll()")).reshape(-1, 2)
    page.evaluate(
        "() => window.addEventListener('mousemove',"
        " e => { window.lastMoveAt = e.timeStamp; }, true)"
    )
    page.evaluate(
        "() => window.addEventListener('click',"
        " e => { window.lastClickAt = e.timeStamp; }, true)"
    )
    page.evaluate(COUNT_DRAWS)
    hovers = [
        hover(page, screen[i].tolist())
        for i in np.random.default_rng(1).choice(len(screen), 5, replace=False)
    ]
    res["pin_ms"] = pin(page, screen)
    res["draws_for_hovers_and_pin"] = page.evaluate("() => window.draws")
    # hover_ms: event to the panel painted; hover_panel_ms: event to the panel's text and
    # thumbnail set (before the frame, which also redraws the WebGL canvas).
    res["hover_ms"] = float(np.median([h[1] for h in hovers]))
    res["hover_panel_ms"] = float(np.median([h[0] for h in hovers]))
    res["hovers"] = hovers
    res["lasso_points"], res["lasso_to_grid_ms"] = lasso(page, screen)
    res["pan_ok"] = pan(page)
    res["errors"] = errors
    page.close()
    return res


def lasso(page, screen: np.ndarray) -> tuple[int, float]:
    """Draw a circle holding ~1,000 points around the densest point; time release to grid."""
    centre = np.median(screen, axis=0)
    d = np.sort(np.linalg.norm(screen - centre, axis=1))
    radius = float(d[min(999, len(d) - 1)]) + 0.01
    ring = (
        centre + radius * np.c_[np.cos(a := np.linspace(0, 2 * np.pi, 24)), np.sin(a)]
    )
    page.click("[data-tool='lasso']")
    page.mouse.move(*ring[0])
    page.mouse.down()
    for p in ring[1:]:
        page.mouse.move(*p, steps=2)
        page.wait_for_timeout(10)
    page.mouse.up()
    page.wait_for_function(
        "() => (cnnatlas.selection().length > 0 && Number(document.getElementById"
        "('atlas-selection').dataset.renderedAt) > cnnatlas.pointerUpAt)",
        timeout=120_000,
    )
    ms = page.evaluate(
        "async () => { await new Promise(r => requestAnimationFrame(r));"
        " return performance.now() - cnnatlas.pointerUpAt; }"
    )
    page.click("[data-tool='pan']")
    return len(page.evaluate("() => cnnatlas.selection()")), float(ms)


def pan(page) -> bool:
    box = page.locator("#atlas-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for k in range(10):
        page.mouse.move(x + 20 * k, y + 10 * k)
        page.wait_for_timeout(30)
    page.mouse.up()
    return page.evaluate("() => cnnatlas.scatterplot.get('isDestroyed') === false")


PLOTLY_XY = """(id) => {
  const d = document.getElementById('cnnatlas-map'), L = d._fullLayout;
  const t = d._fullData.find(t => t.customdata.includes(id));
  const k = t.customdata.indexOf(id), r = d.getBoundingClientRect();
  return [r.left + L.xaxis._offset + L.xaxis.l2p(t.x[k]),
          r.top + L.yaxis._offset + L.yaxis.l2p(t.y[k])];
}"""
PLOTLY_WAIT = """async (id) => {
  const thumb = document.getElementById('cnnatlas-thumb');
  const t0 = performance.now();
  while (thumb.dataset.imageId !== String(id)) {
    if (performance.now() - t0 > 20000) return null;  // hovered a neighbour instead
    await new Promise(r => setTimeout(r, 1));
  }
  await new Promise(r => requestAnimationFrame(r));
  return performance.now() - window.lastMoveAt;
}"""


def plotly_hover(page, image_id: int) -> float | None:
    page.mouse.move(5, 5)
    page.wait_for_timeout(50)
    page.mouse.move(*page.evaluate(PLOTLY_XY, image_id))
    return page.evaluate(PLOTLY_WAIT, image_id)


def bench_plotly(browser, folder: Path, inputs: dict, timeout_ms: int) -> dict:
    df, classes = load_points(inputs["maps"][0]["embedding"], folder / "pred.parquet")
    out = folder / "plotly.html"
    thumbs = {"size": 8, "columns": 64, "per_sheet": 4096, "sheets": ["none.png"],
              "prefix": "", "zoom": 1}  # fmt: skip
    size = write_interactive(df, classes, out, "bench", thumbs, "label", ["domain"])
    res = {"size_mb": size / 1e6}
    try:
        page, errors = open_page(browser, out.as_uri(), timeout_ms)
    except Exception as e:  # noqa: BLE001 - a page too large to open is a result too
        return {**res, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    res["first_render_ms"] = float(page.evaluate("() => document.body.dataset.readyAt"))
    page.evaluate(
        "() => window.addEventListener('mousemove',"
        " e => { window.lastMoveAt = e.timeStamp; }, true)"
    )
    ids = np.random.default_rng(1).choice(len(df), 5, replace=False)
    times = [plotly_hover(page, int(i)) for i in ids]
    res["hover_ms"] = float(np.median([t for t in times if t is not None]))
    res["hovers_missed"] = sum(t is None for t in times)
    res["errors"] = errors
    page.close()
    return res


def write_at(ref: str, tmp: Path, out: Path, inputs: dict) -> int:
    """Write the atlas as git revision `ref` writes it (its package, template and bundle,
    run in a subprocess from an archive of the revision); returns the page's bytes."""
    root = tmp / f"rev-{ref}"
    if not root.exists():
        root.mkdir()
        archive = subprocess.run(
            ["git", "archive", ref, "workflow/scripts"], cwd=REPO, check=True,
            capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    scripts = root / "workflow" / "scripts"
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(scripts)!r})\n"
        "import cnnatlas\n"
        f"assert cnnatlas.__file__.startswith({str(scripts)!r}), cnnatlas.__file__\n"
        "from cnnatlas.viewer import write_atlas\n"
        "args = json.loads(sys.stdin.read())\n"
        "print(write_atlas(args.pop('out'), **args))\n"
    )
    args = json.dumps({"out": str(out), **inputs}, default=str)
    done = subprocess.run(
        [sys.executable, "-c", code], input=args, check=True, capture_output=True,
        text=True,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--points", type=int, nargs="+", default=[10_000, 100_000, 1_000_000]
    )
    ap.add_argument("--plotly-max", type=int, default=1_000_000,
                    help="skip the plotly page above this many points")  # fmt: skip
    ap.add_argument("--timeout", type=int, default=300, help="seconds per page load")
    ap.add_argument("--baseline", metavar="REF",
                    help="also measure the atlas page of this git revision")  # fmt: skip
    ap.add_argument("--maps", type=int, default=1, help="2-D maps in the atlas")
    ap.add_argument("--also-inline", action="store_true",
                    help="also measure the page with all its data inside it")  # fmt: skip
    ap.add_argument("--inline-mb", type=float, default=None,
                    help="the page's figures.atlas_inline_mb (default: the schema's)")  # fmt: skip
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    results = {"load_before": os.getloadavg(), "runs": []}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        results["chromium"] = browser.version
        probe = browser.new_page()
        results["gl_renderer"] = probe.evaluate(
            "() => { const g = document.createElement('canvas').getContext('webgl');"
            " const e = g.getExtension('WEBGL_debug_renderer_info');"
            " return g.getParameter(e ? e.UNMASKED_RENDERER_WEBGL : g.RENDERER); }"
        )
        probe.close()
        for n in args.points:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            inputs = synthetic(folder, n, args.maps)
            row = {
                "points": n,
                "atlas": bench_atlas(
                    browser, folder, inputs, args.timeout * 1000,
                    inline_mb=args.inline_mb,
                ),
            }  # fmt: skip
            if args.also_inline:
                row["atlas_inline"] = bench_atlas(
                    browser, folder, inputs, args.timeout * 1000,
                    inline_mb=float("inf"), name="inline",
                )  # fmt: skip
            if args.baseline:
                row[f"atlas_{args.baseline}"] = bench_atlas(
                    browser, folder, inputs, args.timeout * 1000, args.baseline
                )
            if n <= args.plotly_max:
                row["plotly"] = bench_plotly(
                    browser, folder, inputs, args.timeout * 1000
                )
            results["runs"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        browser.close()
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
