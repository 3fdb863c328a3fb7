"""Trustworthiness and continuity above `maps.metrics.max_points`: the estimate on a
stratified sample of query points against the exact value over every image.

Synthetic features with class structure (`neighbors.features`: ReLU of 100 class centres
plus noise), N x D float32, memory-mapped as `measure_maps` reads them, and two 2-D maps
of them: PCA and an openTSNE t-SNE of the first 50 principal components. The exact values
take every image as a query (`sampled_trust` with size N: scikit-learn's formula over all
N); the estimates take `--queries` stratified query points for each of `--seeds` seeds
and report their 95 % intervals and whether the exact value lies inside. Wall and CPU
seconds of each call.

    .venv/bin/python benchmarks/trust_sample.py --n 50000 --dim 2048 \
        > benchmarks/trust-sample-2026-12-05.json

Prints JSON.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO))

from cnnatlas.maps.toolbox import principal_components  # noqa: E402
from cnnatlas.metrics import sampled_trust  # noqa: E402

from benchmarks.neighbors import features  # noqa: E402


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from openTSNE import TSNE

    return np.asarray(TSNE(random_state=seed, n_jobs=os.cpu_count()).fit(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.npy"
        labels = features(args.n, args.dim, path)
        x = np.load(path, mmap_mode="r")
        pcs, _ = principal_components(x, 50)
        (t_map, t_wall, _) = timed(tsne, pcs, 0)
        maps = {"pca": pcs[:, :2], "tsne": t_map}
        exact, e_wall, e_cpu = timed(
            sampled_trust, x, list(maps.values()), labels, args.k, args.n, 0
        )
        samples = []
        for seed in range(args.seeds):
            got, wall, cpu = timed(
                sampled_trust,
                x,
                list(maps.values()),
                labels,
                args.k,
                args.queries,
                seed,
            )
            for name, est, ref in zip(maps, got, exact, strict=True):
                row = {"seed": seed, "map": name, "wall_s": wall, "cpu_s": cpu}
                for key in ("trustworthiness", "continuity"):
                    ci = est[f"{key}_ci"]
                    row[key] = est[key]
                    row[f"{key}_ci"] = ci
                    row[f"{key}_error"] = est[key] - ref[key]
                    row[f"{key}_inside"] = bool(abs(est[key] - ref[key]) <= ci)
                samples.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    inside = [
        r[f"{k}_inside"] for r in samples for k in ("trustworthiness", "continuity")
    ]
    print(json.dumps({
        "machine": platform.machine(), "cpus": len(os.sched_getaffinity(0)),
        "n": args.n, "dim": args.dim, "k": args.k, "queries": args.queries,
        "tsne_wall_s": t_wall,
        "exact": {
            "wall_s": e_wall, "cpu_s": e_cpu,
            "maps": {name: {k: v for k, v in e.items() if not k.endswith("_ci")}
                     for name, e in zip(maps, exact, strict=True)},
        },
        "samples": samples,
        "inside_share": float(np.mean(inside)),
        "sample_over_exact_wall": float(np.mean([r["wall_s"] for r in samples]) / e_wall),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
