"""Density contours and cluster labels of a 2-D map, for the atlas page.

Both come from histograms of the map's points on one square grid over the points'
bounding box, smoothed by a Gaussian (`SIGMA` cells):

- per class, the contour of the class's density that encloses `MASS` of its smoothed mass
  (its highest-density region: the core of where the class lies on the map);
- cluster labels: the regions where all points together are densest (the region enclosing
  `MASS` of the mass, split into connected parts), each with at least `MIN_SHARE` of the
  points labelled by the majority true class of its points and that class's share (purity).

The contours' vertices are stored as uint16 over the grid's box (65,535 steps a side),
which is finer than any screen draws them.
"""

from typing import Any

import numpy as np
from contourpy import contour_generator
from scipy import ndimage

__all__ = ["map_density", "GRID", "MASS"]

GRID = 64
SIGMA = 1.5
MASS = 0.5
MIN_SHARE = 0.02
MIN_CLASS_POINTS = 5


def _box(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
    pad = np.maximum((hi - lo) * 0.05, 1e-9)
    return lo - pad, hi + pad


def _smoothed(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[GRID, GRID] smoothed counts, indexed [x cell, y cell]."""
    h, _, _ = np.histogram2d(
        xy[:, 0], xy[:, 1], bins=GRID, range=[[lo[0], hi[0]], [lo[1], hi[1]]]
    )
    return ndimage.gaussian_filter(h, SIGMA, mode="constant")


def _level(density: np.ndarray, mass: float) -> float:
    """The density above which the cells hold `mass` of the total."""
    flat = np.sort(density.ravel())[::-1]
    cum = np.cumsum(flat)
    k = int(np.searchsorted(cum, mass * cum[-1]))
    return float(flat[min(k, len(flat) - 1)])


def _cells(xy: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Each point's grid cell [N, 2] (x cell, y cell)."""
    c = np.floor((xy - lo) / (hi - lo) * GRID).astype(np.int64)
    return np.clip(c, 0, GRID - 1)


def map_density(xy: np.ndarray, labels: np.ndarray) -> dict[str, Any] | None:
    """The contours and cluster labels of one map: {box, lines, contours, clusters}.

    box: [x0, y0, x1, y1] of the grid in the map's coordinates; lines: the uint16
    vertices (x, y pairs) of every contour, flat; contours: [class, first vertex, vertices]
    per contour line; clusters: [{x, y, label, purity, n}] (x, y in map coordinates, at
    the region's densest cell). None for a map of fewer than MIN_CLASS_POINTS points.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if len(xy) < MIN_CLASS_POINTS or not np.isfinite(xy).all():
        return None
    lo, hi = _box(xy)
    centres = [lo[d] + (np.arange(GRID) + 0.5) * (hi[d] - lo[d]) / GRID for d in (0, 1)]
    scale = 65535 / (hi - lo)
    lines, contours = [], []
    for c in np.unique(labels):
        own = xy[labels == c]
        if len(own) < MIN_CLASS_POINTS:
            continue
        dens = _smoothed(own, lo, hi)
        gen = contour_generator(x=centres[0], y=centres[1], z=dens.T)
        for line in gen.lines(_level(dens, MASS)):
            if len(line) < 3:
                continue
            q = np.clip(np.round((line - lo) * scale), 0, 65535).astype(np.uint16)
            contours.append([int(c), sum(len(v) for v in lines) // 2, len(q)])
            lines.append(q.ravel())
    return {
        "box": [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])],
        "lines": np.concatenate(lines) if lines else np.zeros(0, np.uint16),
        "contours": contours,
        "clusters": _clusters(xy, labels, lo, hi, centres),
    }


def _clusters(xy, labels, lo, hi, centres) -> list[dict[str, Any]]:
    dens = _smoothed(xy, lo, hi)
    regions, count = ndimage.label(dens >= _level(dens, MASS))
    cells = _cells(xy, lo, hi)
    of_point = regions[cells[:, 0], cells[:, 1]]
    out = []
    for r in range(1, count + 1):
        inside = of_point == r
        n = int(inside.sum())
        if n < max(MIN_CLASS_POINTS, MIN_SHARE * len(xy)):
            continue
        values, counts = np.unique(labels[inside], return_counts=True)
        top = int(np.argmax(counts))  # ties: the smallest class code
        peak = np.unravel_index(np.argmax(np.where(regions == r, dens, -1)), dens.shape)
        out.append(
            {
                "x": float(centres[0][peak[0]]),
                "y": float(centres[1][peak[1]]),
                "label": int(values[top]),
                "purity": round(float(counts[top] / n), 3),
                "n": n,
            }
        )
    return out
