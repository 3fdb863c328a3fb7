"""How long the image validation before extraction takes, with 1 and 2 threads.

Writes N JPEGs (256 px, like benchmarks/extract.py) into a temporary folder, then times
`cnnatlas.data.find_bad_images` (a full decode of every image, as the forward pass does)
with 1 and 2 threads, median of `--repeats` runs, and prints JSON.

    .venv/bin/python benchmarks/validate_images.py --images 2000
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from cnnatlas.data import find_bad_images  # noqa: E402


def write_jpegs(folder: Path, n: int, size: int = 256, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        img = np.roll(base, i, axis=1)  # distinct files, same decode cost
        path = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), args.images)
        find_bad_images(paths[:50], 1)  # warm the page cache and imports
        runs = {1: [], 2: []}
        for _ in range(args.repeats):  # interleaved, so a load change hits both alike
            for threads in runs:
                start = time.perf_counter()
                bad = find_bad_images(paths, threads)
                runs[threads].append(time.perf_counter() - start)
                assert not bad
        seconds = {t: statistics.median(r) for t, r in runs.items()}
    print(
        json.dumps(
            {
                "benchmark": "validate_images",
                "machine": platform.machine(),
                "images": args.images,
                "size_px": 256,
                "seconds_1_thread": round(seconds[1], 2),
                "seconds_2_threads": round(seconds[2], 2),
                "images_per_s_1_thread": round(args.images / seconds[1], 1),
                "images_per_s_2_threads": round(args.images / seconds[2], 1),
                "speedup_2_threads": round(seconds[1] / seconds[2], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
