"""Mixed precision on the demo: do autocast features keep the structure fp32 features have?

For every checkpoint and layer of the demo's `digitnet`, extracts the test digits' features
in fp32 and under autocast (bf16, fp16) on `--device`, and prints one JSON object with, per
precision: the largest absolute difference to fp32 (also relative to the features' overall
standard deviation), the 10-NN accuracy in feature space and in a 2-D t-SNE map
(perplexity 30, seed 0) beside fp32's, and the largest accuracy difference over all
(checkpoint, layer); for scale, also how far fp32's t-SNE accuracy moves with seed 1. Run it in a folder where the demo has run
(`results/manifest.parquet` and the demo checkpoints exist):

    python benchmarks/precision.py --workdir . --device cpu
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.extract import extract  # noqa: E402
from cnnatlas.maps.tsne import tsne_map  # noqa: E402
from cnnatlas.metrics import knn_accuracy  # noqa: E402
from cnnatlas.models import load_model  # noqa: E402
from cnnatlas.schema import defaults  # noqa: E402

# kNN accuracy with the schema's maps.metrics k, folds and seed.
KNN = [defaults("maps.metrics")[key] for key in ("k", "folds", "seed")]


def features(spec, ckpt, manifest, out: Path, device: str, precision: str) -> dict:
    extract(manifest, load_model(spec, ckpt), spec["layers"], out / "p.parquet", out,
            spec["transform"], threads=torch.get_num_threads(), device=device,
            precision=precision)  # fmt: skip
    return {layer: np.load(out / f"{layer}.npy") for layer in spec["layers"]}


def accuracies(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    coords, _ = tsne_map(x, dim=2, perplexity=30, seed=seed)
    return {
        "knn_features": knn_accuracy(x, labels, *KNN),
        "knn_tsne": knn_accuracy(coords, labels, *KNN),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.chdir(args.workdir)
    config = yaml.safe_load((args.workdir / "config.yaml").read_text())
    spec = config["models"]["digitnet"]
    manifest = Path("results/manifest.parquet")
    labels = pd.read_parquet(manifest)["label"].to_numpy()
    out = {"device": args.device, "torch": torch.__version__, "n": len(labels),
           "load_average_start": os.getloadavg(), "checkpoints": {}}  # fmt: skip
    worst = {p: {"knn_features": 0.0, "knn_tsne": 0.0} for p in args.precisions}
    worst["fp32_seed_0_vs_1"] = {"knn_tsne": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ckpt in spec["checkpoints"].items():
            feats = {
                p: features(spec, ckpt, manifest, Path(tmp) / name / p, args.device, p)
                for p in ["fp32", *args.precisions]
            }
            rows = {}
            for layer in spec["layers"]:
                ref = feats["fp32"][layer]
                row = {"fp32": accuracies(ref, labels)}
                # how much the t-SNE map's accuracy moves with its seed alone, in fp32
                row["fp32_seed1_knn_tsne"] = accuracies(ref, labels, seed=1)["knn_tsne"]
                for p in args.precisions:
                    x = feats[p][layer]
                    diff = float(np.abs(x - ref).max())
                    row[p] = accuracies(x, labels) | {
                        "dtype": str(x.dtype),
                        "max_abs_diff": diff,
                        "max_abs_diff_over_std": diff / float(ref.std()),
                    }
                    for key in ("knn_features", "knn_tsne"):
                        delta = abs(row[p][key] - row["fp32"][key])
                        worst[p][key] = max(worst[p][key], delta)
                seed = abs(row["fp32_seed1_knn_tsne"] - row["fp32"]["knn_tsne"])
                worst["fp32_seed_0_vs_1"]["knn_tsne"] = max(
                    worst["fp32_seed_0_vs_1"]["knn_tsne"], seed
                )
                rows[layer] = row
                print(json.dumps({name: {layer: row}}), file=sys.stderr)
            out["checkpoints"][name] = rows
    out["largest_knn_difference"] = worst
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
