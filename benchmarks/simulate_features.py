"""A simulated run of N images from a real one: features, logits and a dataset, in the
format `models.<m>.features_from` reads, so every stage after the extraction can be run
and measured at N (up to ImageNet-train's 1,280,000) without the forward pass.

    python benchmarks/simulate_features.py --run results --model digitnet \
        --checkpoint step60 --n 1280000 --out /tmp/sim1m

reads a finished run's manifest, predictions and features of one checkpoint and writes

- `images/<class>/sim_XXXXXXXX.png`: N symbolic links, each to the source image it copies
  (image i copies source image `order[i mod n0]`, a seeded permutation of the n0 source
  images, so every source image is copied N/n0 times, to within one);
- `features/<layer>.npy` [N, D] float32: the source image's features plus seeded Gaussian
  noise, `--noise` times the feature's standard deviation within the source image's
  class (so classes keep their structure and no two rows are equal);
- `features/logits.npy` [N, K] float32: the log of the source image's class
  probabilities plus noise of `--noise` standard deviations of those log-probabilities
  within its class;
- `features/paths.txt`: row i's image path, as the manifest lists it;
- `config.yaml`: the dataset, the model with `features_from` and the source run's layers,
  with every other key left to the defaults (edit it to choose the stages and sweep).

Rows are written in the manifest's order (sorted paths), in blocks of 65,536 rows, so
memory stays flat in N; 1,280,000 x 2,048 float32 is 10.5 GB per layer on disk.
Row i depends only on (seed, i, source run). A developer tool: nothing the workflow runs
imports it.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

log = logging.getLogger("simulate_features")
# rows written (and their noise drawn) at a time: 65,536 x 2,048 float32 is 512 MiB
BLOCK = 1 << 16


def _source(
    run: Path, model: str, ckpt: str
) -> tuple[pd.DataFrame, np.ndarray, Path, list[str]]:
    """The source run's manifest, class probabilities [n0, K], features folder, layers."""
    manifest = pd.read_parquet(run / "manifest.parquet")
    pred = pd.read_parquet(
        run / model / ckpt / "predictions.parquet", columns=["image_id", "probs"]
    )
    if not np.array_equal(pred["image_id"].to_numpy(), manifest["image_id"].to_numpy()):
        raise SystemExit(
            f"{run}/{model}/{ckpt}/predictions.parquet does not follow the manifest"
        )
    feats = run / model / ckpt / "features"
    layers = sorted(p.stem for p in feats.glob("*.npy"))
    if not layers:
        raise SystemExit(f"{feats}: no <layer>.npy files; run the extraction first")
    return manifest, np.stack(pred["probs"].to_numpy()), feats, layers


def _class_std(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class, each column's standard deviation [classes, D] (float32)."""
    out = np.zeros((labels.max() + 1, x.shape[1]), np.float32)
    for c in np.unique(labels):
        out[c] = x[labels == c].std(axis=0)
    return out


def simulate(
    run: Path,
    model: str,
    ckpt: str,
    n: int,
    out: Path,
    noise: float,
    seed: int,
) -> dict:
    manifest, probs, feats, layers = _source(run, model, ckpt)
    n0 = len(manifest)
    labels0 = manifest["label"].to_numpy()
    meta = pq.read_schema(run / "manifest.parquet").metadata
    names = json.loads(meta[b"cnnatlas.classes"])  # the class list, index order
    order = np.random.default_rng(seed).permutation(n0)
    width = len(str(n - 1))
    # image i: the class of its source, a name that sorts as i within its class
    src = order[np.arange(n) % n0]
    lab = labels0[src]
    paths = [
        out
        / "images"
        / names[lab[i]]
        / f"sim_{i:0{width}d}{Path(manifest['path'][src[i]]).suffix}"
        for i in range(n)
    ]
    # the manifest lists images sorted by path: row r of every array is image rows[r]
    rows = np.argsort(np.array([str(p) for p in paths]), kind="stable")
    for folder in {p.parent for p in paths}:
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        if not paths[i].is_symlink():
            paths[i].symlink_to(os.path.abspath(manifest["path"][src[i]]))
    fdir = out / "features"
    fdir.mkdir(parents=True, exist_ok=True)
    (fdir / "paths.txt").write_text("".join(f"{paths[i]}\n" for i in rows))
    logp0 = np.log(np.clip(probs, 1e-30, None)).astype(np.float32)
    sizes = {}
    for k, (name, x0) in enumerate(
        [
            (layer, np.load(feats / f"{layer}.npy").astype(np.float32))
            for layer in layers
        ]
        + [("logits", logp0)]
    ):
        x0 = x0.reshape(n0, -1)
        std = _class_std(x0, labels0) * np.float32(noise)
        dst = np.lib.format.open_memmap(
            fdir / f"{name}.npy", "w+", np.float32, (n, x0.shape[1])
        )
        for s in range(0, n, BLOCK):
            r = rows[s : s + BLOCK]
            # the noise of row i comes from (seed, layer, block of i): same bytes every run
            rng = np.random.default_rng([seed, k, s])
            eps = rng.standard_normal((len(r), x0.shape[1]), dtype=np.float32)
            dst[s : s + len(r)] = x0[src[r]] + eps * std[lab[r]]
        dst.flush()
        sizes[name] = list(dst.shape)
        del dst
        log.info("%s: %s", name, sizes[name])
    config = {
        "dataset": {
            "kind": "imagefolder",
            "path": str(out / "images"),
            "classes": names,
        },
        "models": {
            model: {
                "layers": {layer: "avg" for layer in layers},
                "features_from": {ckpt: str(fdir)},
            }
        },
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {
        "n": n,
        "source_images": n0,
        "classes": len(names),
        "arrays": sizes,
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--run", type=Path, required=True, help="a finished run's results folder"
    )
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--noise", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    res = simulate(a.run, a.model, a.checkpoint, a.n, a.out, a.noise, a.seed)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
