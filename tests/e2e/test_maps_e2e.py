"""The maps stage on the tiny config (shared run) and on the repository's own demo."""

import hashlib
import json
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cnnatlas.io import read_parquet_meta

from tests.conftest import REPO, run_snakemake

pytestmark = pytest.mark.e2e

CKPTS, LAYERS = ("early", "late"), ("features.1.3", "fc1")


def sweep(maps):
    """(method, dim, perplexity, seed) of a maps config, as the contract names files."""
    out = []
    for method, dim in product(maps["methods"], maps["dims"]):
        if method == "pca":
            out.append((method, dim, 0.0, 0))
        elif method == "umap":
            out += [(method, dim, 0.0, s) for s in maps["seeds"]]
        else:
            out += [
                (method, dim, float(p), s)
                for p in maps["perplexities"]
                for s in maps["seeds"]
            ]
    return out


def embedding_file(results, model, ckpt, layer, method, dim, perplexity, seed):
    name = f"{method}-{dim}d-p{perplexity:g}-s{seed}.parquet"
    return Path(results) / model / ckpt / "embeddings" / layer / name


def tiny_maps():
    return yaml.safe_load((Path(__file__).parent / "tiny_config.yaml").read_text())[
        "maps"
    ]


def test_every_embedding_follows_the_contract(tiny_run):
    for ckpt, layer, spec in product(CKPTS, LAYERS, sweep(tiny_maps())):
        path = embedding_file(tiny_run, "tiny", ckpt, layer, *spec)
        df = pd.read_parquet(path)
        method, dim = spec[:2]
        assert list(df.columns) == ["image_id", *"xyz"[:dim]]
        assert df["image_id"].tolist() == list(range(30))
        assert np.isfinite(df[list("xyz"[:dim])].to_numpy()).all()
        meta = json.loads(read_parquet_meta(path)["cnnatlas.map"])
        assert (meta["method"], meta["dim"], meta["seed"]) == (method, dim, spec[3])
        if method == "tsne":
            assert meta["kl_divergence"] > 0 and meta["effective_perplexity"] == spec[2]
            # tiny_config: max_points_3d 24 of 30 images; 2-D maps fit every image
            sub = meta.get("subsample")
            assert (sub and (sub["size"], sub["of"])) == (
                (24, 30) if dim == 3 else None
            )


def test_metrics_hold_one_row_per_embedding(tiny_run):
    m = pd.read_parquet(tiny_run / "metrics.parquet")
    expected = {
        ("tiny", c, lay, *s) for c, lay, s in product(CKPTS, LAYERS, sweep(tiny_maps()))
    }
    keys = ["model", "ckpt", "layer", "method", "dim", "perplexity", "seed"]
    assert set(map(tuple, m[keys].itertuples(index=False))) == expected
    assert len(m) == len(expected)
    unit = [
        "knn_features",
        "knn_map",
        "trustworthiness",
        "continuity",
        "neighbor_preservation",
    ]
    assert m[unit].apply(lambda c: c.between(0, 1)).all().all()
    assert m["seed_stability"].notna().sum() == len(m[m.method != "pca"])
    assert m["diagnosis"].str.len().gt(0).all()
    sub = (m.method == "tsne") & (m.dim == 3)
    assert m.loc[sub, "n_fitted"].eq(24).all() and m.loc[~sub, "n_fitted"].eq(30).all()
    assert m.loc[~sub, "knn_map_fitted"].isna().all()


def test_layer_summary_table_and_plot(tiny_run):
    s = pd.read_parquet(tiny_run / "tiny" / "layer_summary.parquet")
    assert s[["ckpt", "layer"]].values.tolist() == [
        [c, lay] for c in CKPTS for lay in LAYERS
    ]
    m = pd.read_parquet(tiny_run / "metrics.parquet")
    best = m.groupby(["ckpt", "layer"])["knn_map"].max()
    for row in s.itertuples():
        assert row.knn_best_map == pytest.approx(best[(row.ckpt, row.layer)])
    csv = pd.read_csv(tiny_run / "tiny" / "layer_summary.csv")
    assert csv["knn_features"].tolist() == pytest.approx(s["knn_features"].tolist())
    assert (tiny_run / "tiny" / "layer_summary.png").read_bytes()[:4] == b"\x89PNG"
    assert (tiny_run / "tiny" / "layer_summary.pdf").read_bytes()[:4] == b"%PDF"


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_rerun_gives_byte_identical_embeddings(tiny_run, tmp_path):
    """Same config, same threads: recomputing every map in a new process gives the same bytes."""
    before = {
        p.relative_to(tiny_run): sha256(p)
        for p in tiny_run.rglob("embeddings/*/*.parquet")
    }
    assert len(before) == len(CKPTS) * len(LAYERS) * len(sweep(tiny_maps()))
    copy = tmp_path / "again"
    shutil.copytree(tiny_run.parent, copy, ignore=shutil.ignore_patterns(".snakemake"))
    for path in copy.rglob("embeddings/*/*.parquet"):
        path.unlink()
    run_snakemake(copy, *(f"results/{p}" for p in before), "--rerun-triggers", "mtime")
    after = {p: sha256(copy / "results" / p) for p in before}
    assert after == before


def test_demo_metrics_hold_the_sweep_and_the_trained_net_separates_classes():
    """The repository's own config: a no-op when the Quick start already ran the demo."""
    run_snakemake(REPO, "results/metrics.parquet", timeout=3600)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    model, spec = next(iter(config["models"].items()))
    m = pd.read_parquet(REPO / config["results"] / "metrics.parquet")
    m = m[m.model == model]
    expected = {
        (c, lay, *s)
        for c, lay, s in product(
            spec["checkpoints"], spec["layers"], sweep(config["maps"])
        )
    }
    keys = ["ckpt", "layer", "method", "dim", "perplexity", "seed"]
    assert set(map(tuple, m[keys].itertuples(index=False))) == expected
    final = list(spec["checkpoints"])[-1]
    penultimate = "relu" if "relu" in spec["layers"] else "fc1"
    tsne = m[(m.ckpt == final) & (m.layer == penultimate) & (m.method == "tsne")]
    assert len(tsne) > 0
    assert tsne["knn_map"].min() >= 0.9, tsne[["dim", "perplexity", "seed", "knn_map"]]
