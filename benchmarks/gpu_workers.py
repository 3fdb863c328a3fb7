"""(b) on CUDA against DataLoader workers and the main process's torch threads.

Prints one JSON object: images/s of cnnatlas.extract (decode cpu, fp32, batch 64) for
each (workers, main-process threads) pair, on N JPEGs as benchmarks/extract.py makes them.
It asks whether the extracting process competes with its workers for the node's CPUs.

    python benchmarks/gpu_workers.py --arch resnet50 --n 4096
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from cnnatlas.data import build_manifest  # noqa: E402
from extract import cnnatlas_extract, make_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--workers", type=int, nargs="+", default=[15, 14, 12])
    parser.add_argument("--threads", type=int, nargs="+", default=[16, 1])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = tmp / "m.parquet"
        build_manifest({"kind": "imagefolder",
                        "path": str(make_images(tmp / "img", args.n))}, manifest)  # fmt: skip
        cnnatlas_extract(args.arch, manifest, tmp / "warm", args.n, 16, device="cuda",
                         decode="cpu", num_workers=15, batch_size=64)  # fmt: skip
        for w in args.workers:
            for t in args.threads:
                ips = cnnatlas_extract(args.arch, manifest, tmp / f"{w}-{t}", args.n, t,
                                       device="cuda", decode="cpu", num_workers=w,
                                       batch_size=64)  # fmt: skip
                rows.append({"workers": w, "main_threads": t, "ips": round(ips, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"device": torch.cuda.get_device_name(), "arch": args.arch,
                      "n": args.n, "cpus": len(os.sched_getaffinity(0)),
                      "load": os.getloadavg(), "rows": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
