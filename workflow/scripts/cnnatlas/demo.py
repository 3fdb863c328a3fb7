"""The embedded demo: scikit-learn's handwritten digits and a small CNN trained on them.

`write_digits` writes the 1,797 bundled 8x8 digits as an ImageFolder of PNGs with a
seeded, stratified train/test split; `train` fits `DigitNet` on the train split on CPU
and saves checkpoints at the configured steps (an early, barely trained one included),
so that the maps can show how the representation forms during training.
"""

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from cnnatlas.data import load_image, manifest_from_imagefolder
from cnnatlas.io import atomic_path
from cnnatlas.schema import default
from cnnatlas.torchutil import make_transform, resolve_device

__all__ = [
    "DigitNet",
    "demo_transform",
    "split_digits",
    "digit_image",
    "write_digits",
    "train",
    "save_checkpoint",
]

log = logging.getLogger(__name__)


class DigitNet(nn.Module):
    """A small CNN for 1x32x32 digits: three conv blocks, then two fully connected layers."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(
            block(in_channels, width),
            block(width, 2 * width),
            block(2 * width, 4 * width),
        )
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * width * 4 * 4, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.flatten(self.features(x)))))


def split_digits(test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the bundled digits in the demo's stratified train and test splits."""
    target = load_digits().target
    train_idx, test_idx = train_test_split(
        np.arange(len(target)), test_size=test_size, random_state=seed, stratify=target
    )
    return train_idx, test_idx


def digit_image(pixels: np.ndarray, size: int = 32) -> Image.Image:
    """One bundled 8x8 digit (values 0..16) as the demo writes it: size x size, 8-bit gray."""
    gray = (pixels * (255.0 / 16.0)).round().astype(np.uint8)
    return Image.fromarray(gray, "L").resize((size, size), Image.Resampling.BILINEAR)


def write_digits(out: str | Path, size: int, test_size: float, seed: int) -> None:
    """Write `out/train/<digit>/*.png` and `out/test/<digit>/*.png` (size x size, 8-bit gray)."""
    digits = load_digits()
    train_idx, test_idx = split_digits(test_size, seed)
    out = Path(out)
    for split, ids in (("train", train_idx), ("test", test_idx)):
        for i in sorted(ids):
            img = digit_image(digits.images[i], size)
            path = out / split / str(digits.target[i]) / f"digit_{i:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, optimize=False)
    log.info(
        "wrote %d train and %d test digits to %s", len(train_idx), len(test_idx), out
    )


def demo_transform(size: int = 32) -> dict:
    """The eval transform of the demo (the digitnet entry of config.yaml uses the same)."""
    return {"resize": size, "crop": size, "mean": [0.5], "std": [0.5], "channels": 1}


def _load_split(root: str | Path, transform) -> tuple[torch.Tensor, torch.Tensor]:
    manifest = manifest_from_imagefolder(root)
    channels = transform.spec.channels
    x = torch.stack([transform(load_image(p, channels)) for p in manifest["path"]])
    return x, torch.as_tensor(manifest["label"].to_numpy().copy())


def train(
    train_dir: str | Path,
    checkpoints: Sequence[str | Path],
    steps: Sequence[int],
    transform: dict,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int = 1,
    device: str = default("extract.device"),
) -> None:
    """SGD on the train split; after step `steps[i]` save the state_dict to `checkpoints[i]`.

    `device` as `extract.device` (`auto`: CUDA when available). The same seed, data,
    device and thread count give the same checkpoint bytes.
    """
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    if dev.type == "cuda":  # cuBLAS is deterministic only with a fixed workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = _load_split(train_dir, make_transform(transform))
    model = DigitNet(num_classes=int(y.max()) + 1).to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    saves = dict(zip(steps, checkpoints, strict=True))
    loss_fn = nn.CrossEntropyLoss()
    step = 0
    while step < max(steps):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size].to(dev)
            model.train()
            opt.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
            step += 1
            if step in saves:
                save_checkpoint(model, saves[step])
                log.info("step %d: loss %.4f, saved %s", step, loss.item(), saves[step])
            if step == max(steps):
                break


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """The model's state_dict written to `path`: the same bytes for the same tensors
    (torch.save), through a buffer so that `path` only ever holds a complete file."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)  # CUDA tensors load with map_location=cpu
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
