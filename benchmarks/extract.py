"""Extraction throughput and memory: the tutorials' per-image loop vs cnnatlas vs the compute ceiling.

Prints one JSON object. For each architecture (random init), on N JPEG images (256 px,
224 px eval transform) in an ImageFolder:
  a) per-image loop as tutorials write it: PIL open, transform, batch of 1, one layer hooked;
  b) cnnatlas.extract.extract: 5 layers + predictions in one batched pass into memmaps;
  c) forward pass alone on in-memory tensors, batch 64, channels_last (the compute ceiling);
and the peak RSS of (b) in a fresh process for N and 4N images.

    python benchmarks/extract.py --archs resnet18 vgg16 --n 512 --threads 2
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from cnnatlas.data import build_manifest  # noqa: E402
from cnnatlas.extract import extract  # noqa: E402
from cnnatlas.torchutil import make_transform  # noqa: E402

TF = {
    "resize": 224,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
LAYERS = {
    "resnet18": {
        "layer1": "avg",
        "layer2": "avg",
        "layer3": "avg",
        "layer4": "avg",
        "avgpool": "flatten",
    },
    "vgg16": {
        "features.4": "avg",
        "features.9": "avg",
        "features.16": "avg",
        "features.23": "avg",
        "classifier.4": "avg",
    },
}
ONE_LAYER = {"resnet18": "avgpool", "vgg16": "classifier.4"}


def make_images(root: Path, n: int, classes: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i:05d}.jpg", quality=90)
    return root


def model_for(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(arch, weights=None, num_classes=4).eval()


def per_image_loop(arch: str, paths: list[str]) -> float:
    """The tutorials' way: one image at a time, a forward hook on one module."""
    model = model_for(arch)
    tf = make_transform(TF)
    feats = []
    module = dict(model.named_modules())[ONE_LAYER[arch]]
    handle = module.register_forward_hook(
        lambda _m, _i, out: feats.append(out.flatten(1).numpy().copy())
    )
    start = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            x = tf(Image.open(p).convert("RGB")).unsqueeze(0)
            model(x)
    seconds = time.perf_counter() - start
    handle.remove()
    return len(paths) / seconds


def forward_only(arch: str, n: int, batch: int = 64) -> float:
    model = model_for(arch).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224).to(memory_format=torch.channels_last)
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        while done < n:
            model(x[: min(batch, n - done)])
            done += batch
    return n / (time.perf_counter() - start)


def cnnatlas_extract(arch: str, manifest: Path, out: Path, n: int) -> float:
    start = time.perf_counter()
    extract(
        manifest,
        model_for(arch),
        LAYERS[arch],
        out / "pred.parquet",
        out / "features",
        TF,
        batch_size=64,
        num_workers=0,
        threads=torch.get_num_threads(),
    )
    return n / (time.perf_counter() - start)


def peak_rss_mib(arch: str, manifest: Path, out: Path, threads: int) -> float:
    """Peak RSS of a fresh process that runs (b): the whole process, torch import included."""
    code = (
        "import resource, sys, torch; sys.path.insert(0, 'benchmarks'); import extract as b; "
        f"torch.set_num_threads({threads}); "
        f"b.cnnatlas_extract({arch!r}, b.Path({str(manifest)!r}), b.Path({str(out)!r}), 1); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(res.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", nargs="+", default=["resnet18", "vgg16"])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rss-archs",
        nargs="*",
        default=["resnet18"],
        help="archs whose RSS at N and 4N is measured",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
            "cuda": torch.cuda.is_available(),
        },
        "n_images": args.n,
        "archs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = make_images(tmp / "n", args.n)
        manifest = tmp / "n.parquet"
        df = build_manifest({"kind": "imagefolder", "path": str(small)}, manifest)
        paths = df["path"].tolist()
        for arch in args.archs:
            a = per_image_loop(arch, paths)
            c1 = forward_only(arch, args.n)
            b = cnnatlas_extract(arch, manifest, tmp / arch, args.n)
            c2 = forward_only(arch, args.n)
            c = (c1 + c2) / 2
            result["archs"][arch] = {
                "a_per_image_loop_ips": round(a, 2),
                "b_cnnatlas_ips": round(b, 2),
                "c_forward_only_ips": round(c, 2),
                "b_over_c": round(b / c, 3),
                "b_over_a": round(b / a, 3),
            }
            print(json.dumps({arch: result["archs"][arch]}), file=sys.stderr)
        if args.rss_archs:
            big = make_images(tmp / "4n", 4 * args.n, seed=1)
            big_manifest = tmp / "4n.parquet"
            build_manifest({"kind": "imagefolder", "path": str(big)}, big_manifest)
            for arch in args.rss_archs:
                r1 = peak_rss_mib(arch, manifest, tmp / f"rss1-{arch}", args.threads)
                r4 = peak_rss_mib(
                    arch, big_manifest, tmp / f"rss4-{arch}", args.threads
                )
                result["archs"].setdefault(arch, {}).update(
                    {
                        "peak_rss_mib_n": round(r1),
                        "peak_rss_mib_4n": round(r4),
                        "rss_4n_over_n": round(r4 / r1, 3),
                    }
                )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
