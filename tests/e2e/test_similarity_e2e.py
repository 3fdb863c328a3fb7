"""The similarity stage through the real snakemake: CKA tables, summary, heat maps and
the landing page's section; the chunked cross-covariance and the minibatch estimators at
small N."""

import html
import json
import re
import shutil
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
import yaml
from cnnatlas.similarity import cka_reference, linear_cka
from PIL import Image

from tests.conftest import run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e

TARGETS = ["results/similarity/cka.parquet", "results/similarity/summary.json"]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """The tiny config with a second model, `twin`: the same network and weights as
    tiny's `late`; 30 images, so the low gram_max_n sends them to the chunked
    cross-covariance estimator. Only the similarity targets (and the extraction)."""
    workdir = write_tiny_config(tmp_path_factory.mktemp("similarity"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    twin = dict(config["models"]["tiny"])
    twin["checkpoints"] = {"final": config["models"]["tiny"]["checkpoints"]["late"]}
    config["models"]["twin"] = twin
    config["similarity"] = {"gram_max_n": 10, "minibatch_min_n": 1000, "chunk_rows": 7}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, *TARGETS, "results/similarity/figures")
    return workdir / "results"


def test_the_tables_hold_every_comparison_with_valid_values(two_models):
    t = pd.read_parquet(two_models / "similarity/cka.parquet")
    assert set(t["estimator"]) == {"covariance"} and set(t["n"]) == {30}
    assert set(t["kernel"]) == {"linear"}  # similarity.rbf is off by default
    layers = ["features.1.3", "fc1"]
    within = t[t["comparison"] == "layers"]
    assert len(within) == 3 * 4  # tiny early, tiny late, twin final: 2 x 2 layers
    same = within[within["layer"] == within["other_layer"]]
    np.testing.assert_allclose(same["cka"], 1.0, atol=1e-9)
    assert t["cka"].between(0, 1 + 1e-9).all()
    ckpts = t[t["comparison"] == "checkpoints"]
    assert set(ckpts["model"]) == {"tiny"} and len(ckpts) == 2 * 4
    # twin is tiny's late checkpoint under another name: its diagonal is 1
    pair = t[t["comparison"] == "models"].set_index(["layer", "other_layer"])["cka"]
    assert (t.loc[t["comparison"] == "models", "model"] == "tiny").all()
    for layer in layers:
        assert pair[(layer, layer)] == pytest.approx(1.0, abs=1e-9)
    # the chunked estimator equals the N x N reference on the files the run wrote
    x = np.load(two_models / "tiny/early/features/fc1.npy")
    y = np.load(two_models / "tiny/late/features/fc1.npy")
    value = ckpts.set_index(["layer", "checkpoint", "other_checkpoint"])["cka"]
    assert value[("fc1", "early", "late")] == pytest.approx(
        cka_reference(x, y), abs=1e-6
    )


@pytest.fixture(scope="module")
def minibatch_run(two_models, tmp_path_factory):
    """A copy of two_models' run with thresholds that send its 30 images to the
    minibatch estimator (3 batches of 8); only the similarity jobs run again."""
    workdir = tmp_path_factory.mktemp("minibatch") / "run"
    shutil.copytree(two_models.parent, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["similarity"] = {"gram_max_n": 4, "minibatch_min_n": 10, "batch_size": 8}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, *TARGETS)
    return workdir / "results", config["similarity"]


def test_the_minibatch_path_through_the_workflow(minibatch_run):
    results, options = minibatch_run
    t = pd.read_parquet(results / "similarity/cka.parquet")
    assert set(t["estimator"]) == {"minibatch"} and set(t["n"]) == {30}
    assert np.isfinite(t["cka"]).all() and (t["spread"] >= 0).all()
    within = t[t["comparison"] == "layers"]
    same = within[within["layer"] == within["other_layer"]]
    np.testing.assert_allclose(same["cka"], 1.0, atol=1e-9)
    np.testing.assert_allclose(same["spread"], 0.0, atol=1e-9)
    assert (within.loc[within["layer"] != within["other_layer"], "spread"] > 0).all()
    for _, m in within.groupby(["model", "checkpoint"]):
        m = m.pivot(index="layer", columns="other_layer", values="cka")
        np.testing.assert_allclose(m.to_numpy(), m.T.to_numpy(), atol=1e-12)
    # the table holds what the library gives for the run's files and options
    ckpts = t[t["comparison"] == "checkpoints"]
    value = ckpts.set_index(["layer", "checkpoint", "other_checkpoint"])["cka"]
    x, y = (results / f"tiny/{c}/features/fc1.npy" for c in ("early", "late"))
    assert value[("fc1", "early", "late")] == linear_cka(x, y, options)[0]
    summary = json.loads((results / "similarity/summary.json").read_text())
    assert summary["estimators"] == ["minibatch"]


def test_the_summary_and_heat_maps(two_models):
    summary = json.loads((two_models / "similarity/summary.json").read_text())
    assert set(summary["sentences"]) == {"tiny", "twin"}
    assert summary["estimators"] == ["covariance"] and summary["n"] == [30]
    assert any("late" in s for s in summary["sentences"]["tiny"])
    figures = two_models / "similarity/figures"
    names = sorted(p.name for p in figures.glob("*.png"))
    assert names == [
        "tiny-checkpoints.png",
        "tiny-layers.png",
        "tiny-vs-twin.png",
        "twin-layers.png",
    ]
    for png in figures.glob("*.png"):
        with Image.open(png) as im:
            assert im.width > 200 and im.height > 200
            # a heat map, not a blank canvas: many distinct colours
            assert len(im.convert("RGB").getcolors(1 << 20)) > 50
        assert png.with_suffix(".pdf").read_bytes().startswith(b"%PDF")


def test_the_landing_page_shows_the_heat_maps_under_their_summary(tiny_run):
    page = (tiny_run / "index.html").read_text()
    assert "Representation similarity (linear CKA)" in page
    section = page.split("Representation similarity (linear CKA)")[1]
    assert "similarity/figures/tiny-layers.png" in section.split("<h2>")[0]
    summary = json.loads((tiny_run / "similarity/summary.json").read_text())
    assert summary["sentences"]["tiny"]
    for sentence in summary["sentences"]["tiny"]:
        assert html.escape(sentence) in section
    # every cell of the matrices as tables opens its two maps side by side
    pairs = []
    for href in re.findall(r'href="(compare\.html#[^"]+)"', section):
        views = parse_qs(html.unescape(href).split("#", 1)[1])
        a, b = ({k: v[0] for k, v in parse_qs(views[x][0]).items()} for x in "ab")
        pairs.append(((a["ckpt"], a["layer"]), (b["ckpt"], b["layer"])))
    assert len(pairs) == 2 * 4 + 2 * 4  # layers per checkpoint, checkpoints per layer
    assert (("early", "fc1"), ("late", "fc1")) in pairs
    assert (("late", "features.1.3"), ("late", "fc1")) in pairs
    assert '"atlas.html"' in (tiny_run / "compare.html").read_text()
