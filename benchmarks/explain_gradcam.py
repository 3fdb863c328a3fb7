"""Grad-CAM throughput and memory: a per-image loop vs cnnatlas's batched GradCAM.

Prints one JSON object. On N random images (random-init resnet18, `--size` px):
  a) per-image loop as tutorials write it: batch of 1, one backward per image;
  b) cnnatlas.explain.saliency, batch 64, Grad-CAM and Grad-CAM++ for the
     predicted class from one backward per batch;
and the peak resident memory over a warm-up of 5 batches and over the rest of
1,000 images through (b), plus the hooks left on the model afterwards.

    python benchmarks/explain_gradcam.py --n 256 --size 64 --threads 2
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from cnnatlas.explain.saliency import (  # noqa: E402
    METHODS,
    open_methods,
    saliency_maps,
)

BOTH = ["gradcam", "gradcam++"]


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def per_image(model, x) -> float:
    started = time.perf_counter()
    with METHODS["gradcam"](model, "layer4") as cam:
        for i in range(len(x)):
            cam(x[i : i + 1], {"pred": None})
    return len(x) / (time.perf_counter() - started)


def batched(model, x, batch=64) -> float:
    started = time.perf_counter()
    with open_methods(model, "layer4", BOTH) as cams:
        for b in x.split(batch):
            saliency_maps(cams, b, {"pred": None})
    return len(x) / (time.perf_counter() - started)


def memory(model, size, batch=50, n=1000) -> dict:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    rss = []
    with open_methods(model, "layer4", BOTH) as cams:
        for _ in range(n // batch):
            y = torch.zeros(batch, dtype=torch.long)
            saliency_maps(cams, x, {"pred": None, "true": y})
            rss.append(rss_mib())
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())
    return {
        "rss_peak_warmup_mib": round(max(rss[:5]), 1),
        "rss_peak_after_mib": round(max(rss[5:]), 1),
        "growth_mib": round(max(rss[5:]) - max(rss[:5]), 1),
        "hooks_left": hooks,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    x = torch.randn(
        args.n, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
    )
    per_image(model, x[:8])  # warm-up
    a = per_image(model, x)
    b = batched(model, x)
    out = {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "n": args.n,
        "size": args.size,
        "per_image_loop_images_per_s": round(a, 1),
        "batched_images_per_s": round(b, 1),
        "speedup": round(b / a, 2),
        "memory_1000_images": memory(model, args.size),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
