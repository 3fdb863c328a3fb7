"""How DataLoader workers hand a batch of JPEG files over: one tensor per file (a
shared-memory segment and file descriptor each) against the packed buffer of
`cnnatlas.batches.collate_crops` (five tensors a batch). Prints JSON: ms per batch for
each, in the same run, and their ratio.

    python benchmarks/jpeg_handover.py --images 256 --batch 64 --workers 2
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow/scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnnatlas.batches import CropDataset, collate_crops  # noqa: E402
from cnnatlas.torchutil import ImageTransform, TransformSpec  # noqa: E402
from first_run import make_images  # noqa: E402


def collate_list(items):
    """The per-file handover: the JPEG files as a list of tensors."""
    return {
        "rows": torch.tensor([i for _, i in items], dtype=torch.int64),
        "jpegs": [x for x, _ in items],
    }


def ms_per_batch(ds, collate, batch: int, workers: int, epochs: int) -> float:
    loader = DataLoader(ds, batch_size=batch, num_workers=workers,
                        collate_fn=collate, persistent_workers=True, prefetch_factor=4)  # fmt: skip
    for _ in loader:  # start the workers and warm the page cache
        pass
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        for _ in loader:
            count += 1
    return 1000 * (time.perf_counter() - start) / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        make_images(Path(tmp), args.images)  # a new user's photo-sized JPEGs
        paths = sorted(str(p) for p in Path(tmp).rglob("*.jpg"))
        spec = TransformSpec(resize=256, crop=224, channels=3,
                             mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # fmt: skip
        ds = CropDataset(paths, ImageTransform(spec), encoded=True)
        per_file = ms_per_batch(ds, collate_list, args.batch, args.workers, args.epochs)
        packed = ms_per_batch(ds, collate_crops, args.batch, args.workers, args.epochs)
    print(json.dumps({
        "command": " ".join(["benchmarks/jpeg_handover.py", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
        "images": args.images, "batch": args.batch, "workers": args.workers,
        "ms_per_batch": {"per_file": round(per_file, 2), "packed": round(packed, 2)},
        "per_file_over_packed": round(per_file / packed, 2),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
