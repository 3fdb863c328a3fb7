"""Scale datasets: N seeded images, checkpoints and a full config, made by one command.

`python benchmarks/scale_data.py digits --n 10000 --out scale/digits` writes

- `images/<digit>/img_XXXXXX.png`: N 32 px gray digits, each an augmentation (affine,
  elastic deformation, contrast, noise) of one of the demo's 360 *test-split* digits, so
  that the demo's CNN never saw the digit any image derives from;
- `checkpoints/step*.pt`: the demo's checkpoints, trained by the demo's own code with its
  defaults (the same bytes as the demo's `results/demo/checkpoints/` on 2 threads), or
  none when `--checkpoints DIR` points at checkpoints already trained (the demo's);
- `config.yaml`: a full cnnatlas config (validated by the schema) analysing them.

`... shapes --n 10000 --out scale/shapes` writes N 64 px RGB images of six shape classes,
trains a torchvision resnet18 (weights=None) briefly on a separate seeded train split
and saves a checkpoint at each of `--steps`, and writes the config.

Image i depends only on (seed, i): the first 2,000 images of N = 10,000 are the images
of N = 2,000, and the same seed gives the same bytes. Classes take turns (image i is of
class i mod classes), so classes are balanced to within one image. Run the workflow in
the output folder: `snakemake --cores 2 -d scale/digits`.

A developer tool for the benchmarks and their tests: nothing the workflow runs imports
it.
"""

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from cnnatlas.io import atomic_path  # noqa: E402
from cnnatlas.schema import SCHEMA, default, load_schema  # noqa: E402

__all__ = [
    "DIGIT_CLASSES",
    "SHAPE_CLASSES",
    "augment_digit",
    "draw_shape",
    "write_digits_images",
    "write_shapes_images",
    "train_shapes",
    "scale_config",
    "write_config",
    "make_digits",
    "make_shapes",
    "main",
]

log = logging.getLogger(__name__)

DIGIT_CLASSES = tuple(str(d) for d in range(10))
SHAPE_CLASSES = ("circle", "cross", "ring", "square", "stripes", "triangle")
SHAPES_ARCH = "resnet18"
SHAPES_STEPS = (5, 20, 60)  # 3.3 CPU-s a step (batch 32, 2 threads): ~2 min on 2 cores
SHAPES_LAYERS = ("layer1", "layer2", "layer3", "layer4", "avgpool")
DIGITS_LAYERS = ("features.0.3", "features.1.3", "features.2.3", "fc1", "relu")


def _rng(seed: int, stream: int, i: int) -> np.random.Generator:
    # One generator per image: image i is the same whatever N is and in whatever order
    # images are made. stream separates the analysed images (0) from training ones (1).
    return np.random.default_rng([seed, stream, i])


def augment_digit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded variant of a square gray image (uint8): affine, elastic, contrast, noise.

    Rotation +-15 degrees, scale 0.85..1.15, shift +-10 % of the side; an elastic
    deformation (uniform displacement field smoothed with a Gaussian of sigma 4 px,
    magnitude 30, Simard et al. 2003); contrast 0.6..1.3 and brightness +-0.1 around
    the mid-gray; Gaussian noise of sigma 0..0.08 (of the 0..1 range).
    """
    size = image.shape[0]
    src = image.astype(np.float64) / 255.0
    angle = np.deg2rad(rng.uniform(-15, 15))
    scale = rng.uniform(0.85, 1.15)
    shift = rng.uniform(-0.1, 0.1, 2) * size
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (size, size)), 4) * 30
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (size, size)), 4) * 30
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    # output pixel p samples the source at R(-angle) (p - centre - shift) / scale + centre
    y0, x0 = yy - centre - shift[0], xx - centre - shift[1]
    cos, sin = math.cos(angle), math.sin(angle)
    sy = (cos * y0 - sin * x0) / scale + centre + dy
    sx = (sin * y0 + cos * x0) / scale + centre + dx
    out = ndimage.map_coordinates(src, [sy, sx], order=1, mode="constant", cval=0.0)
    out = (out - 0.5) * rng.uniform(0.6, 1.3) + 0.5 + rng.uniform(-0.1, 0.1)
    out = out + rng.normal(0, rng.uniform(0, 0.08), out.shape)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded RGB image (size x size x 3, uint8) of one of SHAPE_CLASSES.

    The class is the shape only: position, size, rotation, the foreground and
    background colours, a background gradient and the noise are random per image.
    """
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"unknown shape {kind!r}: one of {', '.join(SHAPE_CLASSES)}")
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.18, 0.3)
    angle = rng.uniform(0, 2 * np.pi)
    # coordinates relative to the centre, rotated by the shape's angle
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    dist = np.hypot(u, v)
    if kind == "circle":
        mask = dist < r
    elif kind == "ring":
        mask = (dist < r) & (dist > 0.55 * r)
    elif kind == "square":
        mask = (abs(u) < 0.8 * r) & (abs(v) < 0.8 * r)
    elif kind == "cross":
        arm = 0.3 * r
        mask = ((abs(u) < arm) & (abs(v) < r)) | ((abs(v) < arm) & (abs(u) < r))
    elif kind == "triangle":
        # equilateral, circumradius r: inside all three edges' half-planes
        mask = np.ones_like(u, dtype=bool)
        for k in range(3):
            t = 2 * np.pi * k / 3
            mask &= u * np.cos(t) + v * np.sin(t) < 0.5 * r
    else:  # stripes across the whole image, period and phase random
        period = rng.uniform(0.12, 0.22)
        mask = np.floor(u / period + rng.uniform(0, 1)) % 2 == 0
    bg = rng.uniform(0, 90, 3)
    gradient = rng.uniform(-30, 30, 3)[None, None, :] * (xx - 0.5)[..., None]
    img = bg + gradient + np.zeros((size, size, 3))
    img[mask] = rng.uniform(120, 255, 3)
    img += rng.normal(0, rng.uniform(4, 16), img.shape)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _write_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=False)


def _class_of(i: int, classes: Sequence[str]) -> str:
    return classes[i % len(classes)]


def write_digits_images(
    root: str | Path, n: int, seed: int = 0, size: int = 32
) -> dict[str, int]:
    """Write n augmented demo test-split digits as `root/<digit>/img_XXXXXX.png`.

    Image i is of digit i mod 10 and derives from that digit's test-split images in turn
    (the demo's split with the demo's seed 0 and test size, whatever `seed` is).
    Returns {class: count}.
    """
    from cnnatlas.demo import digit_image, split_digits
    from sklearn.datasets import load_digits

    digits = load_digits()
    _, test_idx = split_digits(default("demo.test_size"), default("demo.seed"))
    test_idx = np.sort(test_idx)
    sources = {
        c: [
            np.asarray(digit_image(digits.images[j], size))
            for j in test_idx
            if digits.target[j] == int(c)
        ]
        for c in DIGIT_CLASSES
    }
    counts = dict.fromkeys(DIGIT_CLASSES, 0)
    for i in range(n):
        c = _class_of(i, DIGIT_CLASSES)
        src = sources[c][(i // len(DIGIT_CLASSES)) % len(sources[c])]
        img = augment_digit(src, _rng(seed, 0, i))
        _write_png(Image.fromarray(img, "L"), Path(root) / c / f"img_{i:06d}.png")
        counts[c] += 1
    log.info("wrote %d digits (%d px) to %s", n, size, root)
    return counts


def write_shapes_images(
    root: str | Path, n: int, seed: int = 0, size: int = 64
) -> dict[str, int]:
    """Write n shapes as `root/<shape>/img_XXXXXX.png` (RGB); returns {class: count}."""
    counts = dict.fromkeys(SHAPE_CLASSES, 0)
    for i in range(n):
        c = _class_of(i, SHAPE_CLASSES)
        img = draw_shape(c, size, _rng(seed, 0, i))
        _write_png(Image.fromarray(img, "RGB"), Path(root) / c / f"img_{i:06d}.png")
        counts[c] += 1
    log.info("wrote %d shapes (%d px) to %s", n, size, root)
    return counts


def train_shapes(
    checkpoints: Sequence[str | Path],
    steps: Sequence[int],
    n_train: int = 2000,
    seed: int = 0,
    size: int = 64,
    batch_size: int = 32,
    lr: float = 1e-3,
    threads: int = 2,
) -> list[float]:
    """Train resnet18 (weights=None) on n_train shapes of the train stream (never the
    analysed images); save the state_dict to `checkpoints[k]` after `steps[k]` Adam steps.

    Same seed and threads: same checkpoint bytes. Returns the mean training loss of the
    last ten steps before each checkpoint.
    """
    import torch
    from cnnatlas.demo import save_checkpoint
    from torch import nn
    from torchvision.models import resnet18

    if sorted(steps) != list(steps) or len(steps) != len(checkpoints):
        raise ValueError("steps must increase and match the checkpoints one to one")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    labels = [i % len(SHAPE_CLASSES) for i in range(n_train)]
    images = np.stack(
        [
            draw_shape(SHAPE_CLASSES[c], size, _rng(seed, 1, i))
            for i, c in enumerate(labels)
        ]
    )
    # the eval transform of the config: x / 255, then (x - 0.5) / 0.5 per channel
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    y = torch.tensor(labels)
    model = resnet18(weights=None, num_classes=len(SHAPE_CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    saves = dict(zip(steps, checkpoints, strict=True))
    losses: list[float] = []
    recent: list[float] = []
    step = 0
    model.train()
    while step < max(steps):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
            step += 1
            recent = [*recent[-9:], loss.item()]
            if step in saves:
                save_checkpoint(model, saves[step])
                losses.append(float(np.mean(recent)))
                log.info(
                    "shapes step %d: loss %.4f, saved %s", step, losses[-1], saves[step]
                )
            if step == max(steps):
                break
    return losses


def scale_config(kind: str, images: str, checkpoints: dict[str, str]) -> dict[str, Any]:
    """The full cnnatlas config of a scale dataset (`kind` digits or shapes): one model,
    its checkpoints, 5 layers and the demo's sweep (t-SNE, PCA, UMAP; 2-D and 3-D;
    perplexities 10 and 30; seeds 0 and 1), figures, projector and explanations.

    Training evolution is off: the scale workload is the issue's target, without it.
    """
    if kind == "digits":
        model = {
            "arch": "cnnatlas.demo:DigitNet",
            "num_classes": len(DIGIT_CLASSES),
            "layers": dict.fromkeys(DIGITS_LAYERS, "avg"),
            "transform": {
                "resize": 32,
                "crop": 32,
                "mean": [0.5],
                "std": [0.5],
                "channels": 1,
            },
        }
        name = "digitnet"
    elif kind == "shapes":
        model = {
            "arch": SHAPES_ARCH,
            "num_classes": len(SHAPE_CLASSES),
            "layers": dict.fromkeys(SHAPES_LAYERS, "avg"),
            "transform": {
                "resize": 64,
                "crop": 64,
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "channels": 3,
            },
        }
        name = SHAPES_ARCH
    else:
        raise ValueError(f"unknown scale dataset {kind!r}: digits or shapes")
    model["checkpoints"] = dict(checkpoints)
    return {
        "results": "results",
        # one job per layer: many jobs to run side by side beside UMAP's long one
        "layer_jobs": "layer",
        "dataset": {"kind": "imagefolder", "path": images},
        "models": {name: model},
        "maps": {
            "methods": ["tsne", "pca", "umap"],
            "dims": [2, 3],
            "perplexities": [10, 30],
            "seeds": [0, 1],
        },
        "figures": {
            "colour_by": ["label"],
            "maps": {"methods": ["tsne", "pca", "umap"], "dims": [2], "sweep": "first"},
            "html": {"methods": ["tsne"], "dims": [3], "sweep": "first"},
            "sweep_grids": {"methods": ["tsne"], "dims": [2]},
            "checkpoint_layer_grids": {"methods": ["tsne", "pca", "umap"], "dims": [2]},
        },
        "explain": {"enabled": True},
        "projector": {"enabled": True},
        "evolution": {"enabled": False},
    }


def write_config(config: dict[str, Any], path: str | Path) -> Path:
    """Validate `config` against the workflow's schema and write it as YAML to `path`."""
    import jsonschema

    errors = sorted(
        jsonschema.Draft7Validator(load_schema()).iter_errors(config), key=str
    )
    if errors:
        where = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        raise ValueError(
            f"the scale config does not validate against {SCHEMA}: {where}"
        )
    path = Path(path)
    with atomic_path(path) as tmp:
        header = (
            "# Written by `python benchmarks/scale_data.py`; run it with `snakemake --cores 2 "
            "--set-threads reduce_tsne=1 -d <this folder>`\n# (on 2 cores: t-SNE jobs "
            "of one core each, side by side and beside the UMAP job).\n"
        )
        tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def _checkpoint_files(folder: Path, steps: Sequence[int]) -> dict[str, Path]:
    return {f"step{s:04d}": folder / f"step{s:04d}.pt" for s in steps}


def make_digits(
    out: str | Path,
    n: int,
    seed: int = 0,
    checkpoints: str | Path | None = None,
    threads: int = 2,
    steps: Sequence[int] | None = None,
) -> Path:
    """The digits scale dataset in `out` (images/, checkpoints/, config.yaml); returns the
    config path. `checkpoints`: a folder of the demo's step*.pt to use instead of training
    them (the config then points there, as an absolute path). `steps`: the checkpoints'
    training steps (default: the demo's, `demo.steps`)."""
    out = Path(out)
    steps = list(steps or default("demo.steps"))
    if checkpoints is None:
        from cnnatlas.demo import demo_transform, train, write_digits

        files = _checkpoint_files(out / "checkpoints", steps)
        if not all(f.exists() for f in files.values()):
            write_digits(
                out / "demo",
                default("demo.image_size"),
                default("demo.test_size"),
                default("demo.seed"),
            )
            train(
                out / "demo" / "train",
                list(files.values()),
                steps,
                demo_transform(),
                batch_size=default("demo.batch_size"),
                lr=default("demo.lr"),
                seed=default("demo.seed"),
                threads=threads,
                device="cpu",
            )
        paths = {k: str(v.relative_to(out)) for k, v in files.items()}
    else:
        files = _checkpoint_files(Path(checkpoints).resolve(), steps)
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise FileNotFoundError(
                f"--checkpoints {checkpoints}: no {', '.join(missing)}; run the demo "
                "first (`snakemake --cores 2` in the repository) or leave --checkpoints out"
            )
        paths = {k: str(v) for k, v in files.items()}
    write_digits_images(out / "images", n, seed)
    return write_config(scale_config("digits", "images", paths), out / "config.yaml")


def make_shapes(
    out: str | Path,
    n: int,
    seed: int = 0,
    steps: Sequence[int] = SHAPES_STEPS,
    n_train: int = 2000,
    threads: int = 2,
) -> Path:
    """The shapes scale dataset in `out` (images/, checkpoints/, config.yaml): n images,
    resnet18 trained on n_train others; returns the config path."""
    out = Path(out)
    write_shapes_images(out / "images", n, seed)
    files = _checkpoint_files(out / "checkpoints", steps)
    if not all(f.exists() for f in files.values()):
        train_shapes(list(files.values()), steps, n_train, seed, threads=threads)
    paths = {k: str(v.relative_to(out)) for k, v in files.items()}
    return write_config(scale_config("shapes", "images", paths), out / "config.yaml")


def main(argv: list[str] | None = None) -> int:
    """`python benchmarks/scale_data.py digits|shapes --n N --out DIR`: see the module
    docstring."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/scale_data.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("digits", "shapes"):
        p = sub.add_parser(kind)
        p.add_argument("--n", type=int, required=True, help="number of images")
        p.add_argument("--out", required=True, help="folder to write (the workdir)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--threads", type=int, default=2, help="torch threads of training"
        )
    sub.choices["digits"].add_argument(
        "--checkpoints", help="folder of the demo's step*.pt (default: train them)"
    )
    sub.choices["digits"].add_argument(
        "--steps", type=int, nargs="+", help="training steps (default: the demo's)"
    )
    sub.choices["shapes"].add_argument(
        "--steps", type=int, nargs="+", default=list(SHAPES_STEPS)
    )
    sub.choices["shapes"].add_argument("--n-train", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.kind == "digits":
            path = make_digits(
                args.out, args.n, args.seed, args.checkpoints, args.threads, args.steps
            )
        else:
            path = make_shapes(
                args.out, args.n, args.seed, args.steps, args.n_train, args.threads
            )
    except (FileNotFoundError, ValueError) as err:
        print(f"scale_data: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
