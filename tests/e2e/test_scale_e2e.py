"""The scale route at a small N: `benchmarks/scale_data.py digits`, then the real snakemake on its config.

The config is the generated scale config with the overrides in `scale_overrides`: a
lighter workload so the test runs in a few minutes (two checkpoints, two layers, short
t-SNE and filter optimisation) and the thresholds of the large-N paths lowered so that
they trigger at this N. Keys that switch a large-N path on go into that one dict.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cnnatlas.io import read_parquet_meta

from benchmarks.scale_data import DIGIT_CLASSES, make_digits
from tests.conftest import run_snakemake

pytestmark = pytest.mark.e2e

N = 300
STEPS = (
    5,
    150,
)  # a barely trained and a trained DigitNet (the demo's code, fewer steps)
LAYERS = ("features.2.3", "relu")
BENCH_COLUMNS = {"s", "max_rss", "cpu_time", "mean_load"}


def scale_overrides() -> dict:
    """Config keys over the generated scale config (merged section by section)."""
    return {
        "maps": {
            # 3-D t-SNE maps fitted on a subsample, the rest placed by transform
            "tsne": {
                "n_iter": 100,
                "early_exaggeration_iter": 50,
                "max_points_3d": 200,
            },
            "metrics": {"max_points": 200},  # subsample + sampled trust paths trigger
        },
        "explain": {
            "saliency": {"max_images": 50},  # faithfulness on a stratified sample
            "filters": {"channels": 2, "steps": 8, "topk": 2, "max_images": 60},
            "trust": {"max_images": 20, "road_fractions": [0.2, 0.5]},
        },
        # relu (300 x 128 values) over the limit: exported as principal components
        "projector": {"max_values": 20000},
        "figures": {"dpi": 60},
    }


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory) -> Path:
    """The workdir of a complete run of the small-N digits scale config."""
    workdir = tmp_path_factory.mktemp("scale")
    path = make_digits(workdir, N, seed=0, threads=1, steps=STEPS)
    config = yaml.safe_load(path.read_text())
    model = config["models"]["digitnet"]
    model["layers"] = {k: v for k, v in model["layers"].items() if k in LAYERS}
    path.write_text(yaml.safe_dump(merge(config, scale_overrides()), sort_keys=False))
    run_snakemake(workdir, timeout=900)
    return workdir


def test_the_dataset_is_balanced_and_sized(scale_run):
    manifest = pd.read_parquet(scale_run / "results" / "manifest.parquet")
    assert len(manifest) == N
    assert manifest["label_name"].value_counts().to_dict() == {
        c: N // len(DIGIT_CLASSES) for c in DIGIT_CLASSES
    }
    preds = pd.read_parquet(scale_run / "results/digitnet/step0150/predictions.parquet")
    assert len(preds) == N
    # augmented held-out digits: hard, but the trained checkpoint reads most of them
    assert preds["correct"].mean() > 0.5


def test_every_benchmark_loads_with_its_columns(scale_run):
    bench = scale_run / "results" / "benchmarks"
    files = sorted(bench.rglob("*.tsv"))
    rules = {f.relative_to(bench).parts[0].removesuffix(".tsv") for f in files}
    # every rule that ran wrote its cost record (rules the config turns off aside)
    assert rules >= {
        "build_manifest",
        "extract_features",
        "reduce_tsne",
        "reduce_pca",
        "reduce_umap",
        "measure_maps",
        "gather_metrics",
        "summarize_layers",
        "select_explain_images",
        "render_saliency",
        "check_saliency",
        "make_thumbnail_sheets",
        "plot_embeddings",
        "write_atlas",
        "write_index",
        "export_projector",
        "write_provenance",
    }
    for f in files:
        table = pd.read_csv(f, sep="\t")
        assert BENCH_COLUMNS <= set(table.columns), f
        assert len(table) >= 1 and (table["s"] >= 0).all(), f
        assert (table["max_rss"] >= 0).all() and (table["cpu_time"] >= 0).all(), f
        # Snakemake samples memory from 0.5 s on: a job as short reads 0 (CI saw a
        # 0.45 s job with max_rss 0); one that ran for a second has a reading
        assert (table.loc[table["s"] >= 1, "max_rss"] > 0).all(), f


def test_the_maps_have_structure(scale_run):
    metrics = pd.read_parquet(scale_run / "results" / "metrics.parquet")
    assert set(metrics["n_points"]) == {N}
    assert set(metrics["n_metric_points"]) == {200}
    relu = metrics[metrics["layer"] == "relu"].set_index(["ckpt", "method"])
    trained, early = relu.loc["step0150"], relu.loc["step0005"]
    assert set(trained.index) == {"tsne", "pca", "umap"}
    # chance: the largest class's share of the metrics' points
    assert (trained["knn_features"] > 3 * trained["chance"]).all()
    tsne = trained.loc["tsne"]
    assert len(tsne) == 8 and (tsne["knn_map"] > 3 * tsne["chance"]).all()
    # training forms the representation
    assert trained["knn_features"].iloc[0] > early["knn_features"].iloc[0] + 0.2


def test_trust_above_max_points_is_sampled_over_all_points(scale_run):
    # 300 images over max_points 200: trustworthiness and continuity on 200 stratified
    # query points against all 300, each within its interval of the exact value
    from cnnatlas.metrics import continuity, trustworthiness

    results = scale_run / "results"
    metrics = pd.read_parquet(results / "metrics.parquet")
    assert set(metrics["trust_queries"]) == {200}
    assert (metrics["trustworthiness_ci"] > 0).all()
    run = results / "digitnet" / "step0150"
    x = np.load(run / "features" / "relu.npy").astype(np.float64)
    rows = metrics[(metrics["ckpt"] == "step0150") & (metrics["layer"] == "relu")]
    checked = 0
    for path in sorted((run / "embeddings" / "relu").glob("*-2d-*.parquet")):
        meta = json.loads(read_parquet_meta(path)["cnnatlas.map"])
        y = pd.read_parquet(path)[["x", "y"]].to_numpy(np.float64)
        row = rows[
            (rows["method"] == meta["method"])
            & (rows["dim"] == 2)
            & (rows["perplexity"] == float(meta["perplexity"]))
            & (rows["seed"] == int(meta["seed"]))
        ].iloc[0]
        for key, exact in (
            ("trustworthiness", trustworthiness(x, y, 10)),
            ("continuity", continuity(x, y, 10)),
        ):
            assert abs(row[key] - exact) <= 2 * row[f"{key}_ci"], (path.name, key)
        checked += 1
    assert checked >= 5


def test_the_collector_reads_the_run(scale_run):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
    proc = subprocess.run(
        [sys.executable, script, "collect", "--workdir", scale_run, "--n", str(N)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["rules"]["extract_features"]["jobs"] == len(STEPS)
    # the scale config's layer_jobs: layer: one maps and one metrics job per layer
    assert (
        yaml.safe_load((scale_run / "config.yaml").read_text())["layer_jobs"] == "layer"
    )
    assert out["rules"]["measure_maps"]["jobs"] == len(STEPS) * len(LAYERS)
    assert out["rules"]["reduce_tsne"]["jobs"] == len(STEPS) * len(LAYERS)
    assert out["rules"]["reduce_umap"]["jobs"] == 1  # batched: every layer in one job
    assert out["span_s"] > 0


def test_the_large_n_paths_ran(scale_run):
    """Subsampled 3-D maps, the reduced projector export, bounded explanations."""
    metrics = pd.read_parquet(scale_run / "results" / "metrics.parquet")
    sub = (metrics["method"] == "tsne") & (metrics["dim"] == 3)
    assert sub.any() and metrics.loc[sub, "n_fitted"].eq(200).all()
    assert metrics.loc[~sub, "n_fitted"].eq(N).all()
    # the placed points land by class in the trained checkpoint's penultimate layer
    placed = metrics[
        sub & (metrics["ckpt"] == "step0150") & (metrics["layer"] == "relu")
    ]
    # (0.34-0.46 against a chance of 0.125 with openTSNE 1.0.4 and scikit-learn 1.9.1;
    # the 200 fitted points reach 0.61-0.64)
    assert len(placed) == 4 and (placed["knn_map_placed"] > 2 * placed["chance"]).all()
    run = scale_run / "results" / "digitnet" / "step0150"
    record = json.loads((run / "projector" / "export.json").read_text())
    tensors = {t["name"]: (t["shape"], t["reduction"]) for t in record["tensors"]}
    # features.2.3 (300 x 32) fits under the limit; relu gets 20000 // 300 = 66 components
    assert tensors["features.2.3"][1] is None
    (relu,) = [k for k in tensors if k.startswith("relu (PCA ")]
    assert tensors[relu] == ([N, 66], "pca")
    meta = read_parquet_meta(run / "explain" / "saliency_faithfulness.parquet")
    assert meta["cnnatlas.images"].startswith(f"50 of {N} images (class-stratified")
    meta = read_parquet_meta(run / "explain" / "filters.parquet")
    assert meta["cnnatlas.images"].startswith(f"60 of {N} images (class-stratified")
