"""CPU cost of the saliency checks per method, and their results, on a real checkpoint.

Prints one JSON object: for each saliency method alone (and all together), the CPU
seconds (`time.process_time`) of `cnnatlas.explain.trust.check_saliency` on a
class-stratified sample of the images, with its deletion/insertion AUCs, ROAD means and
randomisation outcome. Defaults read the demo's final checkpoint as the workflow writes it.
Then ROAD's imputation alone: `perturb.impute_linear` on a batch against grad-cam's
`NoisyLinearImputer` image by image (scipy's sparse solver), at two image sizes, with
the largest difference between the two.

    python benchmarks/explain_trust.py --results results --threads 1 --images 100
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from cnnatlas.explain.gradcam import find_target_layer  # noqa: E402
from cnnatlas.explain.saliency import METHODS  # noqa: E402
from cnnatlas.explain.trust import (  # noqa: E402
    check_saliency,
    sample_images,
    summarize_checks,
)
from cnnatlas.models import load_model  # noqa: E402
from cnnatlas.torchutil import ImageDataset, make_transform  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def imputation(n: int, size: int) -> dict:
    """Seconds to impute half of every image's pixels (the most salient, a smooth map)."""
    from cnnatlas.explain.perturb import impute_linear, saliency_rank
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=gen)
    smooth = torch.nn.functional.avg_pool2d(
        torch.rand(n, 1, size, size, generator=gen), 9, 1, 4
    )[:, 0]
    removed = (saliency_rank(smooth) < size * size // 2).view(n, 1, size, size)
    started = time.perf_counter()
    ours = impute_linear(x, removed)
    t_ours = time.perf_counter() - started
    started = time.perf_counter()
    ref = [
        NoisyLinearImputer(noise=0)(x[i], (~removed[i, 0]).float()) for i in range(n)
    ]
    t_ref = time.perf_counter() - started
    diff = float((ours - torch.stack(ref)).abs().max())
    return {
        "batched_cg_s": round(t_ours, 2),
        "grad_cam_scipy_s": round(t_ref, 2),
        "max_abs_difference": diff,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="results")
    ap.add_argument("--model", default="digitnet")
    ap.add_argument("--ckpt", default="step0600")
    ap.add_argument("--checkpoint", default=None, help="default: the config's")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    spec = config["models"][args.model]
    opts = config["explain"]["trust"]
    pred = pd.read_parquet(
        Path(args.results) / args.model / args.ckpt / "predictions.parquet"
    )
    sample = sample_images(pred, args.images, opts["seed"])
    model = load_model(spec, args.checkpoint or spec["checkpoints"][args.ckpt]).eval()
    tf = make_transform(spec["transform"])
    layer = find_target_layer(model, tf.spec.channels, tf.spec.crop)
    ds = ImageDataset(sample["path"].tolist(), tf)
    info = sample[["image_id", "label_name", "correct"]].reset_index(drop=True)
    info["image_id"] = range(len(info))
    out = {"images": len(sample), "layer": layer, "threads": args.threads}
    for methods in [[m] for m in METHODS] + [list(METHODS)]:
        loader = DataLoader(ds, batch_size=opts["batch_size"])
        started = time.process_time()
        curves, rand, _ = check_saliency(model, layer, loader, methods, opts)
        cpu = time.process_time() - started
        s = summarize_checks(curves, rand, info, opts["threshold"])
        key = methods[0] if len(methods) == 1 else "all together"
        out[key] = {"cpu_s": round(cpu, 1)}
        if len(methods) == 1:
            r = s[s["group"] == "all"].iloc[0]
            cols = [
                "deletion_auc",
                "deletion_auc_random",
                "insertion_auc",
                "insertion_auc_random",
                "road_morf",
                "road_lerf",
                "road_score",
                "spearman_half",
                "spearman_last",
            ]
            out[key] |= {c: round(float(r[c]), 3) for c in cols}
            out[key]["randomisation_passed"] = bool(r["randomisation_passed"])
    out["imputation, 64 images, half removed"] = {
        f"{size} px": imputation(64, size) for size in (32, 96)
    }
    out["machine"] = platform.machine()
    out["torch"] = torch.__version__
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
