"""The landing page's summary on a small synthetic run: the dataset, each checkpoint's
accuracy, the most faithful map of each layer, the saliency verdicts and the warnings."""

import html
import re
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from cnnatlas.index import write_index
from cnnatlas.io import write_parquet
from cnnatlas.metrics import diagnose
from cnnatlas.run_summary import best_maps, logged_warnings, run_summary

from benchmarks.synthetic_maps import XSS_CLASS, write_run
from tests.conftest import CLASSES, check_accuracies

# network order; metrics.parquet sorts them by name the same way
LAYERS = ["conv", "fc"]
HOSTILE = "<script>alert(1)</script>"


def _map(ckpt, layer, method, perp, seed, knn_map, trust, dim=2, stability=0.9):
    row = {"model": "net", "ckpt": ckpt, "layer": layer, "method": method, "dim": dim,
           "perplexity": perp, "seed": seed, "chance": 0.25, "knn_features": 0.9,
           "knn_map": knn_map, "knn_ratio": knn_map / 0.9, "trustworthiness": trust,
           "seed_stability": stability}  # fmt: skip
    return {**row, "diagnosis": diagnose(row)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    made = write_run(root, per_class=6, xss=True)
    preds = pd.read_parquet(made["predictions"])
    late = preds.assign(correct=np.arange(len(preds)) % 4 != 0)  # 3 of 4 right
    write_parquet(late, root / "late.parquet")
    metrics = pd.DataFrame(
        [
            # early conv: tsne seed 1 is the most trustworthy faithful 2-D map; the
            # 3-D map and the PCA map (which loses class structure) score higher
            _map("early", "conv", "tsne", 30.0, 0, 0.88, 0.95),
            _map("early", "conv", "tsne", 30.0, 1, 0.86, 0.97),
            _map("early", "conv", "tsne", 30.0, 0, 0.89, 0.99, dim=3),
            _map("early", "conv", "pca", 0.0, 0, 0.50, 0.98),
            # early fc: no map is faithful; the most trustworthy is shown, flagged
            _map("early", "fc", "pca", 0.0, 0, 0.50, 0.90),
            _map("early", "fc", "umap", 0.0, 2, 0.88, 0.80),
            # late: one map per layer
            _map("late", "conv", "umap", 0.0, 1, 0.88, 0.93),
            _map("late", "fc", "tsne", 30.0, 0, 0.88, 0.96, stability=0.3),
        ]
    )
    metrics.to_parquet(root / "metrics.parquet")
    checks = pd.DataFrame(
        {"method": ["gradcam", "gradcam", "scorecam"], "group": ["all", "class", "all"],
         "value": ["all", "0", "all"], "n": [12, 3, 12],
         "verdict": [f"Grad-CAM: passes {HOSTILE}", "per class", "Score-CAM: fails"]}
    )  # fmt: skip
    write_parquet(checks, root / "checks.parquet", meta={"cnnatlas.images": "12 of 40"})
    logs = root / "logs"
    (logs / "reduce_tsne").mkdir(parents=True)
    record = "2026-01-02 03:04:05,678 {} cnnatlas.maps.toolbox: {}"
    constant = "fc.npy: 3 of 8 features are constant (zero variance)"
    (logs / "reduce_tsne" / "early.log").write_text(
        "\n".join([
            record.format("INFO", "forward pass: 40 images"),
            record.format("WARNING", constant),
            "progress 100%|##########| 40/40",  # stderr of a progress bar
            record.format("WARNING", f"skipping 2 of 42 images:\n  a.png: {HOSTILE}"),
            "  b.png: truncated",
        ])
    )  # fmt: skip
    (logs / "reduce_pca.log").write_text(record.format("WARNING", constant) + "\n")
    summary = {
        "manifest": made["manifest"],
        "bad_images": root / "missing.parquet",  # nothing left out: no file
        "predictions": [
            ["net", "early", made["predictions"]],
            ["net", "late", root / "late.parquet"],
        ],
        "saliency": [["net", "late", root / "checks.parquet"]],
        "layers": {"net": LAYERS},
        "logs": [
            ["reduce_tsne", logs / "reduce_tsne" / "early.log"],
            ["reduce_pca", logs / "reduce_pca.log"],
        ],
    }
    atlas = root / "atlas.html"
    atlas.write_text("<html></html>")
    out = root / "index.html"
    write_index(out, [root / "metrics.parquet"], atlas=atlas,
                metrics=root / "metrics.parquet", summary=summary)  # fmt: skip
    page = out.read_text(encoding="utf-8")
    return {"root": root, "metrics": metrics, "summary": summary, "page": page,
            "preds": {"early": preds, "late": late}}  # fmt: skip


def _summary_part(page: str) -> str:
    return page.split("<h2>Summary</h2>")[1].split('<a class="atlas"')[0]


def test_the_page_opens_with_the_dataset_and_each_checkpoints_accuracy(run):
    page = run["page"]
    assert page.index("<h2>Summary</h2>") < page.index("Open the atlas")
    part = _summary_part(page)
    n = len(run["preds"]["early"])
    classes = ", ".join([*CLASSES, html.escape(XSS_CLASS)])
    assert f"Dataset: {n} images in 4 classes: {classes}." in part
    check_accuracies(part, "net", run["preds"])
    late = n - len(range(0, n, 4))  # every fourth image is wrong
    assert f'<td class="num">{late} of {n}</td>' in part


def test_the_most_faithful_map_is_the_most_trustworthy_faithful_2d_map(run):
    best = best_maps(run["metrics"]).set_index(["ckpt", "layer"])
    assert best.loc[("early", "conv"), ["method", "seed"]].tolist() == ["tsne", 1]
    assert bool(best.loc[("early", "conv"), "faithful"])
    assert best.loc[("early", "fc"), "method"] == "pca"  # none faithful: most trusted
    assert not best.loc[("early", "fc"), "faithful"]
    assert len(best) == 4


def test_each_layers_map_links_to_its_view_in_the_atlas(run):
    part = _summary_part(run["page"])
    table = part.split('<table class="summary maps">')[1].split("</table>")[0]
    rows = re.findall(r"<tr><th>(\w+)</th>(<td.*?)</tr>", table)
    assert [layer for layer, _ in rows] == LAYERS
    views = [
        parse_qs(html.unescape(href).split("#", 1)[1])
        for href in re.findall(r'href="(atlas\.html#[^"]+)"', rows[0][1])
    ]
    assert [{k: v[0] for k, v in view.items()} for view in views] == [
        {"model": "net", "ckpt": "early", "layer": "conv", "method": "tsne",
         "variant": "perplexity 30, seed 1"},
        {"model": "net", "ckpt": "late", "layer": "conv", "method": "umap",
         "variant": "seed 1"},
    ]  # fmt: skip
    early_fc = rows[1][1].split("</td>")[0]
    assert 'class="unfaithful"' in early_fc and "none faithful" in early_fc
    assert "trustworthiness 0.900" in early_fc


def test_saliency_verdicts_of_every_image_are_listed(run):
    part = _summary_part(run["page"])
    checks = part.split("<h3>Saliency checks</h3>")[1].split("<h3>")[0]
    assert "net late, on 12 of 40:" in checks
    items = re.findall(r"<li>(.*?)</li>", checks)
    assert items == [f"Grad-CAM: passes {html.escape(HOSTILE)}", "Score-CAM: fails"]


def test_warnings_are_listed_once_with_the_rules_that_logged_them(run):
    warnings = logged_warnings(run["summary"]["logs"])
    assert warnings == [
        ("fc.npy: 3 of 8 features are constant (zero variance)",
         ["reduce_tsne", "reduce_pca"]),
        (f"skipping 2 of 42 images:\n  a.png: {HOSTILE}\n  b.png: truncated",
         ["reduce_tsne"]),
    ]  # fmt: skip
    part = _summary_part(run["page"])
    items = re.findall(r"<li>(.*?)</li>", part.split("<h3>Warnings")[1], re.S)
    # the maps the diagnosis does not call faithful, by kind, then the logs' records
    assert items[0].startswith(
        "2 of 8 maps: the map loses class structure the features have (pca 2)"
    )
    assert items[1].startswith("1 of 8 maps: map neighbours are often not feature")
    assert items[2].startswith("1 of 8 maps: unstable across seeds (tsne 1)")
    assert "(reduce_tsne, reduce_pca)" in items[3]
    assert items[4].startswith("skipping 2 of 42 images:\n  a.png: &lt;script&gt;")
    assert len(items) == 5 and "progress" not in part


def test_every_run_string_is_escaped(run):
    assert HOSTILE not in run["page"] and XSS_CLASS not in run["page"]
    assert run["page"].count("<script>") == 1  # the page's own: the table's sorting


def test_without_the_explain_stage_the_summary_says_nothing_of_it(run, tmp_path):
    summary = {**run["summary"], "saliency": []}
    s = run_summary(metrics=run["root"] / "metrics.parquet", **summary)
    assert s.verdicts == []
    out = tmp_path / "index.html"
    write_index(out, [], metrics=run["root"] / "metrics.parquet", summary=summary)
    page = out.read_text()
    assert "Saliency" not in page and "<h2>Summary</h2>" in page
    assert "atlas.html" not in page  # no atlas: the maps are named, not linked


def test_images_left_out_are_counted_in_the_dataset_line(run, tmp_path):
    bad = pd.DataFrame({"path": ["a.png", "b.png"], "label": [0, 1],
                        "label_name": ["circle", "square"], "reason": ["x", "y"]})  # fmt: skip
    write_parquet(bad, tmp_path / "bad_images.parquet")
    summary = {**run["summary"], "bad_images": tmp_path / "bad_images.parquet"}
    s = run_summary(metrics=run["root"] / "metrics.parquet", **summary)
    assert s.n_left_out == 2
    out = tmp_path / "index.html"
    write_index(out, [], metrics=run["root"] / "metrics.parquet", summary=summary)
    assert "; 2 images that cannot be decoded are left out" in out.read_text()


def test_the_metrics_table_shows_no_value_for_an_axis_a_method_lacks(run):
    """metrics.parquet records 0 for PCA's perplexity and seed and UMAP's perplexity;
    the page's table shows them as missing ('–'), not as 'perplexity 0'."""
    table = run["page"].split('<table class="metrics">')[1].split("</table>")[0]
    head = re.findall(r"<th>(\w+)</th>", table)
    rows = [
        dict(zip(head, re.findall(r"<td[^>]*>(.*?)</td>", row), strict=True))
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    ]
    shown = [(r["method"], r["perplexity"], r["seed"]) for r in rows]
    assert shown == [
        ("tsne", "30.000", "0"),
        ("tsne", "30.000", "1"),
        ("tsne", "30.000", "0"),
        ("pca", "–", "–"),
        ("pca", "–", "–"),
        ("umap", "–", "2"),
        ("umap", "–", "1"),
        ("tsne", "30.000", "0"),
    ]
