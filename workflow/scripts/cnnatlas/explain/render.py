"""Drawing helpers shared by the explanation figures: arrays in, 8-bit RGB arrays out.

Figures are assembled with numpy and Pillow rather than matplotlib: hundreds of small
grids render in milliseconds each, pixels map exactly to activations (nearest-neighbour
upscaling by whole factors), and the PNGs carry no timestamps, so reruns are identical.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from cnnatlas.io import atomic_path

__all__ = [
    "BACKGROUND",
    "to_rgb",
    "colorize",
    "upscale",
    "resize",
    "overlay",
    "captioned",
    "hstack",
    "vstack",
    "save_png",
]

BACKGROUND = 255
FONT_SIZE = 11
# pixels between the images that hstack and vstack put side by side
STACK_GAP = 4


@cache
def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


@cache
def _lut(cmap: str) -> np.ndarray:
    return (colormaps[cmap](np.arange(256))[:, :3] * 255 + 0.5).astype(np.uint8)


def to_rgb(
    x: torch.Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """A normalised [C, H, W] model input back to an 8-bit [H, W, 3] image (C is 1 or 3)."""
    a = torch.as_tensor(x).detach().float().cpu()
    m = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)
    a = (a * s + m).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    a = np.moveaxis(a, 0, -1)
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def colorize(gray: np.ndarray, cmap: str) -> np.ndarray:
    """An 8-bit [H, W] array through a matplotlib colour map: [H, W, 3] uint8."""
    return _lut(cmap)[gray]


def upscale(a: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of the first two axes by a whole factor."""
    return np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)


def resize(a: np.ndarray, size: int) -> np.ndarray:
    """An [H, W, 3] image to size x size (nearest when enlarging, Lanczos when shrinking)."""
    im = Image.fromarray(a)
    how = Image.Resampling.NEAREST if size >= max(im.size) else Image.Resampling.LANCZOS
    return np.asarray(im.resize((size, size), how))


def overlay(
    rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend a [H, W] map in [0, 1] (colour-mapped) over an [H, W, 3] image."""
    colour = colorize((np.clip(heat, 0, 1) * 255).round().astype(np.uint8), cmap)
    out = (1 - alpha) * rgb.astype(np.float32) + alpha * colour.astype(np.float32)
    return out.round().astype(np.uint8)


def captioned(a: np.ndarray, text: str, lines: int = 1) -> np.ndarray:
    """`a` with a white strip holding `text` (may contain newlines) above it."""
    height = lines * (FONT_SIZE + 3) + 4
    width = max(a.shape[1], int(_font().getlength(max(text.split("\n"), key=len))) + 4)
    strip = Image.new("RGB", (width, height), (BACKGROUND,) * 3)
    ImageDraw.Draw(strip).multiline_text(
        (2, 2), text, fill=(0, 0, 0), font=_font(), spacing=3
    )
    return vstack([np.asarray(strip), a], gap=0)


def _pad_to(a: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def hstack(images: Sequence[np.ndarray], gap: int = STACK_GAP) -> np.ndarray:
    """Images side by side, top-aligned, on a white background."""
    h = max(a.shape[0] for a in images)
    parts = []
    for i, a in enumerate(images):
        if i:
            parts.append(np.full((h, gap, 3), BACKGROUND, np.uint8))
        parts.append(_pad_to(a, h, a.shape[1]))
    return np.concatenate(parts, axis=1)


def vstack(images: Sequence[np.ndarray], gap: int = STACK_GAP) -> np.ndarray:
    """Images one below the other, left-aligned, on a white background."""
    w = max(a.shape[1] for a in images)
    parts = []
    for i, a in enumerate(images):
        if i:
            parts.append(np.full((gap, w, 3), BACKGROUND, np.uint8))
        parts.append(_pad_to(a, a.shape[0], w))
    return np.concatenate(parts, axis=0)


def save_png(a: np.ndarray, path: str | Path) -> None:
    """Write an [H, W, 3] uint8 array as PNG atomically (no metadata, so reruns are identical)."""
    with atomic_path(path) as tmp:
        Image.fromarray(a).save(tmp, format="PNG", optimize=False)
