"""Can the saliency maps be trusted? Deletion/insertion, ROAD and the randomisation check
for every method, on a bounded, seeded sample of images, with aggregates and verdicts.

`check_saliency` runs the three checks of `perturb` and `randomise` batch by batch on
the model's device, so memory does not grow with the number of images: per batch the
maps of every method come from one forward pass, the curves need one forward pass per
step, and the randomisation cascade is replayed from the top for the batch (the same
seeded random weights every time).
"""

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from cnnatlas.explain.gradcam import find_target_layer, gaussian_blur
from cnnatlas.explain.inputs import fit_batch
from cnnatlas.explain.perturb import (
    auc,
    deletion_insertion,
    end_probs,
    road_curves,
    saliency_rank,
    step_fractions,
)
from cnnatlas.explain.randomise import (
    cascade,
    half_index,
    parameter_layers,
    spearman_rows,
    step_bounds,
)
from cnnatlas.explain.render import to_rgb
from cnnatlas.explain.saliency import (
    METHODS,
    SaliencyMethod,
    open_methods,
    saliency_maps,
)
from cnnatlas.explain.select import bound_images, sample_images
from cnnatlas.io import atomic_path, write_parquet
from cnnatlas.logs import Progress
from cnnatlas.torchutil import ImageDataset, make_transform, resolve_device

__all__ = [
    "sample_images",
    "check_saliency",
    "summarize_checks",
    "draw_curves",
    "draw_cascade",
    "save_cascade",
    "load_cascade",
    "render_saliency_checks",
    "layer_channels",
    "passes_per_image",
    "check_passes",
    "fit_check_budget",
    "forward_gflop",
    "MIN_IMAGES",
    "MIN_CASCADE",
]

log = logging.getLogger(__name__)

RANDOM = "random"
# AUCs closer than this to the random order's are called a tie in the verdicts
TIE = 0.01


def _classes(
    methods: Sequence[str | type[SaliencyMethod]],
) -> list[type[SaliencyMethod]]:
    return [METHODS[m] if isinstance(m, str) else m for m in methods]


def _curve_rows(ids, name, dele, ins, fr, road=None) -> pd.DataFrame:
    d, i = dele.cpu().numpy(), ins.cpu().numpy()
    out = {
        "image_id": ids,
        "method": name,
        "deletion": list(d.astype(np.float32)),
        "insertion": list(i.astype(np.float32)),
        "deletion_auc": auc(d, fr).astype(np.float32),
        "insertion_auc": auc(i, fr).astype(np.float32),
    }
    if road is None:
        empty = np.zeros(0, np.float32)
        out |= {"road_morf": [empty] * len(ids), "road_lerf": [empty] * len(ids)}
        nan = np.full(len(ids), np.nan, np.float32)
        return pd.DataFrame(out | {"road_morf_mean": nan, "road_lerf_mean": nan})
    morf, lerf = (r.cpu().numpy().astype(np.float32) for r in road)
    out |= {
        "road_morf": list(morf),
        "road_lerf": list(lerf),
        "road_morf_mean": morf.mean(1),
        "road_lerf_mean": lerf.mean(1),
    }
    return pd.DataFrame(out)


def _curves(
    model: nn.Module,
    x: torch.Tensor,
    ids: np.ndarray,
    maps: Mapping[str, torch.Tensor],
    cls: torch.Tensor,
    opts: Mapping[str, Any],
    gens: Mapping[str, torch.Generator],
) -> pd.DataFrame:
    """Deletion/insertion and ROAD per method, deletion/insertion for a random order."""
    fr = step_fractions(opts["step"])
    baseline = gaussian_blur(x, opts["blur"] * max(x.shape[2:]))
    ends = end_probs(model, x, baseline, cls)
    noise = opts["road_noise"]
    parts = []
    for name, m in maps.items():
        rank = saliency_rank(m)
        dele, ins = deletion_insertion(model, x, baseline, rank, cls, fr, ends)
        fractions = list(opts["road_fractions"])
        road = road_curves(model, x, rank, cls, fractions, noise, gens["road"])
        parts.append(_curve_rows(ids, name, dele, ins, fr, road))
    hw = x.shape[2] * x.shape[3]
    order = torch.rand(len(x), hw, generator=gens["order"]).to(x.device)
    rank = saliency_rank(order)
    dele, ins = deletion_insertion(model, x, baseline, rank, cls, fr, ends)
    parts.append(_curve_rows(ids, RANDOM, dele, ins, fr))
    return pd.concat(parts)


def _randomised(
    model: nn.Module,
    layer: str,
    classes: Sequence[type[SaliencyMethod]],
    x: torch.Tensor,
    ids: np.ndarray,
    maps: Mapping[str, torch.Tensor],
    cls: torch.Tensor,
    opts: Mapping[str, Any],
    tick: Callable[[int], None] = lambda n: None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], list[int]]:
    """Spearman of every method's maps along the cascade (on `x`, in chunks of
    batch_size); the first image's maps at every step; the layers randomised per step."""
    trained = {n: m.flatten(1).cpu().numpy() for n, m in maps.items()}
    example = {n: [m[0].cpu().numpy()] for n, m in maps.items()}
    rows, counts, bs = [], [], opts["batch_size"]
    steps = cascade(model, opts["seed"], opts.get("cascade_steps"))
    for k, top, random_model in steps:
        counts.append(k)
        parts: dict[str, list[torch.Tensor]] = {n: [] for n in maps}
        with open_methods(random_model, layer, classes, bs) as cams:
            for i in range(0, len(x), bs):
                _, rmaps = saliency_maps(cams, x[i : i + bs], {"pred": cls[i : i + bs]})
                for name in maps:
                    parts[name].append(rmaps[(name, "pred")])
                tick(len(x[i : i + bs]))
        for name in maps:
            r = torch.cat(parts[name])
            rho = spearman_rows(trained[name], r.flatten(1).cpu().numpy())
            frame = {"image_id": ids, "method": name, "layers_randomised": k}
            frame |= {"layer": top, "spearman": rho.astype(np.float32)}
            rows.append(pd.DataFrame(frame))
            example[name].append(r[0].cpu().numpy())
    stacked = {n: np.stack(v).astype(np.float32) for n, v in example.items()}
    return pd.concat(rows), stacked, counts


class _Counter:
    """A forward pre-hook that adds each call's batch size to a Progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __call__(self, _module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            self.progress.update(len(args[0]))


def passes_per_image(
    n_methods: int, options: Mapping[str, Any], scorecam_channels: int = 0
) -> int:
    """Forward passes of one image through the model in the checks (without the
    randomisation cascade): the maps, the curves' two shared ends, deletion and
    insertion at every inner fraction for each method and the random order, ROAD both
    ways at each of its fractions for each method, and Score-CAM's masked passes."""
    inner = max(len(step_fractions(options["step"])) - 2, 0)
    road = len(options["road_fractions"])
    return (
        1 + 2 + 2 * inner * (n_methods + 1) + 2 * road * n_methods + scorecam_channels
    )


# the budget's floors: it never cuts the checks below this many images (cascade images)
MIN_IMAGES = 10
MIN_CASCADE = 4


def check_passes(
    images: int,
    cascade_images: int,
    steps: int,
    n_methods: int,
    options: Mapping[str, Any],
    scorecam_channels: int = 0,
) -> int:
    """Forward-pass equivalents of the checks: each image's passes (`passes_per_image`)
    and its maps' backward (2), and per cascade image and step a forward and backward (3)
    and Score-CAM's masked passes."""
    per_image = passes_per_image(n_methods, options, scorecam_channels) + 2
    return images * per_image + cascade_images * steps * (3 + scorecam_channels)


def fit_check_budget(
    gflop: float,
    available: int,
    steps: int,
    n_methods: int,
    options: Mapping[str, Any],
    scorecam_channels: int = 0,
) -> tuple[int, int]:
    """(images, cascade images) of the checks: at most `max_images` of the `available`
    images and `cascade_images` of those. When they would cost more than `budget_gflop`
    (`check_passes` x `gflop`, one image's forward pass), fewer cascade images (down to
    MIN_CASCADE), then fewer images (down to MIN_IMAGES) are checked; null: no budget."""
    images = available
    if options["max_images"] is not None:
        images = min(available, options["max_images"])
    cascade = images
    if options.get("cascade_images") is not None:
        cascade = min(images, options["cascade_images"])
    budget = options.get("budget_gflop")
    if budget is None or gflop <= 0:
        return images, cascade
    room = budget / gflop  # passes the budget allows

    def cost(i: int, c: int) -> int:
        return check_passes(i, c, steps, n_methods, options, scorecam_channels)

    if cost(images, cascade) > room:
        fit = int((room - cost(images, 0)) // cost(0, 1))
        cascade = max(min(MIN_CASCADE, cascade), min(cascade, fit))
    if cost(images, cascade) > room:
        fit = int((room - cost(0, cascade)) // cost(1, 0))
        images = max(min(MIN_IMAGES, images), min(images, fit))
        cascade = min(cascade, images)
    return images, cascade


def forward_gflop(model: nn.Module, x: torch.Tensor) -> float:
    """GFLOP of one forward pass of the image batch `x` [1, C, H, W], counted by
    torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 1e9


def check_saliency(
    model: nn.Module,
    layer: str,
    loader: DataLoader,
    methods: Sequence[str | type[SaliencyMethod]],
    options: Mapping[str, Any],
    device: torch.device | str = "cpu",
    cascade_positions: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Every check for every method on the images `loader` yields as (inputs, image_ids).

    `options`: step (fraction of pixels per deletion/insertion step), blur (sigma of the
    blurred baseline, fraction of the image side), road_fractions, road_noise, seed
    (random order, ROAD noise and the random weights), batch_size, and optionally
    cascade_steps (the randomisation cascade in at most this many steps; None or
    missing: one per layer). The randomisation check runs on the images whose
    image_ids are in `cascade_positions` (None: every image), after the curves. The
    target class is the trained model's prediction. Returns (curves: one row per image
    and method plus the random order, randomisation: one row per checked image, method
    and step, cascade: the first such image's maps at every step, for figures).
    """
    classes = _classes(methods)
    model = model.eval().to(device)
    seed = options["seed"]
    gens = {
        "order": torch.Generator().manual_seed(seed),
        "road": torch.Generator().manual_seed(seed + 1),
    }
    wanted = None if cascade_positions is None else set(map(int, cascade_positions))
    n_images = len(loader.dataset) if hasattr(loader, "dataset") else None
    groups = parameter_layers(model)
    n_steps = len(step_bounds(len(groups), options.get("cascade_steps")))
    scorecam = sum(c.passes_per_channel for c in classes)
    curves, keep_x, keep_ids, keep_maps, keep_cls = [], [], [], [], []
    progress, hooks, per_cascade = None, [], 1
    try:
        for x, ids in loader:
            ids = np.asarray(ids, dtype=np.int64)
            x = x.to(device)
            if progress is None:
                channels = layer_channels(model, layer, x[:1]) if scorecam else 0
                per_cascade = 1 + scorecam * channels
                n_cascade = n_images if wanted is None else len(wanted)
                total = None
                if n_images is not None:
                    per_image = passes_per_image(
                        len(classes), options, scorecam * channels
                    )
                    total = n_images * per_image + n_cascade * n_steps * per_cascade
                progress = Progress(
                    total, "saliency checks", "image passes"
                ).__enter__()
                hooks = _count_passes(model, progress)
            with open_methods(model, layer, classes, options["batch_size"]) as cams:
                logits, both = saliency_maps(cams, x, {"pred": None})
            maps = {c.name: both[(c.name, "pred")] for c in classes}
            cls = logits.argmax(1)
            curves.append(_curves(model, x, ids, maps, cls, options, gens))
            pick = [i for i, j in enumerate(ids) if wanted is None or j in wanted]
            if pick:
                keep_x.append(x[pick])
                keep_ids.append(ids[pick])
                keep_cls.append(cls[pick])
                keep_maps.append({n: m[pick] for n, m in maps.items()})
    finally:
        for h in hooks:
            h.remove()
    if progress is None:
        raise ValueError("check_saliency: the loader yielded no images")
    if not keep_x:
        raise ValueError("check_saliency: no image of cascade_positions was checked")
    rand, example, counts = _randomised(
        model,
        layer,
        classes,
        torch.cat(keep_x),
        np.concatenate(keep_ids),
        {n: torch.cat([m[n] for m in keep_maps]) for n in keep_maps[0]},
        torch.cat(keep_cls),
        options,
        lambda n: progress.update(n * per_cascade),
    )
    progress.__exit__(None)
    first = (keep_x[0][0].cpu().numpy(), int(keep_ids[0][0]))
    names = [g[0] for g in reversed(groups)]
    tops = [names[a] for a, _ in step_bounds(len(groups), options.get("cascade_steps"))]
    cascade_maps = {
        "methods": [c.name for c in classes],
        "titles": [c.title for c in classes],
        "layers": tops,
        "randomised": counts,
        "maps": np.stack([example[c.name] for c in classes]),
        "image": first[0],
        "image_id": first[1],
    }
    return (
        pd.concat(curves, ignore_index=True),
        rand.reset_index(drop=True),
        cascade_maps,
    )


def layer_channels(model: nn.Module, layer: str, x: torch.Tensor) -> int:
    """Channels of `layer`'s output (for Score-CAM's cost), from one image."""
    seen: list[int] = []
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[1]))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        handle.remove()
    return seen[0]


def _count_passes(model: nn.Module, progress: Progress) -> list:
    return [model.register_forward_pre_hook(_Counter(progress))]


def _against(diff: float, se: float = math.nan) -> str:
    """How a curve's AUC compares with the random order's; `diff` > 0 is better. A
    difference within TIE, or within twice its standard error over the images (`se`),
    is a tie: a small sample does not show a method better or worse."""
    band = max(TIE, 2 * se) if math.isfinite(se) else TIE
    if diff > band:
        return "beats random order"
    if diff < -band:
        return "loses to random order"
    return "ties with random order"


def _faith_words(r: Mapping[str, Any]) -> str:
    dele = _against(r["deletion_auc_random"] - r["deletion_auc"], r["deletion_diff_se"])
    ins = _against(
        r["insertion_auc"] - r["insertion_auc_random"], r["insertion_diff_se"]
    )
    return f"deletion {dele}, insertion {ins}"


def _se(diff: pd.Series) -> float:
    """Standard error of a mean of per-image differences (NaN for fewer than 2)."""
    return float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else math.nan


def half_step(counts: Sequence[int]) -> int:
    """The first step's layer count at which at least half the layers are random."""
    counts = sorted(counts)
    return next(k for k in counts if k >= half_index(counts[-1]))


def _verdict(title: str, r: Mapping[str, Any], half: int, n_layers: int, thr: float):
    if pd.isna(r["randomisation_passed"]):
        check = "randomisation check not run on these images"
    else:
        check = "passes" if r["randomisation_passed"] else "fails"
        check = (
            f"{check} the randomisation check (mean Spearman {r['spearman_half']:.2f} "
            f"once {half} of {n_layers} layers are random; passing needs < {thr:g})"
        )
    return (
        f"{title}: {check}; deletion AUC {r['deletion_auc']:.2f} against "
        f"{r['deletion_auc_random']:.2f} for random order, insertion AUC "
        f"{r['insertion_auc']:.2f} against {r['insertion_auc_random']:.2f} ("
        f"{_faith_words(r)}"
        f"); ROAD {r['road_morf']:.2f} most-relevant-first, {r['road_lerf']:.2f} "
        "least-relevant-first"
    )


def summarize_checks(
    curves: pd.DataFrame,
    randomisation: pd.DataFrame,
    images: pd.DataFrame,
    threshold: float,
    titles: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Means per method for all images, per true class and for correct vs misclassified.

    `images` has image_id, label_name and correct. A method passes the randomisation
    check when its mean Spearman correlation is below `threshold` once half the layers
    (rounded up) are random. Columns: method, group, value, n, deletion_auc,
    deletion_auc_random, insertion_auc, insertion_auc_random, road_morf, road_lerf,
    road_score ((LeRF - MoRF) / 2, pytorch-grad-cam's ROADCombined), deletion_diff_se
    and insertion_diff_se (standard errors of the per-image AUC differences from the
    random order: a difference within twice its standard error, or within 0.01, is
    called a tie), spearman_half,
    spearman_last, layers, n_randomised (images in the randomisation check with a
    defined correlation: not a constant trained map),
    randomisation_passed (missing where the check ran on none of the group's images),
    verdict (in plain words). With a cascade in fewer steps than layers, "half" is the
    first step at which at least half the layers are random.
    """
    titles = titles or {}
    n_layers = int(randomisation["layers_randomised"].max())
    half = half_step(randomisation["layers_randomised"].unique())
    info = images[["image_id", "label_name", "correct"]].assign(
        outcome=lambda d: np.where(d["correct"], "correct", "misclassified"), all="all"
    )
    rnd = curves[curves["method"] == RANDOM].set_index("image_id")
    rho = randomisation.pivot_table(
        index=["method", "image_id"],
        columns="layers_randomised",
        values="spearman",
        dropna=False,
    )
    rows = []
    for group, col in (("all", "all"), ("class", "label_name"), ("outcome", "outcome")):
        for value, g in info.groupby(col, sort=True):
            ids = g["image_id"].to_numpy()
            for method in dict.fromkeys(curves["method"]):
                if method == RANDOM:
                    continue
                c = curves[curves["method"] == method].set_index("image_id").loc[ids]
                r = rho.loc[method].reindex(ids).dropna(how="all")
                row = {
                    "method": method,
                    "group": group,
                    "value": str(value),
                    "n": len(ids),
                    "deletion_diff_se": _se(
                        rnd.loc[ids, "deletion_auc"] - c["deletion_auc"]
                    ),
                    "insertion_diff_se": _se(
                        c["insertion_auc"] - rnd.loc[ids, "insertion_auc"]
                    ),
                    "deletion_auc": c["deletion_auc"].mean(),
                    "deletion_auc_random": rnd.loc[ids, "deletion_auc"].mean(),
                    "insertion_auc": c["insertion_auc"].mean(),
                    "insertion_auc_random": rnd.loc[ids, "insertion_auc"].mean(),
                    "road_morf": c["road_morf_mean"].mean(),
                    "road_lerf": c["road_lerf_mean"].mean(),
                    # images whose trained map is constant (NaN) are left out
                    "spearman_half": r[half].mean(),
                    "spearman_last": r[n_layers].mean(),
                    "layers": n_layers,
                    "n_randomised": len(r),
                }
                row["road_score"] = (row["road_lerf"] - row["road_morf"]) / 2
                passed = bool(row["spearman_half"] < threshold) if len(r) else pd.NA
                row["randomisation_passed"] = passed
                row["verdict"] = _verdict(
                    titles.get(method, method), row, half, n_layers, threshold
                )
                rows.append(row)
    out = pd.DataFrame(rows)
    floats = [c for c in out.columns if out[c].dtype == np.float64]
    out = out.astype({c: np.float32 for c in floats})
    return out.astype({"randomisation_passed": "boolean"})


def draw_curves(
    fig: Figure,
    curves: pd.DataFrame,
    fractions: Sequence[float],
    titles: Mapping[str, str] | None = None,
) -> list:
    """Deletion and insertion curves in two panels of `fig`: per method the mean over
    images with a band from the 25th to the 75th percentile; random order dashed grey."""
    titles = titles or {}
    axes = fig.subplots(1, 2, sharey=True)
    x = np.asarray(fractions)
    methods = list(dict.fromkeys(curves["method"]))
    colours = dict(zip(methods, [f"C{i}" for i in range(len(methods))], strict=False))
    for ax, kind in zip(axes, ("deletion", "insertion"), strict=True):
        for m in methods:
            y = np.stack(curves.loc[curves["method"] == m, kind].to_numpy())
            area = auc(y, x).mean()
            random = m == RANDOM
            label = f"{'random order' if random else titles.get(m, m)} ({area:.2f})"
            style = {"color": "0.45", "ls": "--"} if random else {"color": colours[m]}
            ax.plot(x, y.mean(0), label=label, lw=1.2, **style)
            lo, hi = np.percentile(y, [25, 75], axis=0)
            ax.fill_between(x, lo, hi, alpha=0.15, lw=0, color=style["color"])
        verb = "removed" if kind == "deletion" else "put back"
        ax.set_xlabel(f"fraction of pixels {verb}")
        ax.set_title(f"{kind} (AUC)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize="x-small", frameon=False)
    axes[0].set_ylabel("probability of the predicted class")
    return list(axes)


def draw_cascade(
    fig: Figure,
    cascade_maps: Mapping[str, Any],
    randomisation: pd.DataFrame,
    threshold: float,
) -> list:
    """Rows = methods, columns = the input, the trained model and each further layer
    randomised from the top, for one image; each map scaled to its own maximum, the mean
    Spearman correlation over all checked images above it."""
    maps, image = cascade_maps["maps"], cascade_maps["image"]
    methods, layers = list(cascade_maps["methods"]), list(cascade_maps["layers"])
    counts = list(cascade_maps.get("randomised", range(1, len(layers) + 1)))
    rho = randomisation.groupby(["method", "layers_randomised"])["spearman"].mean()
    half = half_step(counts)
    axes = fig.subplots(len(methods), len(layers) + 2, squeeze=False)
    for i, m in enumerate(methods):
        axes[i, 0].imshow(image, interpolation="nearest")
        axes[i, 0].set_ylabel(cascade_maps["titles"][i], fontsize="small")
        for k in range(len(layers) + 1):
            ax = axes[i, k + 1]
            peak = float(maps[i, k].max())
            ax.imshow(
                maps[i, k] / peak if peak > 0 else maps[i, k],
                cmap="magma",
                vmin=0,
                vmax=1,
                interpolation="bilinear",
            )
            if k:
                r = rho.get((m, counts[k - 1]), np.nan)
                bold = "bold" if counts[k - 1] == half else "normal"
                colour = "C2" if r < threshold else "C3"
                ax.set_title(f"{r:.2f}", fontsize="x-small", color=colour, weight=bold)
    steps = [f"+{n}" for n in layers]
    if counts != list(range(1, len(layers) + 1)):  # several layers per step
        steps = [f"+{n} ({c})" for n, c in zip(layers, counts, strict=True)]
    for k, name in enumerate(["input", "trained"] + steps):
        axes[-1, k].set_xlabel(name, fontsize="x-small", rotation=30, ha="right")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return list(axes.flat)


def save_cascade(cascade_maps: Mapping[str, Any], path: str | Path) -> None:
    """The cascade example as .npz (maps [methods, 1 + layers, H, W], image, names)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            maps=cascade_maps["maps"],
            image=cascade_maps["image"],
            image_id=np.int64(cascade_maps["image_id"]),
            methods=np.array(cascade_maps["methods"]),
            titles=np.array(cascade_maps["titles"]),
            layers=np.array(cascade_maps["layers"]),
            randomised=np.array(
                cascade_maps.get(
                    "randomised", range(1, len(cascade_maps["layers"]) + 1)
                ),
                dtype=np.int64,
            ),
        )


def load_cascade(path: str | Path) -> dict[str, Any]:
    """What `save_cascade` wrote, with the names as lists."""
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    for k in ("methods", "titles", "layers", "randomised"):
        if k in out:
            out[k] = out[k].tolist()
    return out


def _save(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


def _budget(
    model: nn.Module,
    layer: str,
    tf: Any,
    dev: torch.device,
    available: int,
    n_steps: int,
    methods: Sequence[str],
    options: Mapping[str, Any],
) -> tuple[int, int]:
    """`fit_check_budget` for `model` at the transform's input size; a cut is logged as
    a warning that names the keys."""
    x = torch.zeros(1, tf.spec.channels, tf.spec.crop, tf.spec.crop, device=dev)
    score = sum(c.passes_per_channel for c in _classes(methods))
    channels = layer_channels(model, layer, x) if score else 0
    gflop = forward_gflop(model, x)
    images, cascade = fit_check_budget(
        gflop, available, n_steps, len(methods), options, score * channels
    )
    asked = fit_check_budget(
        gflop, available, n_steps, len(methods), {**options, "budget_gflop": None}
    )
    if (images, cascade) != asked:
        need = check_passes(*asked, n_steps, len(methods), options, score * channels)
        log.warning(
            "the saliency checks would cost %.4g GFLOP on %d images (%d through the "
            "cascade) at %.3g GFLOP per forward pass, more than explain.trust."
            "budget_gflop (%g): they run on %d images, %d of them through the "
            "cascade; raise the budget or set it to null for more",
            need * gflop, asked[0], asked[1], gflop, options["budget_gflop"],
            images, cascade,
        )  # fmt: skip
    return images, cascade


def render_saliency_checks(
    predictions: pd.DataFrame,
    model: nn.Module,
    transform: Mapping[str, Any],
    out: Mapping[str, str | Path],
    methods: Sequence[str],
    layer: str | None,
    options: Mapping[str, Any],
    device: str,
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Run `check_saliency` on a sample of `predictions` and write every output.

    On every device at most `options["max_images"]` images (class-stratified, seeded),
    of which `options["cascade_images"]` (a class-stratified sample of those) go
    through the randomisation cascade, fewer where they would cost more than
    `options["budget_gflop"]` (`fit_check_budget`). `out` names the paths: curves,
    randomisation, summary (Parquet), cascade (.npz), curves_figure, cascade_figure
    (PNG). Returns the summary. On the CPU the batches are cut to fit `mem_mb` (the job's memory).
    """
    dev = resolve_device(device)
    model = model.eval().to(dev)
    if dev.type == "cpu":
        options = dict(options) | {"batch_size": fit_batch(
            model, transform, options["batch_size"], mem_mb,
            "explain.trust.batch_size", "check_saliency",
        )}  # fmt: skip
    tf = make_transform(transform)
    layer = layer or find_target_layer(model, tf.spec.channels, tf.spec.crop)
    n_layers = len(parameter_layers(model))
    n_steps = len(step_bounds(n_layers, options.get("cascade_steps")))
    images, n_cascade = _budget(
        model, layer, tf, dev, len(predictions), n_steps, methods, options
    )
    key = "explain.trust.max_images"
    if options["max_images"] is not None and images < options["max_images"]:
        key = "explain.trust.budget_gflop"
    sample, note = bound_images(
        predictions, images, options["seed"], True, key, every_device=True
    )
    sub = sample_images(sample, n_cascade, options["seed"])
    positions = np.searchsorted(sample["image_id"], sub["image_id"])
    log.info(
        "saliency checks of %s at %s on %d images (explain.trust.max_images); the "
        "randomisation cascade on %d of them (explain.trust.cascade_images) in %d steps "
        "over %d layers (explain.trust.cascade_steps); deletion/insertion in steps of "
        "%g (explain.trust.step), ROAD at %s (explain.trust.road_fractions)",
        ", ".join(methods), layer, len(sample), len(sub), n_steps, n_layers,
        options["step"], list(options["road_fractions"]),
    )  # fmt: skip
    ds = ImageDataset(sample["path"].tolist(), tf)
    loader = DataLoader(ds, batch_size=options["batch_size"], shuffle=False)
    curves, rand, example = check_saliency(
        model, layer, loader, methods, options, dev, positions.tolist()
    )
    ids = sample["image_id"].to_numpy()
    # the loader yields row positions of the sample; name the images by image_id
    curves["image_id"] = ids[curves["image_id"]]
    rand["image_id"] = ids[rand["image_id"]]
    example["image_id"] = int(ids[example["image_id"]])
    example["image"] = to_rgb(
        torch.from_numpy(example["image"]), tf.spec.mean, tf.spec.std
    )
    fractions = step_fractions(options["step"])
    meta = {
        "cnnatlas.saliency_layer": layer,
        "cnnatlas.fractions": json.dumps([float(f) for f in fractions]),
        "cnnatlas.road_fractions": json.dumps(list(options["road_fractions"])),
        "cnnatlas.threshold": str(options["threshold"]),
    } | note
    info = sample[["image_id", "label", "label_name", "correct"]]
    write_parquet(curves.merge(info, on="image_id"), out["curves"], meta=meta)
    write_parquet(rand.merge(info, on="image_id"), out["randomisation"], meta=meta)
    titles = {c.name: c.title for c in _classes(methods)}
    summary = summarize_checks(curves, rand, info, options["threshold"], titles)
    write_parquet(summary, out["summary"], meta=meta)
    for line in summary.loc[summary["group"] == "all", "verdict"]:
        log.info("%s", line)
    save_cascade(example, out["cascade"])
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    draw_curves(fig, curves, fractions, titles)
    _save(fig, out["curves_figure"])
    n = len(example["layers"]) + 2
    fig = Figure(figsize=(0.9 * n, 0.95 * len(titles) + 0.6), layout="constrained")
    draw_cascade(fig, example, rand, options["threshold"])
    _save(fig, out["cascade_figure"])
    return summary
