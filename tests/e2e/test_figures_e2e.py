"""The figures of the tiny run: every embedding's PNG/PDF, the HTML pages, grids, index, report."""

import html
import json
import re
import zipfile
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pypdf import PdfReader

from tests.conftest import CLASSES, check_accuracies, run_snakemake

pytestmark = pytest.mark.e2e

# Schema defaults (the tiny config has no figures section).
DPI, WIDTH, LEGEND = 300, 4.0, 1.3


def _embeddings(results: Path) -> list[Path]:
    found = sorted(results.glob("tiny/*/embeddings/*/*.parquet"))
    assert found, "the tiny run wrote no embeddings"
    return found


def _figure(embedding: Path, ext: str) -> Path:
    layer_dir = embedding.parents[2] / "figures" / embedding.parent.name
    return layer_dir / f"{embedding.stem}.{ext}"


def _payload(html: Path) -> dict:
    text = html.read_text(encoding="utf-8")
    return json.loads(
        re.search(r'id="cnnatlas-data">(.*?)</script>', text, re.S).group(1)
    )


def test_every_embedding_has_a_static_png_and_pdf(tiny_run):
    for emb in _embeddings(tiny_run):
        n = len(pd.read_parquet(emb))
        png = _figure(emb, "label.png")
        im = Image.open(png)
        assert im.size == (round((WIDTH + LEGEND) * DPI), round(WIDTH * DPI)), png
        assert np.asarray(im.convert("L")).std() > 5, png
        page = PdfReader(_figure(emb, "label.pdf")).pages[0]
        text = page.extract_text()
        assert all(c in text for c in CLASSES), emb
        if "-2d-" in emb.name:  # every point is one placed marker in the vector PDF
            content = page.get_contents().get_data().decode("latin1")
            assert len(re.findall(r"/\S+ Do\b", content)) == n, emb


def test_class_colours_match_across_checkpoints(tiny_run):
    from cnnatlas.plots import class_styles

    pngs = sorted(tiny_run.glob("tiny/*/figures/fc1/pca-2d-p0-s0.label.png"))
    assert len(pngs) == 2  # early and late
    for style in class_styles(CLASSES):
        rgb = np.array([int(style.colour[i : i + 2], 16) for i in (1, 3, 5)])
        for png in pngs:
            arr = np.asarray(Image.open(png).convert("RGB"))
            assert (arr == rgb).all(axis=-1).sum() > 50, (png, style.name)


def test_html_pages_hold_every_point_of_their_embedding(tiny_run):
    pages = sorted(tiny_run.glob("tiny/*/figures/*/*.html"))
    layers = {(p.parents[2].name, p.parent.name) for p in pages}
    assert len(layers) == 4  # 2 checkpoints x 2 layers
    sheets = json.loads((tiny_run / "thumbnails" / "index.json").read_text())
    assert sheets["n"] == 30
    for page in pages:
        emb = page.parents[2] / "embeddings" / page.parent.name / f"{page.stem}.parquet"
        table = pd.read_parquet(emb)
        payload = _payload(page)
        assert payload["image_id"] == table["image_id"].tolist()
        assert len(payload["coords"]) == (3 if "z" in table else 2)
        assert np.allclose(payload["coords"][0], table["x"], rtol=1e-5)
        assert payload["modes"]["label"]["names"] == list(CLASSES)
        assert (page.parent / payload["thumbs"]["prefix"] / "sheet-0000.png").is_file()
        assert page.stat().st_size < 6_000_000


def test_grids_and_index_link_everything(tiny_run):
    grids = sorted((tiny_run / "tiny" / "figures").glob("grid-*.png"))
    assert grids
    for g in grids:
        assert (
            Image.open(g).size[0] > Image.open(g).size[1]
        )  # 2 layers wide, 2 checkpoints high
    index = (tiny_run / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    # the landing page leads into the atlas (its summary's maps are views of it)
    assert links[0].split("#")[0] == "atlas.html"
    for link in links:
        # a link may name a view of its page after '#' (compare.html#a=...&b=...)
        assert (tiny_run / html.unescape(link).split("#")[0]).is_file(), link
    linked = set(links)
    pictures = set(re.findall(r'<img src="([^"]+)"', index))
    assert {g.relative_to(tiny_run).as_posix() for g in grids} <= pictures
    assert "tiny/layer_summary.png" in pictures
    assert {f"paper/{name}.png" for name in ("grid", "pca", "cam")} <= pictures
    metrics = pd.read_parquet(tiny_run / "metrics.parquet")
    table = index.split("<tbody>")[1].split("</tbody>")[0]
    assert table.count("<tr>") == len(metrics)
    assert "metrics.parquet" in linked
    for emb in _embeddings(tiny_run):
        rel = emb.relative_to(tiny_run).as_posix()
        assert rel in linked
        assert _figure(emb, "label.png").relative_to(tiny_run).as_posix() in linked
    assert {g.relative_to(tiny_run).as_posix() for g in grids} <= linked
    # the other stages' figures and exports are on the same page
    for stage_dir, pattern in (
        ("tiny/late/explain", "**/*.png"),
        ("tiny/early/projector", "projector_config.pbtxt"),
        ("tiny/evolution", "**/strip.png"),
        ("tiny/evolution", "**/animation.gif"),
    ):
        found = sorted((tiny_run / stage_dir).glob(pattern))
        assert found, (stage_dir, pattern)
        assert {f.relative_to(tiny_run).as_posix() for f in found} <= linked


def test_the_landing_page_opens_with_the_runs_summary(tiny_run):
    import yaml
    from cnnatlas.plan import Plan
    from snakemake.utils import validate

    from tests.conftest import REPO

    page = (tiny_run / "index.html").read_text()
    assert page.index("<h2>Summary</h2>") < page.index("Open the atlas")
    summary = page.split("<h2>Summary</h2>")[1].split('<a class="atlas"')[0]
    assert f"Dataset: 30 images in 3 classes: {', '.join(CLASSES)}." in summary
    predictions = {
        ckpt: pd.read_parquet(tiny_run / "tiny" / ckpt / "predictions.parquet")
        for ckpt in ("early", "late")
    }
    check_accuracies(summary, "tiny", predictions)
    # each layer's most faithful map is a map of the atlas, opened by its link
    atlas = {(m["model"], m["ckpt"], m["layer"], m["method"], m["variant"])
             for m in _payload(tiny_run / "atlas.html")["maps"]}  # fmt: skip
    views = [
        {k: v[0] for k, v in parse_qs(html.unescape(h).split("#", 1)[1]).items()}
        for h in re.findall(r'href="(atlas\.html#[^"]+)"', summary)
    ]
    assert len(views) == 2 * 2  # checkpoints x layers
    for v in views:
        assert (v["model"], v["ckpt"], v["layer"], v["method"], v["variant"]) in atlas
    assert "<h3>Saliency checks</h3>" in summary and "tiny late, on 12 of 30" in summary
    # the warnings: the explain stage's bounded sample, logged by check_saliency
    warnings = summary.split("<h3>Warnings")[1]
    assert "running over 12 of 30 images" in warnings
    assert "(check_saliency)" in warnings
    # the page reads the log of every job before it (none is left out)
    workdir = tiny_run.parent
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    planned = {p for _, p in Plan(config).index.logs()}
    written = {
        f.relative_to(workdir).as_posix()
        for f in (tiny_run / "logs").rglob("*.log")
        if f.relative_to(tiny_run / "logs").parts[0].removesuffix(".log")
        not in ("write_index", "write_provenance", "draw_paper_figure")
    }
    assert planned == written


def test_atlas_holds_every_2d_map_and_the_neighbours(tiny_run):
    from cnnatlas.io import read_parquet_meta
    from cnnatlas.viewer.atlas import read_block

    page = (tiny_run / "atlas.html").read_text(encoding="utf-8")
    header = _payload(tiny_run / "atlas.html")
    # Nothing is fetched from elsewhere (the browser test records every request); the
    # bundle's only URLs are in regl's error messages.
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert "<link" not in page and "<script src" not in page
    # a small run's page holds all its data: its folder is there, with no block in it
    assert not list((tiny_run / "atlas_files").glob("*.js"))
    two_d = [e for e in _embeddings(tiny_run) if "-2d-" in e.name]
    own = [m for m in header["maps"] if "aligned" not in m["method"]]
    assert len(own) == len(two_d) and header["n"] == 30
    aligned = [m for m in header["maps"] if m["method"].endswith("aligned")]
    assert {m["ckpt"] for m in aligned} == {"early", "late"}  # evolution of fc1
    metrics = pd.read_parquet(tiny_run / "metrics.parquet")
    with_metrics = [m for m in own if m["metrics"]]
    assert len(with_metrics) == len(own) == (metrics["dim"] == 2).sum()
    for key, ref in header["neighbors"].items():
        model, ckpt, layer = key.split("/")
        ids = read_block(header, ref).reshape(30, ref["k"])
        saved = np.load(tiny_run / model / ckpt / "metrics" / f"{layer}.neighbors.npy")
        assert np.array_equal(ids, saved)
        # the distances are those of the layer's features to those neighbours
        dist = read_block(header, ref["distances"]).reshape(30, ref["k"])
        x = np.load(tiny_run / model / ckpt / "features" / f"{layer}.npy")
        x = x.reshape(30, -1).astype(np.float64)
        want = np.linalg.norm(x[:, None] - x[saved.astype(int)], axis=2)
        assert np.allclose(dist, want, rtol=1e-3, atol=1e-5)
        # above maps.metrics.exact_neighbors_max (20) they come from the HNSW index,
        # whose recall against exact neighbours is kept in the layer's metrics file
        meta = read_parquet_meta(
            tiny_run / model / ckpt / "metrics" / f"{layer}.parquet"
        )
        found = json.loads(meta["cnnatlas.neighbors"])
        d = np.linalg.norm(x[:, None] - x[None], axis=2)
        np.fill_diagonal(d, np.inf)
        exact = np.argsort(d, axis=1, kind="stable")[:, : ref["k"]]
        recall = (
            np.mean([len(set(a) & set(b)) for a, b in zip(saved, exact, strict=True)])
            / ref["k"]
        )
        assert found == {"search": "hnsw", "k": ref["k"], "recall_queries": 30,
                         "recall_at_k": pytest.approx(recall)}  # fmt: skip
    assert len(header["neighbors"]) == 4
    assert set(header["explain"]) == {"tiny/late"} and header["explain"]["tiny/late"]
    assert [link["href"] for link in header["links"]]
    for link in header["links"]:
        assert (tiny_run / link["href"]).is_file(), link


def test_snakemake_report_holds_the_figures(tiny_run, tmp_path):
    workdir = tiny_run.parent
    report = tmp_path / "report.zip"
    run_snakemake(workdir, "--report", str(report))
    with zipfile.ZipFile(report) as z:
        names = z.namelist()
        html = z.read(next(n for n in names if n.endswith("report.html"))).decode()
    assert sum(n.endswith(".png") for n in names) >= len(_embeddings(tiny_run))
    assert "Map of layer" in html and "Checkpoints x layers" in html
