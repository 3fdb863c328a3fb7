"""The atlas page's writer and the landing index: blocks, escaping, errors, bytes, size
(the browser test drives the page itself)."""

import re

import numpy as np
import pandas as pd
import pytest
from cnnatlas.classes import OTHER, ClassSpace
from cnnatlas.errors import CnnatlasError
from cnnatlas.index import write_index
from cnnatlas.io import write_parquet
from cnnatlas.metrics import feature_neighbors, neighbors
from cnnatlas.plots import class_styles
from cnnatlas.viewer import atlas, atlas_payload, write_atlas
from cnnatlas.viewer.atlas import BUNDLE, Blocks, read_block

from benchmarks.synthetic_maps import XSS_CLASS, XSS_FILE
from tests.synthetic_atlas import (
    CKPTS,
    GRADCAM_IDS,
    atlas_block,
    atlas_header,
    write_atlas_run,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_atlas_run(tmp_path_factory.mktemp("viewer"), per_class=5)


def test_blocks_hold_the_runs_arrays(run):
    header = atlas_header(run["atlas"].read_text())
    man = pd.read_parquet(run["manifest"])
    assert header["n"] == len(man) == run["n"]
    assert atlas_block(header, header["paths"]) == man["path"].tolist()
    assert atlas_block(header, header["labels"]).tolist() == man["label"].tolist()
    assert atlas_block(header, header["classes"]) == run["classes"]
    assert header["class_colours"] == [s.colour for s in class_styles(run["classes"])]
    first = header["maps"][0]
    xy = pd.read_parquet(run["inputs"]["maps"][0]["embedding"])[["x", "y"]]
    assert np.array_equal(
        atlas_block(header, first["xy"]).reshape(-1, 2), xy.to_numpy(np.float32)
    )
    pred = pd.read_parquet(run["predictions"])
    r = header["runs"][f"net/{CKPTS[0]}"]
    assert atlas_block(header, r["pred"]).tolist() == pred["pred"].tolist()
    names, classes = r["names"], run["classes"]
    assert [names[j] for j in atlas_block(header, r["pred_out"])] == [
        classes[p] for p in pred["pred"]
    ]
    topk = atlas_block(header, r["topk_ids"]).reshape(-1, r["k"])
    assert [[names[j] for j in row] for row in topk] == [
        [classes[j] for j in row] for row in np.stack(pred["topk_ids"])
    ]
    domain = header["metadata"]["domain"]
    assert domain["names"] == ["source", "target"]
    assert [domain["names"][c] for c in atlas_block(header, domain["codes"])] == man[
        "domain"
    ].tolist()


def test_outputs_of_no_dataset_class_and_a_class_index(run, tmp_path):
    """A 30-output model whose class k is output 10 + k: labels are mapped, an output of
    no dataset class is 'other outputs' in colour and legend and named by its output."""
    classes = run["classes"]
    pred = pd.read_parquet(run["predictions"])
    pred["pred"] = pred["pred"] + 10
    pred.loc[0, "pred"] = 27  # no dataset class
    pred["topk_ids"] = [[int(p), 29] for p in pred["pred"]]
    pred["topk_probs"] = [[0.7, 0.3]] * len(pred)
    space = ClassSpace(tuple(classes), tuple(range(10, 10 + len(classes))),
                       tuple(f"out{i}" for i in range(30)))  # fmt: skip
    path = tmp_path / "predictions.parquet"
    write_parquet(pred, path, space.meta())
    header = atlas_payload(
        tmp_path / "a.html",
        **{**run["inputs"], "predictions": {f"net/{c}": path for c in CKPTS}},
    )
    assert atlas_block(header, header["classes"]) == [*classes, OTHER]
    r = header["runs"][f"net/{CKPTS[0]}"]
    codes = atlas_block(header, r["pred"])
    assert codes[0] == len(classes)
    assert codes[1:].tolist() == (pred["pred"][1:] - 10).tolist()
    shown = [r["names"][j] for j in atlas_block(header, r["pred_out"])]
    assert shown == [f"out{p}" for p in pred["pred"]]
    topk = atlas_block(header, r["topk_ids"]).reshape(-1, r["k"])
    assert {r["names"][j] for j in topk[:, 1]} == {"out29"}


def test_neighbours_are_every_points_feature_neighbours(run):
    header = atlas_header(run["atlas"].read_text())
    ref = header["neighbors"][f"net/{CKPTS[0]}/fc"]
    ids = atlas_block(header, ref).reshape(-1, ref["k"])
    feats = np.load(run["root"] / f"{CKPTS[0]}-features.npy")
    assert ids.dtype == np.uint8 and ref["k"] == 5  # 20 images: one byte an id
    assert ids.tolist() == neighbors(feats, 5).tolist()
    assert not (ids == np.arange(len(ids))[:, None]).any()


def test_maps_menus_aligned_maps_and_explanations(run):
    header = atlas_header(run["atlas"].read_text())
    methods = [(m["ckpt"], m["method"], m["variant"]) for m in header["maps"]]
    assert (CKPTS[0], "tsne", "perplexity 30, seed 0") in methods
    assert (CKPTS[1], "pca", "pca") in methods
    aligned = [m for m in header["maps"] if m["method"] == "tsne aligned"]
    assert [m["ckpt"] for m in aligned] == list(CKPTS)
    assert (
        aligned[0]["frame"] == aligned[1]["frame"]
    )  # one frame: points move as the data
    cams = header["explain"][f"net/{CKPTS[1]}"]
    assert cams == {str(i): f"{CKPTS[1]}/gradcam/{i:05d}.png" for i in GRADCAM_IDS}
    assert header["thumbs"]["prefix"] == "thumbnails/"


def test_hostile_names_stay_inside_json(run):
    page = run["atlas"].read_text()
    header = atlas_header(page)
    assert XSS_CLASS in atlas_block(header, header["classes"])
    assert any(p.endswith(XSS_FILE) for p in atlas_block(header, header["paths"]))
    assert "<title>atlas of &lt;b&gt;cls&lt;/b&gt;</title>" in page
    assert page.count("<script") == 2 and "</script" not in BUNDLE.read_text()


def test_same_inputs_give_the_same_bytes(run, tmp_path):
    sizes = [write_atlas(tmp_path / f"{k}.html", **run["inputs"]) for k in (1, 2)]
    assert (tmp_path / "1.html").read_bytes() == (tmp_path / "2.html").read_bytes()
    assert sizes[0] == (tmp_path / "1.html").stat().st_size


def test_a_map_of_another_manifest_is_refused(run, tmp_path):
    bad = tmp_path / "short.parquet"
    pd.read_parquet(run["inputs"]["maps"][0]["embedding"]).iloc[:-1].to_parquet(bad)
    maps = [{**run["inputs"]["maps"][0], "embedding": bad}]
    with pytest.raises(CnnatlasError, match=r"short\.parquet: image_id must run 0\.\."):
        atlas_payload(tmp_path / "a.html", **{**run["inputs"], "maps": maps})
    with pytest.raises(CnnatlasError, match="no 2-D map"):
        atlas_payload(tmp_path / "a.html", **{**run["inputs"], "maps": []})
    np.save(tmp_path / "fc.neighbors.npy", np.zeros((3, 5), np.uint8))
    nbs = [{**run["inputs"]["neighbors"][0], "path": tmp_path / "fc.neighbors.npy"}]
    with pytest.raises(
        CnnatlasError,
        match=r"fc\.neighbors\.npy: neighbour ids must be \[20, k\]; rerun measure_maps",
    ):
        atlas_payload(tmp_path / "a.html", **{**run["inputs"], "neighbors": nbs})
    np.save(tmp_path / "fc.distances.npy", np.zeros((20, 4), np.float32))
    nbs = [
        {**run["inputs"]["neighbors"][0], "distances": tmp_path / "fc.distances.npy"}
    ]
    with pytest.raises(
        CnnatlasError,
        match=r"fc\.distances\.npy: neighbour distances must be \[20, 5\] like their ids",
    ):
        atlas_payload(tmp_path / "a.html", **{**run["inputs"], "neighbors": nbs})


def test_blocks_read_back_as_written():
    """Shuffled blocks come back exact; half-float blocks within 2^-11 of each value
    (their scale keeps a million and a millionth finite), NaN kept."""
    rng = np.random.default_rng(0)
    blocks = Blocks()
    ids = rng.integers(0, 2**20, (300, 10)).astype(np.uint32)
    xy = rng.normal(size=(300, 2)).astype(np.float32)
    ref_ids, ref_xy = (
        blocks.add(ids, "u4", shuffle=True),
        blocks.add(xy, "f4", shuffle=True),
    )
    assert ref_ids["s"] == 1 and "s" not in blocks.add(xy, "f4")
    values = np.concatenate([rng.lognormal(0, 4, 1000), [1e6, 1e-6, 0.0, np.nan]])
    ref_h = blocks.add(values, "h2")
    header = {"blocks": blocks.items}
    assert np.array_equal(read_block(header, ref_ids), ids.ravel())
    assert np.array_equal(read_block(header, ref_xy), xy.ravel())
    back = read_block(header, ref_h)
    assert back.dtype == np.float32 and np.isnan(back[-1])
    ok = values[:-1] > values[:-1].max() * 2**-14  # the half floats' normal range
    assert np.allclose(back[:-1][ok], values[:-1][ok], rtol=2**-11, atol=0)
    assert back[-2] == 0.0 and abs(back[-3] - 1e-6) < 1e-6
    # shuffled, the neighbour ids of 100,000 images pack smaller than as they are
    many = rng.integers(0, 100_000, (20_000, 10)).astype(np.uint32)
    plain, shuffled = Blocks(), Blocks()
    plain.add(many, "u4"), shuffled.add(many, "u4", shuffle=True)
    assert len(shuffled.items[0]) < 0.85 * len(plain.items[0])


def test_feature_neighbors_file_is_compact(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    found = feature_neighbors(
        tmp_path / "f.npy", tmp_path / "n.npy", 3, tmp_path / "d.npy", seed=0
    )
    ids = found["ids"]
    assert {key: found[key] for key in ("search", "k", "recall_at_k")} == {
        "search": "exact", "k": 3, "recall_at_k": 1.0,
    }  # fmt: skip
    saved = np.load(tmp_path / "n.npy")
    assert saved.dtype == np.uint16 and saved.shape == (50, 3)
    assert saved.tolist() == ids.tolist() == neighbors(x, 3).tolist()
    # the distances are those of the saved neighbours, nearest first
    dist = np.load(tmp_path / "d.npy")
    assert dist.dtype == np.float32 and dist.shape == (50, 3)
    expected = np.linalg.norm(x[:, None] - x[saved.astype(int)], axis=2)
    assert np.allclose(dist, expected, rtol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_index_is_a_landing_page(run, tmp_path):
    root = run["root"]
    metrics = pd.DataFrame(
        {"model": ["net", "net"], "ckpt": ["early", "late"], "layer": ["fc", XSS_CLASS],
         "method": ["tsne", "pca"], "dim": [2, 2], "perplexity": [30.0, 0.0],
         "seed": [0, 0], "knn_features": [0.9, 0.8], "knn_map": [0.85, np.nan],
         "diagnosis": ["faithful", "the map <loses> structure"]}
    )  # fmt: skip
    metrics.to_parquet(root / "metrics.parquet")
    (root / "net" / "figures").mkdir(parents=True, exist_ok=True)
    grid = root / "net" / "figures" / "grid-tsne.png"
    summary = root / "net" / "layer_summary.png"
    for f in (grid, summary):
        f.write_bytes(b"png")
    out = root / "index.html"
    files = [grid, summary, root / "metrics.parquet", run["atlas"], root / "early"]
    write_index(out, files, atlas=run["atlas"], metrics=root / "metrics.parquet",
                paper=[root / "paper" / "fig.png"])  # fmt: skip
    page = out.read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert links[0] == "atlas.html"
    order = [page.index(s) for s in ("Open the atlas", "layer_summary.png",
             "grid-tsne.png", "paper/fig.png", "Map metrics", "<details>")]  # fmt: skip
    assert order == sorted(order)
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("<tbody>")[1])
    assert len(rows) == 2 and "&lt;loses&gt;" in rows[1] and "&lt;b&gt;" in rows[1]
    assert '<td class="num" data-v="-1">–</td>' in rows[1]  # a missing value sorts low
    raw = page.split("<details>")[1]
    assert "metrics.parquet" in raw and "early/gradcam/00000.png" in raw
    assert "<b>" not in page


@pytest.mark.parametrize(
    "method, variant",
    [
        ("tsne", "perplexity 30, seed 1"),
        ("umap", "seed 1"),
        ("pacmap", "seed 1"),  # no perplexity axis: not "perplexity 0"
        ("pca", "pca"),
    ],
)
def test_a_maps_variant_names_the_axes_of_its_method(method, variant):
    assert atlas.map_variant(method, 30.0 if method == "tsne" else 0.0, 1) == variant
