"""The atlas's feature-space neighbours of every image: exact search against the HNSW
index used above `maps.metrics.exact_neighbors_max`.

Synthetic features with class structure (ReLU of 100 class centres plus noise, the layout
of a network's pooled features), N x D float32, saved as .npy and memory-mapped as
`measure_maps` reads them. For each N, each search runs in its own process through
`cnnatlas.metrics.feature_neighbors` and reports wall and CPU seconds and peak RSS; the
HNSW run also reports the recall@k it measured on its 1,000 query points and, where the
exact search ran too, its recall over every image.

    .venv/bin/python benchmarks/neighbors.py --n 20000 50000 --dim 2048 \
        > benchmarks/neighbors-2026-12-05.json

Prints JSON.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.schema import default  # noqa: E402

# One search in a fresh process: its time, CPU time and peak RSS are its own.
CHILD = """
import json, resource, sys, time
sys.path.insert(0, {scripts!r})
from cnnatlas.metrics import feature_neighbors
wall, cpu = time.perf_counter(), time.process_time()
found = feature_neighbors({features!r}, {out!r}, {k}, None, {exact_max}, seed={seed})
found.pop("ids")
found["wall_s"] = time.perf_counter() - wall
found["cpu_s"] = time.process_time() - cpu
found["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(found))
"""


def features(n: int, dim: int, path: Path, seed: int = 0) -> np.ndarray:
    """Saves the features to `path`; returns their class labels [n]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, dim)).astype(np.float32)
    x = np.empty((n, dim), np.float32)
    labels = np.empty(n, np.int64)
    for start in range(0, n, 10_000):
        rows = min(10_000, n - start)
        part = labels[start : start + rows] = rng.integers(0, 100, rows)
        noise = rng.normal(scale=1.5, size=(rows, dim)).astype(np.float32)
        x[start : start + rows] = np.maximum(centres[part] + noise, 0)
    np.save(path, x)
    return labels


def search(path: Path, out: Path, k: int, exact_max: int | None) -> dict:
    code = CHILD.format(
        scripts=str(REPO / "workflow" / "scripts"), features=str(path), out=str(out),
        k=k, exact_max=exact_max, seed=default("maps.metrics.seed"),
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20_000, 50_000])
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument(
        "--exact-max", type=int, default=200_000,
        help="run the exact search too up to this N (its time grows as N^2)",
    )  # fmt: skip
    args = ap.parse_args()
    import faiss

    results = {
        "machine": platform.machine(), "cpus": len(__import__("os").sched_getaffinity(0)),
        "faiss": faiss.__version__, "dim": args.dim, "k": args.k, "runs": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            path = Path(tmp) / f"{n}.npy"
            features(n, args.dim, path)
            row = {"n": n, "hnsw": search(path, Path(tmp) / "hnsw.npy", args.k, 0)}
            if n <= args.exact_max:
                row["exact"] = search(path, Path(tmp) / "exact.npy", args.k, None)
                approx = np.load(Path(tmp) / "hnsw.npy").astype(np.int64)
                exact = np.load(Path(tmp) / "exact.npy").astype(np.int64)
                hits = (approx[:, :, None] == exact[:, None, :]).any(axis=2).sum()
                row["hnsw"]["recall_all_images"] = float(hits / exact.size)
                row["wall_ratio_exact_over_hnsw"] = (
                    row["exact"]["wall_s"] / row["hnsw"]["wall_s"]
                )
            results["runs"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
