"""Feature-map grids: every channel of a layer's activation for one image.

Each channel becomes one tile, normalised on its own (`standard`: (a - mean) / std * 64 +
128, clipped to 0..255, the contrast the classic Keras tutorials use; or `minmax`), upscaled
by a whole factor so each activation is a block of pixels, and colour-mapped. A channel
that is constant over the image (a dead ReLU) is drawn crossed out in red. The input image
stands beside the grid. An overview per image shows one row per layer with the channels
most active on that image.
"""

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.inputs import load_inputs
from cnnatlas.explain.render import (
    captioned,
    colorize,
    hstack,
    resize,
    save_png,
    to_rgb,
    upscale,
    vstack,
)
from cnnatlas.io import write_parquet
from cnnatlas.torchutil import resolve_device, tap_layers

__all__ = [
    "NORMALIZATIONS",
    "normalize_channels",
    "channel_grid",
    "tile_origin",
    "layer_figure",
    "overview_figure",
    "render_feature_maps",
]

log = logging.getLogger(__name__)

NORMALIZATIONS = ("standard", "minmax")
DEAD = np.array([220, 30, 30], np.uint8)
GAP = 1


def normalize_channels(
    act: np.ndarray, how: str = "standard"
) -> tuple[np.ndarray, np.ndarray]:
    """[C, H, W] activations to 8-bit tiles [C, H, W] and a dead-channel mask [C].

    Each channel is scaled on its own; a channel constant over the image is dead and
    its tile is 0.
    """
    if how not in NORMALIZATIONS:
        raise CnnatlasError(
            f"explain.feature_maps.normalize is {how!r}; use one of {NORMALIZATIONS}"
        )
    a = np.asarray(act, dtype=np.float64)
    lo = a.min(axis=(1, 2), keepdims=True)
    hi = a.max(axis=(1, 2), keepdims=True)
    dead = (hi - lo).ravel() <= 1e-7 * np.maximum(1.0, np.abs(hi).ravel())
    if how == "standard":
        std = a.std(axis=(1, 2), keepdims=True)
        scaled = (a - a.mean(axis=(1, 2), keepdims=True)) / np.where(
            std > 0, std, 1.0
        ) * 64 + 128
    else:
        scaled = (a - lo) / np.where(hi > lo, hi - lo, 1.0) * 255
    tiles = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    tiles[dead] = 0
    return tiles, dead


def tile_origin(i: int, h: int, w: int, per_row: int) -> tuple[int, int]:
    """Top-left pixel (row, column) of tile `i` in a `channel_grid`."""
    return (i // per_row) * (h + GAP), (i % per_row) * (w + GAP)


def channel_grid(tiles: np.ndarray, per_row: int, fill: int = 255) -> np.ndarray:
    """Tiles [C, h, w(, 3)] laid out `per_row` to a row, one pixel apart, in channel order."""
    c, h, w = tiles.shape[:3]
    rows, cols = math.ceil(c / per_row), min(c, per_row)
    grid = np.full(
        (rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, *tiles.shape[3:]),
        fill,
        np.uint8,
    )
    for i in range(c):
        y, x = tile_origin(i, h, w, per_row)
        grid[y : y + h, x : x + w] = tiles[i]
    return grid


def _cross(tile: np.ndarray) -> np.ndarray:
    tile = tile.copy()
    n = min(tile.shape[:2])
    idx = np.arange(n)
    tile[idx, idx] = DEAD
    tile[idx, n - 1 - idx] = DEAD
    tile[[0, -1], :] = DEAD
    tile[:, [0, -1]] = DEAD
    return tile


def _tiles_rgb(
    act: np.ndarray, how: str, factor: int, cmap: str
) -> tuple[np.ndarray, np.ndarray]:
    gray, dead = normalize_channels(act, how)
    rgb = colorize(upscale(np.moveaxis(gray, 0, -1), factor), cmap)  # [H, W, C, 3]
    rgb = np.moveaxis(rgb, 2, 0)
    for i in np.flatnonzero(dead):
        rgb[i] = _cross(rgb[i])
    return rgb, dead


def layer_figure(
    image: np.ndarray,
    act: np.ndarray,
    title: str,
    how: str,
    per_row: int,
    min_tile: int = 32,
    *,
    cmap: str,
) -> tuple[np.ndarray, int]:
    """The input image beside a grid of every channel of `act` [C, H, W]; returns (RGB, dead count)."""
    factor = max(1, math.ceil(min_tile / act.shape[1]))
    tiles, dead = _tiles_rgb(act, how, factor, cmap)
    grid = channel_grid(tiles, per_row)
    side = max(2 * tiles.shape[1], 64)
    text = f"{title}\n{act.shape[0]} channels {act.shape[1]}x{act.shape[2]}, {int(dead.sum())} dead (red X), {how} scaling"
    return captioned(hstack([resize(image, side), grid], gap=8), text, 2), int(
        dead.sum()
    )


def overview_figure(
    image: np.ndarray,
    acts: Mapping[str, np.ndarray],
    title: str,
    how: str,
    per_row: int,
    tile: int = 32,
    *,
    cmap: str,
) -> np.ndarray:
    """One row per layer: the `per_row` channels with the highest mean activation on this image."""
    rows = []
    for layer, act in acts.items():
        top = np.sort(np.argsort(-act.mean(axis=(1, 2)), kind="stable")[:per_row])
        factor = max(1, math.ceil(tile / act.shape[1]))
        tiles, _ = _tiles_rgb(act[top], how, factor, cmap)
        tiles = np.stack([resize(t, tile) for t in tiles])
        label = f"{layer}: channels {', '.join(map(str, top[:8]))}{' ...' if len(top) > 8 else ''}"
        rows.append(captioned(channel_grid(tiles, per_row), label))
    side = max(64, 2 * tile)
    return captioned(hstack([resize(image, side), vstack(rows, gap=6)], gap=8), title)


def _activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str], device: torch.device
) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    with tap_layers(model, list(layers)) as tapped, torch.inference_mode():
        for batch in x.split(32):
            acts = tapped(batch.to(device))
            for layer in layers:
                out[layer].append(acts[layer].float().cpu().numpy())
    return {layer: np.concatenate(v) for layer, v in out.items()}


def render_feature_maps(
    selection: pd.DataFrame,
    model: nn.Module,
    transform: Mapping[str, Any],
    layers: Sequence[str],
    out_dir: str | Path,
    per_row: int,
    normalize: str,
    cmap: str,
    device: str,
) -> pd.DataFrame:
    """Write `{image_id:05d}_{layer}.png` and `{image_id:05d}_overview.png` per selected image.

    `selection` holds image_id, path, label_name, pred_name, confidence. Returns (and
    writes as `index.parquet`) one row per PNG: image_id, layer, file, channels, dead.
    """
    dev = resolve_device(device)
    model = model.eval().to(dev)
    x = load_inputs(selection["path"].tolist(), transform)
    acts = _activations(model, x, layers, dev)
    out_dir = Path(out_dir)
    rows = []
    for i, r in enumerate(selection.itertuples(index=False)):
        image = to_rgb(x[i], transform["mean"], transform["std"])
        head = f"image {r.image_id}: true {r.label_name}, predicted {r.pred_name} ({r.confidence:.2f})"
        for layer in layers:
            fig, dead = layer_figure(
                image,
                acts[layer][i],
                f"{head} | {layer}",
                normalize,
                per_row,
                cmap=cmap,
            )
            name = f"{r.image_id:05d}_{layer}.png"
            save_png(fig, out_dir / name)
            rows.append((r.image_id, layer, name, acts[layer].shape[1], dead))
        per_layer = {layer: acts[layer][i] for layer in layers}
        name = f"{r.image_id:05d}_overview.png"
        save_png(
            overview_figure(image, per_layer, head, normalize, per_row, cmap=cmap),
            out_dir / name,
        )
        rows.append((r.image_id, "overview", name, 0, 0))
    index = pd.DataFrame(
        rows, columns=["image_id", "layer", "file", "channels", "dead"]
    )
    write_parquet(index, out_dir / "index.parquet")
    log.info("feature maps: %d images x %d layers", len(selection), len(layers))
    return index
