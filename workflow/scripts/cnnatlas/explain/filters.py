"""What a channel responds to: activation maximization with a feature-visualization prior.

Optimizing raw pixels to excite a channel gives high-frequency noise. As in Olah et al.,
"Feature Visualization" (Distill 2017) and Lucid, the image is parametrized in Fourier
space with a 1/frequency scaling (so gradient steps move low frequencies as easily as
high ones), colours are decorrelated with the square root of ImageNet's colour
covariance (RGB only; a gray model optimizes one channel), squashed into [0, 1] by a
sigmoid, and every step sees a randomly jittered, scaled and rotated copy, so only
patterns that survive small transformations are reinforced. A channel that is zero on
the gray starting image would get no gradient through its ReLUs; as in Lucid, ReLUs pass
the gradient on ("redirected") for any image where nothing else gets through. All channels of a layer are
optimized together as one batch; randomness comes from an explicit torch.Generator.
"""

import logging
import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.render import captioned, hstack, resize, save_png, to_rgb, vstack
from cnnatlas.explain.select import bound_images
from cnnatlas.io import write_parquet
from cnnatlas.logs import Progress
from cnnatlas.torchutil import (
    ImageDataset,
    make_transform,
    resolve_device,
    tap_layers,
    transform_spec,
)

__all__ = [
    "FourierImage",
    "random_transform",
    "maximize",
    "channel_stats",
    "step_gflop",
    "fit_budget",
    "filter_grid",
    "visualize_filters",
]

log = logging.getLogger(__name__)

# Square root of ImageNet's RGB colour covariance (Lucid's color_correlation_svd_sqrt).
COLOR_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
)


class FourierImage(nn.Module):
    """A batch of `n` images [n, channels, size, size] in [0, 1] from a scaled spectrum."""

    def __init__(
        self,
        n: int,
        channels: int,
        size: int,
        generator: torch.Generator,
        decay: float = 1.0,
        sd: float = 0.01,
    ) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(size)[:, None]
        fx = torch.fft.rfftfreq(size)[None, :]
        freqs = (fx**2 + fy**2).sqrt()
        self.register_buffer("scale", 1.0 / freqs.clamp(min=1.0 / size) ** decay)
        shape = (n, channels, *freqs.shape, 2)
        self.spectrum = nn.Parameter(torch.randn(shape, generator=generator) * sd)
        self.size = size
        norm = COLOR_SQRT / COLOR_SQRT.norm(dim=0).max()
        self.register_buffer("color", norm if channels == 3 else torch.eye(channels))

    def forward(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        img = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0
        img = torch.einsum("nchw,dc->ndhw", img, self.color)
        return torch.sigmoid(img)


def random_transform(
    x: torch.Tensor,
    generator: torch.Generator,
    jitter: float,
    scale: float,
    rotate: float,
) -> torch.Tensor:
    """Each image of [N, C, H, W] shifted by up to `jitter` of its side, scaled by
    1 +- `scale` and rotated by up to +-`rotate` degrees (reflection at the borders)."""
    u = torch.rand(x.shape[0], 4, generator=generator)
    return _transform(x, u, jitter, scale, rotate)


def _transform(
    x: torch.Tensor, u: torch.Tensor, jitter: float, scale: float, rotate: float
) -> torch.Tensor:
    """`random_transform` with its uniform numbers `u` [N, 4] given (on x's device)."""
    u = u * 2 - 1
    angle = u[:, 0] * math.radians(rotate)
    s = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 2] * 2 * jitter], 1),
            torch.stack([sin, cos, u[:, 3] * 2 * jitter], 1),
        ],
        1,
    ).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


class _RedirectedReLU(torch.autograd.Function):
    """ReLU whose gradient, for images where the ReLU blocks all of it, lets through the
    part that raises negative inputs (Lucid's redirected_relu_grad)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(grad)
        relu_grad = torch.where(x < 0, zero, grad)
        # the loss is minimised: a positive gradient would push a negative x lower still
        redirected = torch.where((x < 0) & (grad > 0), zero, grad)
        passes = relu_grad.flatten(1).abs().sum(1) > 0
        return torch.where(passes.view(-1, *[1] * (x.ndim - 1)), relu_grad, redirected)


@contextmanager
def _redirected_relus(model: nn.Module) -> Iterator[None]:
    handles = [
        m.register_forward_hook(lambda _m, inp, _out: _RedirectedReLU.apply(inp[0]))
        for m in model.modules()
        if isinstance(m, nn.ReLU) and not m.inplace
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _normalizer(mean: Sequence[float], std: Sequence[float], device: torch.device):
    m = torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return lambda img: (img - m) / s


def _objective(tapped: nn.Module, x: torch.Tensor, layer: str, channels: torch.Tensor):
    act = tapped(x)[layer]
    rows = torch.arange(len(channels), device=act.device)
    return act[rows, channels.to(act.device)].mean(dim=(1, 2))


def maximize(
    model: nn.Module,
    layer: str,
    channels: Sequence[int],
    transform: Mapping[str, Any],
    steps: int,
    lr: float,
    seed: int,
    jitter: float,
    scale: float,
    rotate: float,
    device: torch.device | str = "cpu",
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images [n, C, size, size] in [0, 1] that maximize each channel's mean activation
    (`size` None: the model's input crop).

    Returns (images, start, reached): the channel's mean activation on the initial and on
    the final (untransformed) image. The model's weights are not changed.
    """
    gen = torch.Generator().manual_seed(seed)
    spec = transform_spec(transform)
    c, size = spec.channels, size or spec.crop
    param = FourierImage(len(channels), c, size, gen).to(device)
    norm = _normalizer(transform["mean"], transform["std"], device)
    target = torch.as_tensor(list(channels), device=device)
    opt = torch.optim.Adam(param.parameters(), lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        with (
            tap_layers(model, [layer], logits=False) as tapped,
            _redirected_relus(model),
        ):
            with torch.no_grad():
                start = _objective(tapped, norm(param()), layer, target)
            # every step's random numbers at once (the same numbers, in the same order),
            # so the loop never waits for a host-to-device copy
            noise = torch.rand(steps, len(channels), 4, generator=gen).to(device)
            with Progress(steps, f"filters of {layer}", "steps") as progress:
                for step in range(steps):
                    img = _transform(param(), noise[step], jitter, scale, rotate)
                    loss = -_objective(tapped, norm(img), layer, target).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    progress.update()
            with torch.no_grad():
                images = param()
                reached = _objective(tapped, norm(images), layer, target)
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return images.detach().cpu(), start.cpu(), reached.cpu()


def channel_stats(
    model: nn.Module,
    loader: DataLoader,
    layers: Sequence[str],
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Each layer's per-image channel means [N, C] (spatial mean) over the loader's images."""
    out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    n = len(loader.dataset) if hasattr(loader, "dataset") else None
    with (
        tap_layers(model.eval(), list(layers), logits=False) as tapped,
        torch.inference_mode(),
        Progress(n, "channel statistics", "images") as progress,
    ):
        for x, _ in loader:
            acts = tapped(x.to(device))
            for layer in layers:  # kept on the device; one copy to the host at the end
                out[layer].append(acts[layer].float().mean(dim=(2, 3)))
            progress.update(len(x))
    return {layer: torch.cat(v).cpu().numpy() for layer, v in out.items()}


def step_gflop(
    model: nn.Module, layer: str, channels: int, size: int, device: torch.device | str
) -> float:
    """GFLOP of one activation-maximization step of one channel at `layer` (forward to
    the layer and backward, one image of `size`), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, channels, size, size, device=device, requires_grad=True)
    flags = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        with tap_layers(model, [layer], logits=False) as tapped:
            with FlopCounterMode(display=False) as counter:
                tapped(x)[layer].float().mean().backward()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return counter.get_total_flops() / 1e9


def fit_budget(
    per_step: Sequence[float],
    channels: int | Sequence[int],
    steps: int,
    budget: float | None,
    min_channels: int = 4,
    min_steps: int = 32,
) -> tuple[int | Sequence[int], int]:
    """(channels, steps) whose total cost, channels x steps x sum(per_step) GFLOP, fits
    `budget` GFLOP: first fewer channels (down to `min_channels`; a list of channels is
    kept), then fewer steps (down to `min_steps`). None: no bound."""
    total = float(sum(per_step))

    def cost(c: int | Sequence[int], s: int) -> float:
        return (c if isinstance(c, int) else len(c)) * s * total

    if budget is None or total <= 0 or cost(channels, steps) <= budget:
        return channels, steps
    if isinstance(channels, int) and channels > min_channels:
        channels = max(min_channels, min(channels, int(budget // (steps * total))))
    if cost(channels, steps) > budget:
        n = channels if isinstance(channels, int) else len(channels)
        steps = max(min(min_steps, steps), min(steps, int(budget // (n * total))))
    return channels, steps


def filter_grid(
    images: torch.Tensor,
    table: pd.DataFrame,
    top_images: Sequence[Sequence[np.ndarray]],
    title: str,
    columns: int,
    side: int = 64,
) -> np.ndarray:
    """One cell per channel: its visualization, then its top-k real images, captioned."""
    cells = []
    for i, r in enumerate(table.itertuples(index=False)):
        vis = resize(to_rgb(images[i], [0.0], [1.0]), side)
        tops = [resize(t, side) for t in top_images[i]]
        text = f"channel {r.channel}: {r.reached:.2f} (real mean {r.real_mean:.2f}, max {r.real_max:.2f})"
        cells.append(captioned(hstack([vis, *tops], gap=2), text))
    rows = [
        hstack(cells[i : i + columns], gap=12) for i in range(0, len(cells), columns)
    ]
    return captioned(vstack(rows, gap=8), title)


def _channels(n_channels: int, wanted: int | Sequence[int], layer: str) -> list[int]:
    if isinstance(wanted, int):
        return list(range(min(wanted, n_channels)))
    bad = [c for c in wanted if not 0 <= c < n_channels]
    if bad:
        raise CnnatlasError(
            f"explain.filters.channels: {bad} are not channels of {layer} (0..{n_channels - 1})"
        )
    return list(wanted)


def visualize_filters(
    predictions: pd.DataFrame,
    model: nn.Module,
    transform: Mapping[str, Any],
    layers: Sequence[str],
    out_dir: str | Path,
    table_out: str | Path,
    channels: int | Sequence[int],
    steps: int,
    lr: float,
    seed: int,
    jitter: float,
    scale: float,
    rotate: float,
    topk: int,
    columns: int,
    batch_size: int,
    device: str,
    max_images: int | None = None,
    size: int | None = None,
    budget_gflop: float | None = None,
) -> pd.DataFrame:
    """Per layer `{layer}.png` in `out_dir`; one row per (layer, channel) in `table_out`.

    The images are optimized at `size` px (None or larger: the model's crop); when
    `channels` x `steps` would cost more than `budget_gflop` (per job, counted by
    `step_gflop`), fewer channels, then fewer steps are made (`fit_budget`), and the
    log says so.

    The table holds the activation reached by the visualization (and at its random start)
    beside the channel's mean and maximum over the images of `predictions`, and the
    image_ids of the top-k images. On the CPU those are at most `max_images` images
    (class-stratified, seeded with `seed`; None: all), on a GPU all; the table's
    `cnnatlas.images` metadata says which.
    """
    dev = resolve_device(device)
    model = model.eval().to(dev)
    spec = transform_spec(transform)
    size = min(size, spec.crop) if size else spec.crop
    per_step = [step_gflop(model, layer, spec.channels, size, dev) for layer in layers]
    wanted = (channels, steps)
    channels, steps = fit_budget(per_step, channels, steps, budget_gflop)
    n_chan = channels if isinstance(channels, int) else len(channels)
    cut = (channels, steps) != wanted
    log.log(
        logging.WARNING if cut else logging.INFO,
        "filters of %s at %d px: %s channels x %d steps per layer, %.3g GFLOP per "
        "channel and step over the layers; %.4g GFLOP in all%s",
        ", ".join(layers), size, n_chan, steps, sum(per_step),
        n_chan * steps * sum(per_step),
        "" if not cut else (
            f" (explain.filters.budget_gflop {budget_gflop:g} cut "
            f"explain.filters.channels/steps from {wanted[0]} x {wanted[1]}; raise the "
            "budget or set it to null for more)"
        ),
    )  # fmt: skip
    predictions, note = bound_images(
        predictions, max_images, seed, dev.type == "cpu", "explain.filters.max_images"
    )
    ds = ImageDataset(predictions["path"].tolist(), make_transform(transform))
    stats = channel_stats(model, DataLoader(ds, batch_size=batch_size), layers, dev)
    ids = predictions["image_id"].to_numpy()
    tables = []
    for layer in layers:
        chans = _channels(stats[layer].shape[1], channels, layer)
        # one seed per layer, independent of which other layers are listed
        layer_seed = (seed + zlib.crc32(layer.encode())) % 2**63
        images, start, reached = maximize(
            model,
            layer,
            chans,
            transform,
            steps,
            lr,
            layer_seed,
            jitter,
            scale,
            rotate,
            dev,
            size,
        )
        real = stats[layer][:, chans]
        top = np.argsort(-real, axis=0, kind="stable")[:topk].T  # [n, k] row positions
        table = pd.DataFrame(
            {
                "layer": layer,
                "channel": np.asarray(chans, np.int64),
                "start": start.numpy().astype(np.float32),
                "reached": reached.numpy().astype(np.float32),
                "real_mean": real.mean(0).astype(np.float32),
                "real_max": real.max(0).astype(np.float32),
                "top_image_ids": [ids[t].astype(np.int64) for t in top],
            }
        )
        tops = [
            [to_rgb(ds[int(j)][0], transform["mean"], transform["std"]) for j in t]
            for t in top
        ]
        title = f"{layer}: {len(chans)} channels, {steps} steps; beside each, the {topk} test images that activate it most"
        save_png(
            filter_grid(images, table, tops, title, columns),
            Path(out_dir) / f"{layer}.png",
        )
        tables.append(table)
        log.info(
            "%s: reached/real max median %.2f",
            layer,
            float(np.median(table["reached"] / table["real_max"].clip(lower=1e-6))),
        )
    out = pd.concat(tables, ignore_index=True)
    write_parquet(out, table_out, meta=note)
    return out
