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
    # f3: float32 less its lowest byte
    assert np.allclose(
        atlas_block(header, first["xy"]).reshape(-1, 2),
        xy.to_numpy(np.float32),
        rtol=2**-16,
        atol=0,
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
    ref_f3 = blocks.add(xy, "f3")
    values = np.concatenate([rng.lognormal(0, 4, 1000), [1e6, 1e-6, 0.0, np.nan]])
    ref_h = blocks.add(values, "h2")
    header = {"blocks": blocks.items}
    assert np.array_equal(read_block(header, ref_ids), ids.ravel())
    assert np.array_equal(read_block(header, ref_xy), xy.ravel())
    f3 = read_block(header, ref_f3)
    assert f3.dtype == np.float32
    assert np.allclose(f3, xy.ravel(), rtol=2**-16, atol=0)
    assert not (f3.view(np.uint32) & 0xFF).any()
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


def test_tables_in_parts_read_back_whole():
    """A table of more rows than a part holds is split by rows; read back, it is whole."""
    rng = np.random.default_rng(0)
    blocks = Blocks(part_rows=64)
    ids = rng.integers(0, 300, (150, 5)).astype(np.uint16)
    dist = rng.random((150, 5))
    names = [f"img/{i}.png" for i in range(150)]
    refs = [
        blocks.add(ids, "u2", shuffle=True, parts=True),
        blocks.add(dist, "h2", parts=True),
        blocks.add(names, "json", parts=True),
    ]
    assert [len(r["parts"]) for r in refs] == [3, 3, 3]
    assert refs[0]["rows"] == 64 and "b" not in refs[0]
    header = {"blocks": blocks.items}
    assert np.array_equal(read_block(header, refs[0]), ids.ravel())
    assert np.allclose(read_block(header, refs[1]), dist.ravel(), rtol=2**-11)
    assert read_block(header, refs[2]) == names
    # a table of at most a part's rows stays one block
    assert "b" in blocks.add(ids[:64], "u2", parts=True)


def _blocks_of(header: dict, page=None) -> list:
    """Every array and list of a page's header, in the header's order."""
    refs = []

    def walk(v):
        if isinstance(v, dict) and "t" in v and ("b" in v or "parts" in v):
            refs.append(v)
        if isinstance(v, dict):
            for k, w in v.items():
                if k != "blocks":
                    walk(w)
        elif isinstance(v, list):
            for w in v:
                walk(w)

    walk(header)
    return [read_block(header, r, page) for r in refs]


def test_a_large_page_keeps_its_blocks_beside_it(run, tmp_path, monkeypatch):
    """Above inline_mb, every block of more than INLINE_MAX characters is a sidecar
    file of the page's folder: the same arrays as the self-contained page, the same
    bytes each time, and a rewrite leaves no stale file behind."""
    inputs = {**run["inputs"], "part_rows": 8}
    monkeypatch.setattr(atlas, "INLINE_MAX", 200)  # the run's blocks are small
    inline = tmp_path / "inline" / "atlas.html"
    inline.parent.mkdir()
    write_atlas(inline, **inputs)
    assert list(atlas.sidecar_folder(inline).iterdir()) == []
    pages = []
    for k in (1, 2):
        page = tmp_path / str(k) / "atlas.html"
        page.parent.mkdir()
        write_atlas(page, inline_mb=0, **inputs)
        pages.append(page)
    folder = atlas.sidecar_folder(pages[0])
    assert folder == pages[0].parent / "atlas_files"
    header = atlas_header(pages[0].read_text())
    files = sorted(folder.iterdir())
    assert files and all(f.suffix == ".js" for f in files)
    sidecar = [b for b in header["blocks"] if isinstance(b, dict)]
    assert len(sidecar) == len(files)
    assert all(
        len(b) <= atlas.INLINE_MAX for b in header["blocks"] if isinstance(b, str)
    )
    assert {b["src"] for b in sidecar} == {f"atlas_files/{f.name}" for f in files}
    # the same arrays as the self-contained page
    whole = _blocks_of(atlas_header(inline.read_text()))
    lazy = _blocks_of(header, pages[0])
    assert len(whole) == len(lazy)
    for a, b in zip(whole, lazy, strict=True):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    # byte for byte the same, page and folder
    assert pages[0].read_bytes() == pages[1].read_bytes()
    for f in files:
        assert f.read_bytes() == (atlas.sidecar_folder(pages[1]) / f.name).read_bytes()
    # written again self-contained, the folder is left empty
    (folder / "stale.js").write_text("x")
    write_atlas(pages[0], **inputs)
    assert list(folder.iterdir()) == []
    assert not list(pages[0].parent.glob("atlas_files.*"))


def test_the_rule_declares_the_folder_the_writer_fills():
    from cnnatlas.plan.atlas import Atlas

    folder = atlas.sidecar_folder(Atlas.PATHS["atlas"])
    assert Atlas.PATHS["atlas_files"] == folder.as_posix()
