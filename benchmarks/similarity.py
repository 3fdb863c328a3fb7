"""Cost of the similarity stage (linear CKA): each estimator on synthetic features, and
the stage against the extraction on a finished run.

Synthetic: two layers' features of N images (ReLU of class centres plus noise, the
second a noisy random projection of the first), written as .npy and memory-mapped as the
stage reads them; each estimator runs in its own process, which reports its CPU seconds
and peak RSS, and its value against the exact one.

Run: after the demo (`snakemake --cores 2`), which gives the stage against the extraction:

    .venv/bin/python benchmarks/similarity.py --n 10000 --dims 512 2048 \
        --results results > benchmarks/similarity-2026-12-05.json

Prints JSON.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cnnatlas.cost import stage_of  # noqa: E402
from scale import collect  # noqa: E402

ESTIMATORS = {  # options that send N images to each estimator
    "gram": {"gram_max_n": 10**9},
    "covariance": {"gram_max_n": 1, "minibatch_min_n": 10**9},
    "minibatch": {"gram_max_n": 1, "minibatch_min_n": 1},
}


def write_pair(folder: Path, n: int, d: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d)).astype(np.float32) * 2
    x = np.maximum(centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d)), 0)
    proj = rng.normal(size=(d, d // 2)).astype(np.float32) / np.sqrt(d)
    y = np.maximum(x @ proj + 0.5 * rng.normal(size=(n, d // 2)), 0)
    paths = folder / f"x{d}.npy", folder / f"y{d}.npy"
    np.save(paths[0], x.astype(np.float32))
    np.save(paths[1], y.astype(np.float32))
    return paths


def one(x: str, y: str, estimator: str) -> None:
    """Child process: one estimator on the pair, JSON on stdout."""
    from cnnatlas.similarity import linear_cka

    start = time.process_time()
    value, spread, used = linear_cka(x, y, ESTIMATORS[estimator])
    print(json.dumps({
        "estimator": used, "cka": value, "spread": spread,
        "cpu_s": round(time.process_time() - start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))  # fmt: skip


def stage_against_extraction(results: Path) -> dict:
    """CPU seconds and peak RSS of the similarity rules and of the extraction, from a
    finished run's Snakemake benchmark files (`scale.collect`)."""
    rules = collect(results)["rules"]
    stage = [r for r in ("measure_similarity", "compare_models", "gather_similarity")
             if r in rules]  # fmt: skip
    extraction = sum(v["cpu_time"]["sum"] for r, v in rules.items()
                     if stage_of(r) == "extraction")  # fmt: skip
    total = sum(rules[r]["cpu_time"]["sum"] for r in stage)
    return {
        "rules_cpu_s": {r: round(rules[r]["cpu_time"]["sum"], 2) for r in stage},
        "rules_peak_rss_mb": {r: rules[r]["max_rss"]["max"] for r in stage},
        "similarity_cpu_s": round(total, 2),
        "extraction_cpu_s": round(extraction, 2),
        "ratio": round(total / extraction, 3) if extraction else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--dims", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--results", type=Path, help="a finished run's results folder")
    p.add_argument(
        "--one", nargs=3, metavar=("X", "Y", "ESTIMATOR"), help=argparse.SUPPRESS
    )
    args = p.parse_args()
    if args.one:
        one(*args.one)
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in args.dims:
            x, y = write_pair(Path(tmp), args.n, d)
            for est in ESTIMATORS:
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(x), str(y), est],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs.append(
                    {"n": args.n, "dims": [d, d // 2], **json.loads(out.stdout)}
                )
                print(json.dumps(runs[-1]), file=sys.stderr)
    exact = {r["dims"][0]: r["cka"] for r in runs if r["estimator"] == "gram"}
    for r in runs:
        r["minus_exact"] = r["cka"] - exact[r["dims"][0]]
    record = {
        "command": " ".join(["benchmarks/similarity.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "numpy": np.__version__},
        "synthetic": runs,
    }
    if args.results:
        record["run"] = stage_against_extraction(args.results)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
