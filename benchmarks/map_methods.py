"""Every registered map method on the demo's features: faithfulness and time, side by side.

Prints one JSON object. For each layer given (default: the final checkpoint's `relu` and
`features.2.3`) and each method of the registry `cnnatlas.maps` (default: all), the 2-D
maps of seeds 0 and 1 (t-SNE at perplexity 30) with the schema's default options, and
their metrics as metrics.parquet computes them (10-NN accuracy by stratified 5-fold CV,
trustworthiness, continuity, seed stability). Needs a finished demo run (`results/`).
Time: CPU seconds of the fits in this process (robust to other jobs on a shared machine;
the first fit of a numba method includes its compilation).

    python benchmarks/map_methods.py --methods tsne umap pacmap
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from cnnatlas.maps import get_method, methods  # noqa: E402
from cnnatlas.maps.toolbox import load_features  # noqa: E402
from cnnatlas.metrics import (  # noqa: E402
    knn_accuracy,
    map_metrics,
    neighbor_overlap,
    neighbors,
)
from cnnatlas.schema import defaults  # noqa: E402

RUN = ROOT / "results" / "digitnet" / "step0600"


def layer_table(layer: str, names: list[str], seeds: list[int]) -> list[dict]:
    x = load_features(RUN / "features" / f"{layer}.npy").astype(np.float64)
    labels = pd.read_parquet(RUN / "predictions.parquet").sort_values("image_id")
    labels = labels["label"].to_numpy()
    k = defaults("maps.metrics")
    x_nbrs = neighbors(x, k["k"])
    rows = []
    for name in names:
        method = get_method(name)
        maps, cpu = [], 0.0
        for seed in seeds:
            spec = method.spec(2, perplexity=30.0, seed=seed)
            c = time.process_time()
            (_, coords, _), *_ = method.maps(x.astype(np.float32), [spec])
            cpu += time.process_time() - c
            maps.append(coords.astype(np.float64))
        m = [
            map_metrics(x, y, labels, k["k"], k["folds"], k["seed"], x_nbrs)
            for y in maps
        ]
        stability = neighbor_overlap(
            neighbors(maps[0], k["k"]), neighbors(maps[1], k["k"])
        )
        rows.append(
            {
                "layer": layer,
                "method": name,
                "knn_features": knn_accuracy(x, labels, k["k"], k["folds"], k["seed"]),
                **{key: float(np.mean([r[key] for r in m])) for key in m[0]},
                "seed_stability": stability,
                "cpu_s_per_map": cpu / len(seeds),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(methods()))
    parser.add_argument("--layers", nargs="+", default=["relu", "features.2.3"])
    args = parser.parse_args()
    rows = [
        r for layer in args.layers for r in layer_table(layer, args.methods, [0, 1])
    ]
    print(
        json.dumps(
            {
                "machine": platform.machine(),
                "n_points": int(len(np.load(RUN / "features" / "relu.npy"))),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
