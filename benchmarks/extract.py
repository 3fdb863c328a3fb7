"""Extraction throughput on one device: cnnatlas against the per-image loop and the ceilings.

Prints one JSON object. For each architecture (random init), on N JPEG images (256 px,
smooth random content, 224 px eval transform) in an ImageFolder, all on `--device`:
  a)  the per-image loop as tutorials write it: PIL, transform, batch of 1, one hooked
      layer, its output copied to the host per image;
  b)  cnnatlas.extract as the shipped profile runs it: the threads profiles/default gives
      extract_features (on CUDA: inside a SLURM job of CNNATLAS_SLURM_GPU_CPUS CPUs,
      default 8; on the CPU: the local value), every extract option at its schema default;
  b') cnnatlas.extract with the best of a few settings (decode, workers, batch size);
  c)  the forward pass alone on in-memory tensors, channels_last, fp32 and autocast;
  d)  the data-path ceiling: decoding to normalised batches on the device, no model,
      for decode cpu (PIL in workers) and gpu (torchvision.io.decode_jpeg on the device);
and (b) / min(c, d) (c and d as (b) runs: its precision and decode), (b) / (a), the GPU's
peak memory during (b), and the peak RSS of (b) in a fresh process for N and 4N images.

    python benchmarks/extract.py --device cpu --archs resnet18 --n 256
    python benchmarks/extract.py --device cuda --archs resnet18 resnet50 vgg16 --n 8192
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import yaml
from PIL import Image
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.batches import (  # noqa: E402
    CropDataset,
    autocast_context,
    collate_crops,
    device_batch,
    resolve_decode,
    resolve_precision,
)
from cnnatlas.data import build_manifest, load_image  # noqa: E402
from cnnatlas.extract import extract  # noqa: E402
from cnnatlas.schema import defaults  # noqa: E402
from cnnatlas.torchutil import make_transform  # noqa: E402

TF = {
    "resize": 224,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
LAYERS = {
    "resnet18": {"layer1": "avg", "layer2": "avg", "layer3": "avg", "layer4": "avg",
                 "avgpool": "flatten"},
    "resnet50": {"layer1": "avg", "layer2": "avg", "layer3": "avg", "layer4": "avg",
                 "avgpool": "flatten"},
    "vgg16": {"features.4": "avg", "features.9": "avg", "features.16": "avg",
              "features.23": "avg", "classifier.4": "avg"},
}  # fmt: skip
ONE_LAYER = {"resnet18": "avgpool", "resnet50": "avgpool", "vgg16": "classifier.4"}


def make_images(root: Path, n: int, classes: int = 4, seed: int = 0) -> Path:
    """n JPEGs of 256 px with smooth random content (upsampled 8 x 8 noise), q 90."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((256, 256), Image.Resampling.BICUBIC).save(
            folder / f"img{i:05d}.jpg", quality=90
        )
    return root


def profile_threads(device: torch.device) -> int:
    """extract_features' threads as profiles/default gives them: on CUDA inside a SLURM
    job of cpus_per_task CPUs (SLURM_CPUS_PER_TASK set), on the CPU locally."""
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CPUS_PER_TASK"}
    if device.type == "cuda":
        cpus = profile["set-resources"]["extract_features"]["cpus_per_task"]
        env["SLURM_CPUS_PER_TASK"] = str(eval(cpus))  # noqa: S307 - our profile
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        return int(eval(str(profile["set-threads"]["extract_features"])))  # noqa: S307
    finally:
        os.environ.clear()
        os.environ.update(old)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_for(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.get_model(arch, weights=None, num_classes=4).eval()


def per_image_loop(arch: str, paths: list[str], device: torch.device) -> float:
    """(a) one image at a time, a forward hook on one module, features to the host."""
    model = model_for(arch).to(device)
    tf = make_transform(TF)
    feats = []
    module = dict(model.named_modules())[ONE_LAYER[arch]]
    handle = module.register_forward_hook(
        lambda _m, _i, out: feats.append(out.flatten(1).cpu().numpy())
    )
    start = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            model(tf(load_image(p, 3)).unsqueeze(0).to(device))
    seconds = time.perf_counter() - start
    handle.remove()
    return len(paths) / seconds


def forward_only(arch: str, n: int, batch: int, device: torch.device, dtype) -> float:
    """(c) the model alone on an in-memory batch, channels_last, under autocast `dtype`."""
    model = model_for(arch).to(device, memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast_context(device, dtype):
        model(x[:2])  # warm-up: kernels, cuDNN plans
        sync(device)
        done, start = 0, time.perf_counter()
        while done < n:
            model(x[: min(batch, n - done)])
            done += batch
        sync(device)
    return n / (time.perf_counter() - start)


def data_path(paths, decode, workers, batch, device) -> float:
    """(d) decoding and normalising to device batches, no model."""
    ds = CropDataset(paths, make_transform(TF), encoded=decode == "gpu")
    loader = DataLoader(
        ds, batch_size=batch, num_workers=workers, collate_fn=collate_crops,
        pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None,
    )  # fmt: skip
    start = time.perf_counter()
    for b in loader:
        device_batch(b, ds, device)
    sync(device)
    return len(paths) / (time.perf_counter() - start)


def cnnatlas_extract(arch, manifest, out, n, threads, **options) -> float:
    """(b) cnnatlas.extract, timed as a job runs it (layer check and predictions included)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    extract(manifest, model_for(arch), LAYERS[arch], Path(out) / "pred.parquet",
            Path(out) / "features", TF, threads=threads, **options)  # fmt: skip
    return n / (time.perf_counter() - start)


def peak_rss_mib(arch: str, manifest: Path, out: Path, threads: int, device) -> float:
    """Peak RSS of a fresh process that runs (b): the whole process, torch import included."""
    code = (
        "import resource, sys; sys.path.insert(0, 'benchmarks'); import extract as b; "
        f"b.cnnatlas_extract({arch!r}, b.Path({str(manifest)!r}), {str(out)!r}, 1, "
        f"{threads}, device={str(device)!r}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return int(res.stdout.split()[-1]) / 1024


def best_settings(device: torch.device, threads: int) -> list[dict]:
    """(b') candidates: decode x workers (x batch size on CUDA)."""
    cpus = len(os.sched_getaffinity(0))
    if device.type == "cpu":
        return [{"decode": d, "num_workers": w, "batch_size": 64}
                for d in ("cpu", "gpu") for w in (0, 1)]  # fmt: skip
    return [{"decode": d, "num_workers": w, "batch_size": bs}
            for d in ("cpu", "gpu") for w in sorted({threads - 1, cpus - 1})
            for bs in (64, 256)]  # fmt: skip


def measure(arch, manifest, paths, device, threads, tmp) -> dict:
    n, cuda = len(paths), device.type == "cuda"
    shipped = defaults("extract") | {"device": str(device)}
    autocast = resolve_precision("bf16", device)
    b_decode = resolve_decode(shipped["decode"])
    b_dtype = resolve_precision(shipped["precision"], device)
    batch = 256 if cuda else 64
    torch.set_num_threads(threads)  # (a), (c), (d) on the threads (b) gets
    r = {"a_per_image_loop_ips": per_image_loop(arch, paths, device)}
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    r["b_shipped_profile_ips"] = cnnatlas_extract(
        arch, manifest, tmp / f"{arch}-b", n, threads, device=str(device)
    )
    if cuda:
        r["b_gpu_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    r["b_settings"] = {
        "threads": threads,
        "decode": b_decode,
        "precision": str(b_dtype or torch.float32),
    } | {  # fmt: skip
        k: shipped[k] for k in ("batch_size", "num_workers")
    }
    best = (0.0, None)
    for opts in best_settings(device, threads):
        ips = cnnatlas_extract(arch, manifest, tmp / f"{arch}-bb", n, threads,
                               device=str(device), **opts)  # fmt: skip
        print(
            json.dumps({arch: {"b_prime_candidate": opts, "ips": ips}}), file=sys.stderr
        )
        best = max(best, (ips, opts), key=lambda t: t[0])
    r["b_prime_best_ips"], r["b_prime_settings"] = best
    for name, dtype in (("fp32", None), ("autocast", autocast)):
        r[f"c_forward_{name}_ips"] = forward_only(arch, n, batch, device, dtype)
    workers = max(threads - 1, 0) if cuda else 0
    for decode in ("cpu", "gpu"):
        r[f"d_data_path_{decode}_ips"] = data_path(
            paths, decode, workers, batch, device
        )
    c = r["c_forward_autocast_ips" if b_dtype else "c_forward_fp32_ips"]
    ceiling = min(c, r[f"d_data_path_{b_decode}_ips"])
    r["b_over_min_c_d"] = r["b_shipped_profile_ips"] / ceiling
    r["b_over_c"] = r["b_shipped_profile_ips"] / c
    r["b_over_a"] = r["b_shipped_profile_ips"] / r["a_per_image_loop_ips"]
    r["b_prime_over_min_c_d"] = r["b_prime_best_ips"] / ceiling
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--archs", nargs="+", default=["resnet18"])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument(
        "--rss-archs", nargs="*", default=["resnet18"],
        help="archs whose peak RSS of (b) at N and 4N is measured",
    )  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)
    threads = profile_threads(device)
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "device": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu",
            "load_average_start": os.getloadavg(),
        },
        "n_images": args.n,
        "profile_threads": threads,
        "archs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = tmp / "n.parquet"
        df = build_manifest(
            {"kind": "imagefolder", "path": str(make_images(tmp / "n", args.n))},
            manifest,
        )
        paths = df["path"].tolist()
        for arch in args.archs:
            result["archs"][arch] = measure(arch, manifest, paths, device, threads, tmp)
            print(json.dumps({arch: result["archs"][arch]}), file=sys.stderr)
        if args.rss_archs:
            big = make_images(tmp / "4n", 4 * args.n, seed=1)
            big_manifest = tmp / "4n.parquet"
            build_manifest({"kind": "imagefolder", "path": str(big)}, big_manifest)
            for arch in args.rss_archs:
                r1, r4 = (
                    peak_rss_mib(arch, m, tmp / f"rss{k}-{arch}", threads, device)
                    for k, m in ((1, manifest), (4, big_manifest))
                )
                result["archs"].setdefault(arch, {}).update(
                    {
                        "peak_rss_mib_n": round(r1),
                        "peak_rss_mib_4n": round(r4),
                        "rss_4n_over_n": round(r4 / r1, 3),
                    }  # fmt: skip
                )
    result["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
