"""One t-SNE map: scikit-learn's TSNE vs cnnatlas; and a perplexity x seed sweep vs single runs.

Prints one JSON object. Data: seeded Gaussian mixtures (20 clusters) of 5,000 and 20,000
points x 512 dims and 5,000 x 4,096, plus the demo's final-checkpoint `relu` features
when they exist. Quality = 10-NN accuracy (5-fold CV) in the map.
  a) scikit-learn TSNE (defaults: Barnes-Hut, PCA init, perplexity 30), n_jobs=threads;
  b) cnnatlas.maps.tsne.tsne_map (openTSNE, PCA-50 pre-step, PCA init), n_jobs=threads;
  c) on the 4,096-d data: cnnatlas.maps.tsne.tsne_maps over perplexities (30, 50) x seeds
     (0, 1, 2), sharing the PCA pre-step, kNN graph and init, vs six tsne_map calls.
Targets: (b) >= 3x faster than (a) at N = 20,000 with kNN accuracy >= (a)'s - 0.02;
(c) sweep <= 0.85 x the six single runs.

    python benchmarks/reduce.py --threads 1
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from cnnatlas.maps import MapSpec  # noqa: E402
from cnnatlas.maps.tsne import METHOD, tsne_map  # noqa: E402
from cnnatlas.metrics import knn_accuracy  # noqa: E402
from cnnatlas.schema import defaults  # noqa: E402

# kNN accuracy with the schema's maps.metrics k, folds and seed.
KNN = [defaults("maps.metrics")[key] for key in ("k", "folds", "seed")]

DEMO = ROOT / "results" / "digitnet" / "step0600" / "features" / "relu.npy"


def mixture(n: int, d: int, clusters: int = 20, seed: int = 0):
    """n points of a Gaussian mixture in d dims: cluster means N(0, s^2), unit noise."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 0.27, (clusters, d))
    labels = rng.integers(0, clusters, n)
    x = means[labels] + rng.normal(0, 1, (n, d))
    return x.astype(np.float32), labels


def timed(fn, *args, **kwargs):
    """(result, wall seconds); CPU seconds of the process are added to CPU[0]."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    CPU[0] = time.process_time() - c
    return out, time.perf_counter() - t


CPU = [
    0.0
]  # CPU seconds of the last `timed` call: robust to other jobs on a shared machine


def sklearn_tsne(x, threads):
    from sklearn.manifold import TSNE

    return TSNE(init="pca", random_state=0, n_jobs=threads).fit_transform(x)


def one_map(name, x, labels, threads):
    sk, sk_s = timed(sklearn_tsne, x, threads)
    sk_cpu = CPU[0]
    (ours, _), ours_s = timed(tsne_map, x, 2, 30, 0, n_jobs=threads)
    ours_cpu = CPU[0]
    row = {
        "data": name,
        "n": int(x.shape[0]),
        "d": int(x.shape[1]),
        "knn_features": knn_accuracy(x, labels, *KNN),
        "sklearn_s": sk_s,
        "sklearn_knn": knn_accuracy(sk, labels, *KNN),
        "cnnatlas_s": ours_s,
        "cnnatlas_knn": knn_accuracy(ours, labels, *KNN),
        "sklearn_cpu_s": sk_cpu,
        "cnnatlas_cpu_s": ours_cpu,
    }
    row["speedup"] = sk_s / ours_s
    row["speedup_cpu"] = sk_cpu / ours_cpu
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def sweep(x, threads, perplexities=(30, 50), seeds=(0, 1, 2)):
    specs = [MapSpec(2, p, s) for p in perplexities for s in seeds]
    _, shared_s = timed(lambda: list(METHOD.maps(x, specs, n_jobs=threads)))
    shared_cpu = CPU[0]

    def singles():
        for s in specs:
            tsne_map(x, 2, s.perplexity, s.seed, n_jobs=threads)

    _, single_s = timed(singles)
    return {
        "maps": len(specs),
        "sweep_s": shared_s,
        "six_single_runs_s": single_s,
        "ratio": shared_s / single_s,
        "sweep_cpu_s": shared_cpu,
        "six_single_runs_cpu_s": CPU[0],
        "ratio_cpu": shared_cpu / CPU[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    args = ap.parse_args()
    threadpool_limits(args.threads)  # BLAS (PCA) too: same thread count on both sides
    # The 20,000-point target first, then the sweep: the results that matter most come first.
    sizes = sorted(args.sizes, reverse=True)
    rows = [one_map(f"mixture-{sizes[0]}x512", *mixture(sizes[0], 512), args.threads)]
    big = mixture(5000, 4096, seed=1)
    sw = sweep(big[0], args.threads)
    print(json.dumps({"sweep_4096d": sw}), file=sys.stderr, flush=True)
    rows.append(one_map("mixture-5000x4096", *big, args.threads))
    for n in sizes[1:]:
        rows.append(one_map(f"mixture-{n}x512", *mixture(n, 512), args.threads))
    if DEMO.exists():
        import pandas as pd

        pred = ROOT / "results" / "digitnet" / "step0600" / "predictions.parquet"
        labels = pd.read_parquet(pred).sort_values("image_id")["label"].to_numpy()
        rows.append(one_map("demo-relu", np.load(DEMO), labels, args.threads))
    at20k = [r for r in rows if r["n"] == 20000]
    targets = {
        "sweep_le_0.85": sw["ratio"] <= 0.85,
        "sweep_cpu_le_0.85": sw["ratio_cpu"] <= 0.85,
    }
    if at20k:
        r = at20k[0]
        targets["speedup_ge_3_at_20k"] = r["speedup"] >= 3
        targets["speedup_cpu_ge_3_at_20k"] = r["speedup_cpu"] >= 3
        targets["knn_ge_sklearn_minus_0.02_at_20k"] = (
            r["cnnatlas_knn"] >= r["sklearn_knn"] - 0.02
        )
    print(
        json.dumps(
            {
                "machine": {"arch": platform.machine(), "threads": args.threads},
                "one_map": rows,
                "sweep_4096d": sw,
                "targets": targets,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
