"""The CUDA code paths against the CPU: same inputs, how far apart the results are.

Prints one JSON object. On N JPEGs (as benchmarks/extract.py makes them), resnet18 with
random weights:
  - cnnatlas.extract on the CPU (decode cpu, fp32) against CUDA with decode cpu / gpu and
    precision fp32 / bf16: per layer the largest |difference| over the largest |value|, and
    the share of images whose top-1 prediction agrees;
  - every registered saliency method's maps on CUDA against the CPU (layer4, predicted
    class), as the largest |difference| over the largest map value;
  - deletion/insertion curves on CUDA against the CPU (largest |difference| in probability).

    python benchmarks/gpu_parity.py --n 256
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cnnatlas.batches import CropDataset, collate_crops, device_batch  # noqa: E402
from cnnatlas.data import build_manifest  # noqa: E402
from cnnatlas.explain.perturb import deletion_insertion, saliency_rank  # noqa: E402
from cnnatlas.explain.saliency.base import (  # noqa: E402
    METHODS,
    open_methods,
    saliency_maps,
)
from cnnatlas.extract import extract  # noqa: E402
from cnnatlas.torchutil import make_transform  # noqa: E402
from extract import LAYERS, TF, make_images, model_for  # noqa: E402

ARCH = "resnet18"


def run_extract(manifest, out: Path, **options) -> tuple[dict, np.ndarray]:
    extract(manifest, model_for(ARCH), LAYERS[ARCH], out / "pred.parquet",
            out / "features", TF, threads=8, **options)  # fmt: skip
    feats = {k: np.load(out / "features" / f"{k}.npy") for k in LAYERS[ARCH]}
    pred = pd.read_parquet(out / "pred.parquet")["pred"].to_numpy()
    return feats, pred


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--saliency-images", type=int, default=32)
    args = parser.parse_args()
    cuda = torch.device("cuda")
    result = {"device": torch.cuda.get_device_name(cuda), "torch": torch.__version__,
              "n_images": args.n, "extract": {}, "saliency": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = tmp / "m.parquet"
        df = build_manifest({"kind": "imagefolder",
                             "path": str(make_images(tmp / "img", args.n))}, manifest)  # fmt: skip
        ref, ref_pred = run_extract(manifest, tmp / "cpu", device="cpu", decode="cpu")
        for decode in ("cpu", "gpu"):
            for precision in ("fp32", "bf16"):
                feats, pred = run_extract(
                    manifest, tmp / f"{decode}-{precision}", device="cuda",
                    decode=decode, precision=precision,
                )  # fmt: skip
                result["extract"][f"decode_{decode}_{precision}"] = {
                    "max_rel_diff": {k: round(rel(feats[k], ref[k]), 6) for k in ref},
                    "top1_agreement": float((pred == ref_pred).mean()),
                }
        # saliency on the first images, the same float batch on both devices
        paths = df["path"].tolist()[: args.saliency_images]
        ds = CropDataset(paths, make_transform(TF), encoded=False)
        x = device_batch(
            collate_crops([ds[i] for i in range(len(paths))]), ds, torch.device("cpu")
        ).contiguous()
        maps, curves = {}, {}
        for dev in ("cpu", "cuda"):
            torch.manual_seed(0)
            model = model_for(ARCH).to(dev)
            with open_methods(model, "layer4", sorted(METHODS)) as methods:
                _, m = saliency_maps(methods, x.to(dev), {"pred": None})
            maps[dev] = {k[0]: v.cpu().numpy() for k, v in m.items()}
            cam = maps[dev]["gradcam"]
            cls = model(x.to(dev)).argmax(1)
            dele, ins = deletion_insertion(
                model, x.to(dev), torch.zeros_like(x, device=dev),
                saliency_rank(torch.from_numpy(cam).to(dev)), cls,
                np.linspace(0, 1, 11),
            )  # fmt: skip
            curves[dev] = (dele.cpu().numpy(), ins.cpu().numpy())
        for name in maps["cpu"]:
            result["saliency"][name] = round(
                rel(maps["cuda"][name], maps["cpu"][name]), 6
            )
        result["deletion_insertion_max_abs_diff"] = round(
            max(
                float(np.abs(a - b).max())
                for a, b in zip(curves["cuda"], curves["cpu"], strict=True)
            ),
            6,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
