"""Class-activation maps of the explained images and their faithfulness, for any method.

The maps come from `cnnatlas.explain.saliency` (one class per method, hooks released by
a context manager); this module draws them over the images and checks them.

Faithfulness: for each image the 20% (configurable) most salient pixels are replaced by a
blurred copy of the image and the drop in the predicted class's probability is compared
with the drop when the same number of random pixels (seeded) is replaced.
"""

import logging
import sys
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
from tqdm import tqdm

from cnnatlas.classes import ClassSpace
from cnnatlas.errors import LayerError
from cnnatlas.explain.inputs import fit_batch, load_inputs
from cnnatlas.explain.render import (
    captioned,
    hstack,
    overlay,
    resize,
    save_png,
    to_rgb,
    vstack,
)
from cnnatlas.explain.saliency import SaliencyMethod, open_methods, saliency_maps
from cnnatlas.explain.select import bound_images
from cnnatlas.io import atomic_path, write_parquet
from cnnatlas.torchutil import ImageDataset, make_transform, resolve_device

__all__ = [
    "find_target_layer",
    "gaussian_blur",
    "replace_pixels",
    "faithfulness",
    "summarize_faithfulness",
    "plot_faithfulness",
    "overlay_figure",
    "render_saliency",
]

log = logging.getLogger(__name__)


@contextmanager
def _probe(model: nn.Module) -> Iterator[list[tuple[str, tuple[int, ...]]]]:
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        m.register_forward_hook(
            lambda _m, _i, out, name=name: (
                seen.append((name, tuple(out.shape))) if torch.is_tensor(out) else None
            )
        )
        for name, m in model.named_modules()
        if name
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def find_target_layer(model: nn.Module, channels: int, size: int = 32) -> str:
    """The last module (in the order forward calls finish) whose output is a spatial map.

    Spatial means [N, C, H, W] with H * W > 1: the output of the last convolutional
    block (`layer4` of a ResNet, `features` of a VGG or of the demo's DigitNet).
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with _probe(model) as seen, torch.inference_mode():
        model.eval()(torch.zeros(1, channels, size, size, device=device))
    modules = dict(model.named_modules())
    # a global pooling to a fixed grid (VGG's avgpool) is not a conv block
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    spatial = [
        name
        for name, s in seen
        if len(s) == 4 and s[2] * s[3] > 1 and not isinstance(modules[name], pools)
    ]
    if not spatial:
        raise LayerError(
            "no module of the model outputs a spatial [N, C, H, W] map; "
            "set explain.saliency.target_layer"
        )
    return spatial[-1]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] with replicate padding."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def replace_pixels(
    x: torch.Tensor, replacement: torch.Tensor, order: torch.Tensor, n: int
) -> torch.Tensor:
    """x with the first `n` pixels of each image's `order` [N, H*W] taken from `replacement`."""
    mask = torch.zeros(order.shape, dtype=torch.bool, device=x.device)
    mask.scatter_(1, order[:, :n].to(x.device), True)
    mask = mask.view(x.shape[0], 1, *x.shape[2:])
    return torch.where(mask, replacement, x)


def _prob(model: nn.Module, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float().softmax(1).gather(1, cls.view(-1, 1))[:, 0]


def _faithfulness_batch(
    model: nn.Module,
    cams: Sequence[SaliencyMethod],
    x: torch.Tensor,
    fraction: float,
    blur: float,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    logits, maps = saliency_maps(cams, x, {"pred": None})
    probs = logits.float().softmax(1)
    conf, pred = probs.max(1)
    n = int(round(fraction * x.shape[2] * x.shape[3]))
    blurred = gaussian_blur(x, blur * max(x.shape[2:]))
    # drawn on the CPU (seeded generator), ordered there as before, moved once
    rand = torch.rand(x.shape[0], x.shape[2] * x.shape[3], generator=gen)
    random_order = rand.argsort(1).to(x.device, non_blocking=True)
    out = {
        "pred": pred,
        "confidence": conf,
        "drop_random": conf
        - _prob(model, replace_pixels(x, blurred, random_order, n), pred),
    }
    for cam in cams:
        sal = maps[(cam.name, "pred")].flatten(1)
        order = torch.argsort(sal, dim=1, descending=True, stable=True)
        kept = _prob(model, replace_pixels(x, blurred, order, n), pred)
        out[f"drop_{cam.name}"] = conf - kept
    return out  # on the device: `faithfulness` copies all batches to the host once


def faithfulness(
    model: nn.Module,
    layer: str,
    loader: DataLoader,
    methods: Sequence[str | type[SaliencyMethod]],
    fraction: float,
    blur: float,
    seed: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """Per image and method: confidence, drop_salient and drop_random (predicted class).

    `methods` are saliency-method names (or classes) of `cnnatlas.explain.saliency`;
    `loader` yields (inputs, image_ids). `blur` is the Gaussian sigma as a fraction of
    the image side; random pixels come from `torch.Generator().manual_seed(seed)`;
    `batch_size` bounds the extra forward passes of gradient-free methods.
    """
    gen = torch.Generator().manual_seed(seed)
    parts: list[dict[str, torch.Tensor]] = []
    with open_methods(model, layer, methods, batch_size) as cams:
        methods = [c.name for c in cams]
        for x, ids in tqdm(loader, desc="faithfulness", file=sys.stderr, mininterval=5):
            out = _faithfulness_batch(model, cams, x.to(device), fraction, blur, gen)
            parts.append(out | {"image_id": ids})
    cols = {k: torch.cat([p[k] for p in parts]).cpu().numpy() for k in parts[0]}
    frames = [
        pd.DataFrame(
            {
                "image_id": cols["image_id"].astype(np.int64),
                "method": m,
                "pred": cols["pred"].astype(np.int64),
                "confidence": cols["confidence"].astype(np.float32),
                "drop_salient": cols[f"drop_{m}"].astype(np.float32),
                "drop_random": cols["drop_random"].astype(np.float32),
            }
        )
        for m in methods
    ]
    return pd.concat(frames, ignore_index=True)


def summarize_faithfulness(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean drops per method for all images, per true class and for correct vs misclassified.

    `per_image` needs label_name and correct besides the `faithfulness` columns. Columns:
    method, group (all | class | outcome), value, n, drop_salient, drop_random,
    difference (salient - random), salient_wins (fraction of images where salient > random).
    """
    df = per_image.assign(
        outcome=np.where(per_image["correct"], "correct", "misclassified"),
        all="all",
        win=per_image["drop_salient"] > per_image["drop_random"],
    )
    rows = []
    for group, col in (("all", "all"), ("class", "label_name"), ("outcome", "outcome")):
        for (method, value), g in df.groupby(["method", col], sort=False):
            rows.append(
                {
                    "method": method,
                    "group": group,
                    "value": str(value),
                    "n": len(g),
                    "drop_salient": g["drop_salient"].mean(),
                    "drop_random": g["drop_random"].mean(),
                    "difference": (g["drop_salient"] - g["drop_random"]).mean(),
                    "salient_wins": g["win"].mean(),
                }
            )
    out = pd.DataFrame(rows)
    for c in ("drop_salient", "drop_random", "difference", "salient_wins"):
        out[c] = out[c].astype(np.float32)
    return out


def plot_faithfulness(summary: pd.DataFrame, path: str | Path, fraction: float) -> None:
    """Bars of the mean confidence drop, salient vs random, per class and per outcome (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in ("class", "outcome") if (summary["group"] == g).any()]
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(9, 3.2),
        width_ratios=[3, 1][: len(groups)],
        squeeze=False,
    )
    methods = list(dict.fromkeys(summary["method"]))
    for ax, group in zip(axes[0], groups, strict=True):
        sub = summary[summary["group"] == group]
        values = list(dict.fromkeys(sub["value"]))
        xs = np.arange(len(values))
        width = 0.8 / (len(methods) + 1)
        for i, m in enumerate(methods):
            s = sub[sub["method"] == m].set_index("value").loc[values]
            ax.bar(xs + i * width, s["drop_salient"], width, label=f"{m}: salient")
        s = sub[sub["method"] == methods[0]].set_index("value").loc[values]
        ax.bar(
            xs + len(methods) * width,
            s["drop_random"],
            width,
            label="random pixels",
            color="0.6",
        )
        labels = [f"{v}\n(n={n})" for v, n in zip(values, s["n"], strict=True)]
        ax.set_xticks(xs + width * len(methods) / 2, labels, fontsize=7)
        ax.set_title(
            f"per {'true class' if group == 'class' else 'outcome'}", fontsize=9
        )
        ax.axhline(0, color="k", lw=0.5)
        ax.tick_params(axis="y", labelsize=7)
    axes[0][0].set_ylabel(
        f"mean confidence drop,\n{fraction:.0%} pixels blurred", fontsize=8
    )
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def overlay_figure(
    image: np.ndarray,
    maps: Mapping[str, np.ndarray],
    title: str,
    side: int = 96,
) -> np.ndarray:
    """The image, then each named map [H, W] (scaled to its max) overlaid on it, in a row."""
    panels = [captioned(resize(image, side), "input")]
    for name, m in maps.items():
        peak = float(m.max())
        heat = m / peak if peak > 0 else m
        panels.append(captioned(resize(overlay(image, heat), side), name))
    return captioned(hstack(panels), title)


def _overlays(
    cams: Sequence[SaliencyMethod],
    selection: pd.DataFrame,
    transform: Mapping[str, Any],
    classes: ClassSpace | Sequence[str],
    device: torch.device,
    batch_size: int = 32,
) -> list[np.ndarray]:
    space = ClassSpace.of(classes)
    x = load_inputs(selection["path"].tolist(), transform).to(device)
    # the true class's output: the dataset label mapped by the model's class_index
    labels = torch.from_numpy(space.target(selection["label"].to_numpy()))
    figures = []
    for start in range(0, len(x), batch_size):
        xb, lb = x[start : start + batch_size], labels[start : start + batch_size]
        logits, maps = saliency_maps(cams, xb, {"pred": None, "true": lb})
        pred = logits.argmax(1).cpu()
        maps = {key: m.cpu() for key, m in maps.items()}  # one copy per batch
        for i in range(len(xb)):
            r = selection.iloc[start + i]
            names = {"pred": space.name(pred[i]), "true": space.classes[r.label]}
            panels = {
                f"{c.name} {t}={names[t]}": maps[(c.name, t)][i].numpy()
                for c in cams
                for t in ("pred", "true")
            }
            image = to_rgb(xb[i], transform["mean"], transform["std"])
            title = (
                f"image {r.image_id}: true {names['true']}, predicted {names['pred']}"
            )
            figures.append(overlay_figure(image, panels, title))
    return figures


def render_saliency(
    predictions: pd.DataFrame,
    selection: pd.DataFrame,
    model: nn.Module,
    transform: Mapping[str, Any],
    classes: ClassSpace | Sequence[str],
    overlays_dir: str | Path,
    per_image_out: str | Path,
    summary_out: str | Path,
    figure_out: str | Path,
    methods: Sequence[str],
    layer: str | None,
    fraction: float,
    blur: float,
    seed: int,
    batch_size: int,
    device: str,
    max_images: int | None = None,
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Overlays of `methods` for the selected images, faithfulness over the test images:
    on the CPU at most `max_images` of them (class-stratified, seeded with `seed`; None:
    all), on a GPU all (the Parquets' `cnnatlas.images` metadata says which).

    `classes` (a ClassSpace, or the class list when class i is output i) gives the
    output of each true class and the name of every predicted output.

    Writes `{image_id:05d}.png` per selected image and `overview.png` (all of them) in
    `overlays_dir`, the per-image and summary Parquet tables and the summary figure.
    Returns the summary.
    """
    dev = resolve_device(device)
    model = model.eval().to(dev)
    if dev.type == "cpu":  # batches cut to fit the job's memory
        batch_size = fit_batch(
            model, transform, batch_size, mem_mb, "explain.saliency.batch_size",
            "render_saliency",
        )  # fmt: skip
    tf = make_transform(transform)
    if not layer:
        layer = find_target_layer(model, tf.spec.channels, tf.spec.crop)
    log.info("Grad-CAM target layer: %s", layer)
    with open_methods(model, layer, methods, batch_size) as cams:
        figures = _overlays(cams, selection, transform, classes, dev, batch_size)
    overlays_dir = Path(overlays_dir)
    for fig, image_id in zip(figures, selection["image_id"], strict=True):
        save_png(fig, overlays_dir / f"{image_id:05d}.png")
    save_png(vstack(figures, gap=6), overlays_dir / "overview.png")
    sample, note = bound_images(
        predictions, max_images, seed, dev.type == "cpu", "explain.saliency.max_images"
    )
    ds = ImageDataset(sample["path"].tolist(), tf)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    per_image = faithfulness(
        model, layer, loader, methods, fraction, blur, seed, batch_size, dev
    )
    # the loader yields row positions; name the images by their image_id
    per_image["image_id"] = sample["image_id"].to_numpy()[per_image["image_id"]]
    per_image = per_image.merge(
        sample[["image_id", "label", "label_name", "correct"]], on="image_id"
    )
    meta = {"cnnatlas.gradcam_layer": layer, "cnnatlas.fraction": str(fraction)}
    meta |= note
    write_parquet(per_image, per_image_out, meta=meta)
    summary = summarize_faithfulness(per_image)
    write_parquet(summary, summary_out, meta=meta)
    plot_faithfulness(summary, figure_out, fraction)
    return summary
