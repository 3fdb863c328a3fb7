"""Faithfulness curves of saliency maps: deletion/insertion and ROAD, batched on the device.

Deletion and insertion (Petsiuk et al., "RISE", BMVC 2018): pixels are replaced in order
of saliency, `step` of the image at a time, by a blurred copy of the image (deletion), or
put back into the blurred copy (insertion); the predicted class's probability is read
after every step and the area under the curve (fraction replaced 0..1) summarises it. A
faithful map makes the deletion curve fall, and the insertion curve rise, faster than a
random order does.

ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
Methods", ICML 2022): removed pixels are filled by noisy linear imputation - each removed
pixel the weighted mean of its 8 neighbours (1/6 direct, 1/12 diagonal), solved jointly
for all removed pixels, plus Gaussian noise - so the filled image carries little trace
of which pixels were removed. Most-relevant-first (MoRF) and least-relevant-first (LeRF)
curves at the given fractions. The same linear system as pytorch-grad-cam's
`NoisyLinearImputer` (which solves it with scipy per image on the CPU) is solved here
by conjugate gradients for a whole batch at once on the model's device.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "saliency_rank",
    "step_fractions",
    "deletion_insertion",
    "end_probs",
    "impute_linear",
    "road_curves",
    "auc",
]

# The weights of the 8 neighbours in ROAD's linear imputation (they sum to 1).
_NEIGHBOURS = torch.tensor(
    [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]]
)


def saliency_rank(maps: torch.Tensor) -> torch.Tensor:
    """Each pixel's position [N, H*W] in its image's descending saliency order.

    `maps` [N, H, W]; ties keep pixel order (stable sort), so ranks are reproducible.
    """
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    pos = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return rank.scatter_(1, order, pos)


def step_fractions(step: float) -> np.ndarray:
    """0, step, 2 step, ..., 1: the fractions of pixels replaced along a curve."""
    n = math.ceil(1 / step - 1e-9)
    return np.minimum(np.arange(n + 1) * step, 1.0)


def _probs(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float().softmax(1).gather(1, cls.view(-1, 1))[:, 0]


def _first(rank: torch.Tensor, n: int, shape: torch.Size) -> torch.Tensor:
    return (rank < n).view(shape[0], 1, *shape[2:])


def deletion_insertion(
    model: nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    rank: torch.Tensor,
    cls: torch.Tensor,
    fractions: Sequence[float],
    ends: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities of `cls` [N, len(fractions)] while deleting / inserting pixels.

    Deletion replaces the first fraction of each image's pixels in `rank` order by
    `baseline`; insertion starts from `baseline` and puts the same pixels of `x` back.
    One forward pass of the N images per fraction, so memory does not grow with steps.
    `ends` = (probabilities on `x`, on `baseline`), when known, stand in for the passes
    at fractions 0 and 1, which no order changes (`end_probs` computes them once for
    every method of a batch).
    """
    hw = x.shape[2] * x.shape[3]
    dele, ins = [], []
    for f in fractions:
        n = int(round(f * hw))
        if ends is not None and n in (0, hw):
            on_x, on_base = ends
            dele.append(on_x if n == 0 else on_base)
            ins.append(on_base if n == 0 else on_x)
            continue
        mask = _first(rank, n, x.shape)
        dele.append(_probs(model, torch.where(mask, baseline, x), cls))
        ins.append(_probs(model, torch.where(mask, x, baseline), cls))
    return torch.stack(dele, 1), torch.stack(ins, 1)


def end_probs(
    model: nn.Module, x: torch.Tensor, baseline: torch.Tensor, cls: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities of `cls` on `x` and on `baseline`: every curve's two ends."""
    empty = torch.zeros(x.shape[0], x.shape[2] * x.shape[3], dtype=torch.long)
    # the same masked inputs deletion_insertion builds, so the same bytes
    keep = _first(empty.to(x.device), 0, x.shape)
    return (
        _probs(model, torch.where(keep, baseline, x), cls),
        _probs(model, torch.where(keep, x, baseline), cls),
    )


def _neighbour_sum(v: torch.Tensor) -> torch.Tensor:
    """sum_j w_ij v_j over the 8 neighbours inside the image (zero padding)."""
    # shifted slices, not conv2d: a 1-channel 3x3 convolution was ~100x slower on CPU
    h, w = v.shape[-2:]
    pad = F.pad(v, (1, 1, 1, 1))
    out = torch.zeros_like(v)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                weight = float(_NEIGHBOURS[dy, dx])
                out += weight * pad[..., dy : dy + h, dx : dx + w]
    return out


# Images larger than this on their short side are imputed coarse to fine: solved to
# `tol` at half the resolution (recursively, down to this size), then refined by at most
# REFINE conjugate-gradient iterations at each finer level. From zero, holes tens of
# pixels wide take CG hundreds of iterations over the whole image per level (a 224 px
# batch of 10: ~30 CPU-s per imputation); the refined solution stays within about
# 1% of the noise ROAD adds. Smaller images (the demo's 32 px) are solved to `tol`
# from zero, as they always were, so their bytes do not change.
WARM_START_SIDE = 64
REFINE = 32


def _cg(
    x: torch.Tensor, m: torch.Tensor, u: torch.Tensor, tol: float, max_iter: int
) -> torch.Tensor:
    """Conjugate gradients for the imputation system of `impute_linear` from `u`."""
    total = _neighbour_sum(torch.ones_like(x[:1, :1])).expand_as(x)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return (total * v - _neighbour_sum(v)) * m

    b = _neighbour_sum(x * (1 - m)) * m
    r = b - apply(u) if bool(u.any()) else b.clone()
    p = r.clone()
    rs = (r * r).sum(dim=(2, 3), keepdim=True)
    stop = (tol**2) * (b * b).sum(dim=(2, 3), keepdim=True).clamp(min=1e-30)
    for _ in range(max_iter):
        if bool((rs <= stop).all()):
            break
        ap = apply(p)
        denom = (p * ap).sum(dim=(2, 3), keepdim=True)
        alpha = torch.where(denom > 0, rs / denom.clamp(min=1e-30), 0)
        u = u + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum(dim=(2, 3), keepdim=True)
        p = r + torch.where(rs > 0, rs_new / rs.clamp(min=1e-30), 0) * p
        rs = rs_new
    return u


def _solve(x: torch.Tensor, m: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """The imputed values at the removed pixels `m` (1 there) of x [N, C, H, W]."""
    h, w = x.shape[-2:]
    if min(h, w) <= WARM_START_SIDE:
        return _cg(x, m, torch.zeros_like(x), tol, max_iter)
    # the coarse problem: 2 x 2 means of the kept pixels; a coarse pixel is removed
    # where most of its pixels are
    keep = F.avg_pool2d(1 - m, 2, ceil_mode=True)
    xc = F.avg_pool2d(x * (1 - m), 2, ceil_mode=True)
    xc = torch.where(keep > 0, xc / keep.clamp(min=1e-6), 0)
    mc = (keep < 0.5).to(x.dtype)
    coarse = torch.where(mc.bool(), _solve(xc, mc, tol, max_iter), xc)
    guess = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return _cg(x, m, guess * m, tol, min(REFINE, max_iter))


def impute_linear(
    x: torch.Tensor,
    removed: torch.Tensor,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    tol: float = 1e-6,
    max_iter: int = 5000,
) -> torch.Tensor:
    """x [N, C, H, W] with the `removed` pixels [N, 1, H, W] (bool) linearly imputed.

    Solves, for every removed pixel i, W_i u_i - sum_j w_ij u_j = sum_k w_ik x_k (j over
    removed and k over kept neighbours inside the image, W_i the sum of its in-image
    neighbours' weights), i.e. u_i is the weighted mean of its neighbours, by conjugate
    gradients on all images and channels at once, to a residual `tol` relative to the
    right-hand side (on images over 64 px: coarse to fine, see WARM_START_SIDE).
    Then adds Gaussian noise of standard deviation `noise` (drawn on the CPU from
    `generator`, so the result does not depend on the device).
    """
    m = removed.to(x.dtype).expand_as(x)
    u = _solve(x, m, tol, max_iter)
    out = torch.where(m.bool(), u, x)
    if noise > 0:
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        out = out + noise * eps * m
    return out


def road_curves(
    model: nn.Module,
    x: torch.Tensor,
    rank: torch.Tensor,
    cls: torch.Tensor,
    fractions: Sequence[float],
    noise: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ROAD probabilities of `cls` [N, len(fractions)]: MoRF and LeRF.

    At each fraction f, MoRF imputes the round(f * H * W) most salient pixels (first in
    `rank`), LeRF as many least salient ones.
    """
    hw = x.shape[2] * x.shape[3]
    morf, lerf = [], []
    for f in fractions:
        n = int(round(f * hw))
        most = _first(rank, n, x.shape)
        least = (rank >= hw - n).view_as(most)
        morf.append(_probs(model, impute_linear(x, most, noise, generator), cls))
        lerf.append(_probs(model, impute_linear(x, least, noise, generator), cls))
    return torch.stack(morf, 1), torch.stack(lerf, 1)


def auc(curves: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """Area under each curve [N, K] over `fractions` (trapezoids), one value per row."""
    y = np.asarray(curves, dtype=np.float64)
    dx = np.diff(np.asarray(fractions, dtype=np.float64))
    return ((y[:, 1:] + y[:, :-1]) / 2 * dx).sum(axis=1)
