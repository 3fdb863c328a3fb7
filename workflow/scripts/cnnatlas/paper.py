"""Camera-ready figures listed as data in the config's `paper:` section.

Seven kinds, each drawn from what the workflow already makes: `layer_grid` (checkpoints x
layers maps of one model), `perplexity_sweep` (seeds x perplexities t-SNE maps of one
layer), `saliency` (Grad-CAM of listed images, recomputed from the checkpoint), `filters`
(activation-maximisation images of a layer's channels, recomputed with the explain
stage's seed so they match its grids) and `separation` (kNN accuracy in feature space per
layer, one line per checkpoint, from the maps stage's per-layer metrics),
`saliency_curves` (deletion/insertion curves of every checked saliency method) and
`saliency_randomisation` (the randomisation cascade), both from the explain stage's
saliency checks of one checkpoint.

Every figure is exactly 3.5 in (single column) or 7.2 in (double) wide, uses the configured
font sizes, keeps its text vector in the PDF (TrueType), rasterises scatter points above
`plots.RASTER_ABOVE`, letters its panels (a, b, ...) when it has more than one, and carries
the run's short hash in its file metadata (PDF Subject/Keywords, PNG text chunk), not in the
picture. Metadata holds no date, so reruns write the same bytes.
"""

import importlib
import logging
import string
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from cnnatlas import plots  # noqa: E402
from cnnatlas.classes import OTHER, ClassSpace  # noqa: E402
from cnnatlas.errors import CnnatlasError  # noqa: E402
from cnnatlas.io import atomic_path, read_predictions  # noqa: E402
from cnnatlas.plan import paper as plan_paper  # noqa: E402
from cnnatlas.provenance import package_versions, run_hash, sha256_file  # noqa: E402
from cnnatlas.schema import default, defaults  # noqa: E402

__all__ = [
    "WIDTHS",
    "KINDS",
    "paper_fonts",
    "HASH_KEY",
    "figure_run_hash",
    "letter_panels",
    "embedding_grid",
    "gradcam_figure",
    "filters_figure",
    "separation_figure",
    "saliency_curves_figure",
    "saliency_randomisation_figure",
    "similarity_figure",
    "save_paper_figure",
    "draw_grid",
    "draw_separation",
    "draw_saliency",
    "draw_filters",
    "draw_saliency_curves",
    "draw_saliency_randomisation",
    "draw_similarity",
    "draw_function",
    "draw_figure",
]

log = logging.getLogger(__name__)

WIDTHS = {"single": 3.5, "double": 7.2}
KINDS = tuple(plan_paper.KINDS)
HASH_KEY = "cnnatlas.run_hash"
_LEGEND_LINE = 0.22  # inches below the panels per line of the class legend
_LEGEND_COLUMNS = {"single": 6, "double": 11}


def figure_run_hash(
    config: Mapping[str, Any],
    checkpoints: Mapping[str, str | Path],
    manifest: str | Path,
) -> str:
    """provenance.run_hash of this run, computed from its inputs (not from provenance.json)."""
    ckpt = {name: sha256_file(p) for name, p in sorted(checkpoints.items())}
    return run_hash(config, ckpt, sha256_file(manifest), package_versions())


def paper_fonts(fonts: Mapping[str, float] | None = None) -> dict[str, float]:
    """`fonts` over the schema's defaults of paper.font_size, title_size, letter_size."""
    return {k: {**defaults("paper"), **(fonts or {})}[k] for k in plan_paper.FONT_KEYS}


def _rc(fonts: Mapping[str, float]) -> dict[str, Any]:
    size = fonts["font_size"]
    return {
        "font.size": size,
        "axes.titlesize": fonts["title_size"],
        "axes.labelsize": size,
        "xtick.labelsize": size,
        "ytick.labelsize": size,
        "legend.fontsize": size,
        "legend.title_fontsize": size,
        "pdf.fonttype": 42,
    }


def letter_panels(axes: Sequence[Any], size: float) -> None:
    """Bold letters a, b, c, ... at the top-left corner of each axes (only if more than one)."""
    if len(axes) < 2:
        return
    letters = string.ascii_lowercase
    for i, ax in enumerate(axes):
        label = letters[i % 26] * (1 + i // 26)
        ax.text(
            -0.02,
            1.02,
            label,
            transform=ax.transAxes,
            fontsize=size,
            fontweight="bold",
            ha="right",
            va="bottom",
        )


def _figure(width: str, rows: int, cols: int, extra: float = 0.0) -> Figure:
    inches = WIDTHS[width]
    side = inches / cols
    return plt.figure(figsize=(inches, side * rows + extra), layout="constrained")


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _class_legend(
    fig: Figure, classes: Sequence[str], any_wrong: bool, ncol: int
) -> None:
    handles = [
        Line2D([], [], linestyle="", marker=s.marker, color=s.colour, markersize=4)
        for s in plots.class_styles(classes)
    ]
    labels = list(classes)
    if any_wrong:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markerfacecolor="#DDDDDD",
                markeredgecolor="black",
                markersize=4,
            )
        )
        labels.append("misclassified")
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(ncol, len(handles)),
        frameon=False,
        handletextpad=0.1,
        columnspacing=0.8,
    )


def embedding_grid(
    panels: Sequence[Mapping[str, Any]],
    rows: Sequence[str],
    cols: Sequence[str],
    width: str,
    fonts: Mapping[str, float] | None,
    colour_by: str,
) -> Figure:
    """Maps on a rows x cols grid; each panel {row, col, embedding, predictions} (2-D maps).

    Rows and columns are labelled at the edges; one class legend below the grid.
    """
    loaded = [plots.load_points(p["embedding"], p["predictions"]) for p in panels]
    classes = max((cls for _, cls in loaded), key=len, default=[])
    wrong = any(bool((~df["correct"]).any()) for df, _ in loaded)
    legend = colour_by in ("label", "pred")
    # predictions of no dataset class come last (load_points); no label is one of them
    shown = (
        classes[:-1] if colour_by == "label" and classes[-1:] == [OTHER] else classes
    )
    ncol = _LEGEND_COLUMNS[width]
    lines = -(-(len(shown) + wrong) // ncol) if legend else 0
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        fig = _figure(width, len(rows), len(cols), _LEGEND_LINE * lines)
        spec = fig.add_gridspec(len(rows), len(cols))
        axes = []
        for p, (df, _) in zip(panels, loaded, strict=True):
            i, j = rows.index(p["row"]), cols.index(p["col"])
            ax = fig.add_subplot(spec[i, j])
            _bare(ax)
            ax.set_aspect("equal", adjustable="datalim")
            size = float(np.clip(150 / np.sqrt(len(df)), 0.5, 12))
            plots._draw(ax, df, colour_by, classes, 2, size)
            if i == 0:
                ax.set_title(str(p["col"]))
            if j == 0:
                ax.set_ylabel(str(p["row"]))
            axes.append(ax)
        if legend:
            _class_legend(fig, shown, wrong, ncol)
        letter_panels(axes, fonts["letter_size"])
    return fig


def gradcam_figure(
    model,
    transform: Mapping[str, Any],
    predictions: pd.DataFrame,
    image_ids: Sequence[int],
    classes: ClassSpace | Sequence[str],
    layer: str | None = None,
    width: str = "single",
    fonts: Mapping[str, float] | None = None,
    device: str = default("extract.device"),
) -> Figure:
    """One column per listed image: the input above its Grad-CAM (predicted class) overlay."""

    from cnnatlas.explain.gradcam import find_target_layer
    from cnnatlas.explain.inputs import load_inputs
    from cnnatlas.explain.render import to_rgb
    from cnnatlas.explain.saliency import method_class
    from cnnatlas.torchutil import resolve_device, transform_spec

    missing = sorted(set(image_ids) - set(predictions["image_id"]))
    if missing:
        raise CnnatlasError(
            f"paper figure image_ids {missing} are not image_ids of the predictions "
            f"(0..{len(predictions) - 1}); fix the paper section of the config"
        )
    rows = predictions.set_index("image_id").loc[list(image_ids)]
    space = ClassSpace.of(classes).shown()  # titles (`tench`) where the file gives them
    dev = resolve_device(device)
    model = model.eval().to(dev)
    spec = transform_spec(transform)
    layer = layer or find_target_layer(model, spec.channels, spec.crop)
    x = load_inputs(rows["path"].tolist(), transform).to(dev)
    with method_class("gradcam")(model, layer) as cam:
        logits, maps = cam(x, {"pred": None})
    heat = maps["pred"].cpu().numpy()
    pred = logits.argmax(1).cpu().numpy()
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        fig = _figure(width, 2, len(image_ids), 0.25)
        axes = fig.subplots(2, len(image_ids), squeeze=False)
        for j, image_id in enumerate(image_ids):
            img = to_rgb(x[j], transform["mean"], transform["std"])
            top, bottom = axes[0, j], axes[1, j]
            top.imshow(img, interpolation="nearest")
            bottom.imshow(img, interpolation="nearest")
            peak = float(heat[j].max())
            bottom.imshow(
                heat[j] / peak if peak > 0 else heat[j],
                cmap="jet",
                alpha=0.5,
                vmin=0,
                vmax=1,
                interpolation="bilinear",
            )
            true = space.classes[int(rows["label"].iloc[j])]
            top.set_title(f"#{image_id} true {true}")
            bottom.set_title(f"pred {space.name(pred[j])}")
            for ax in (top, bottom):
                _bare(ax)
        letter_panels(list(axes[0]), fonts["letter_size"])
    log.info("Grad-CAM of %d images at layer %s", len(image_ids), layer)
    return fig


def filters_figure(
    model,
    transform: Mapping[str, Any],
    layer: str,
    channels: int | Sequence[int],
    options: Mapping[str, Any],
    columns: int,
    width: str,
    fonts: Mapping[str, float] | None = None,
    device: str = default("extract.device"),
) -> Figure:
    """Activation-maximisation images of `layer`'s channels, as the explain stage makes them.

    `options` are explain.filters' (steps, lr, seed, jitter, scale, rotate); the seed per
    layer is the explain stage's, so the images equal those of its filter grids.
    """
    from cnnatlas.explain.filters import maximize
    from cnnatlas.explain.render import to_rgb
    from cnnatlas.torchutil import resolve_device

    chans = list(range(channels)) if isinstance(channels, int) else list(channels)
    dev = resolve_device(device)
    images, _, reached = maximize(
        model.eval().to(dev),
        layer,
        chans,
        transform,
        options["steps"],
        options["lr"],
        (options["seed"] + zlib.crc32(layer.encode())) % 2**63,
        options["jitter"],
        options["scale"],
        options["rotate"],
        dev,
    )
    cols = min(columns, len(chans))
    nrows = -(-len(chans) // cols)
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        fig = _figure(width, nrows, cols, 0.1 * nrows)
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            _bare(ax)
            if i >= len(chans):
                ax.set_axis_off()
                continue
            ax.imshow(to_rgb(images[i], [0.0], [1.0]), interpolation="nearest")
            ax.set_title(f"ch {chans[i]}: {float(reached[i]):.2f}")
        letter_panels(list(axes[: len(chans)]), fonts["letter_size"])
    return fig


def separation_figure(
    metrics: pd.DataFrame,
    layers: Sequence[str],
    checkpoints: Sequence[str],
    width: str = "single",
    fonts: Mapping[str, float] | None = None,
) -> Figure:
    """kNN accuracy in feature space per layer (x in `layers` order), one line per checkpoint.

    `metrics` holds the maps stage's rows (knn_features and chance are per layer; the
    first row of each (ckpt, layer) is used). Chance level is a dotted line.
    """
    first = metrics.drop_duplicates(["ckpt", "layer"]).set_index(["ckpt", "layer"])
    x = np.arange(len(layers))
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        inches = WIDTHS[width]
        fig = plt.figure(figsize=(inches, inches * 0.62), layout="constrained")
        ax = fig.add_subplot()
        for k, ckpt in enumerate(checkpoints):
            y = [float(first.loc[(ckpt, layer), "knn_features"]) for layer in layers]
            ax.plot(x, y, "-o", markersize=3, color=plots.PALETTE[k % 10], label=ckpt)
        chance = float(first["chance"].iloc[0])
        ax.axhline(chance, color="black", linestyle=":", linewidth=0.8, label="chance")
        ax.set_xticks(x, list(layers), rotation=30, ha="right")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("layer")
        ax.set_ylabel("kNN accuracy (features)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False)
    return fig


def similarity_figure(
    table: pd.DataFrame,
    comparison: str,
    keys: Sequence[str],
    width: str,
    fonts: Mapping[str, float] | None = None,
) -> Figure:
    """One model's CKA matrices (the similarity stage's table): 'layers', layer x layer
    for each checkpoint in `keys`, or 'checkpoints', checkpoint x checkpoint for each
    layer in `keys`; one colour bar from 0 to 1."""
    from cnnatlas.similarity_plots import draw_panels, panels_of

    panels = panels_of(table, comparison, keys)
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        inches = WIDTHS[width]
        side = max(max(m.shape) for _, m in panels)
        fig, axes = plt.subplots(
            1, len(panels), squeeze=False, layout="constrained",
            figsize=(inches, min(inches / len(panels) + 1.2, inches * 0.9)),
        )  # fmt: skip
        label = "layer" if comparison == "layers" else "checkpoint"
        small = fonts["font_size"] - (1 if side > 6 else 0)
        image = draw_panels(axes[0], panels, label, label, 12, small)
        bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.8, fraction=0.04)
        bar.set_label("linear CKA")
        letter_panels(list(axes[0]), fonts["letter_size"])
    return fig


def saliency_curves_figure(
    curves_path: str | Path,
    width: str,
    fonts: Mapping[str, float] | None = None,
) -> Figure:
    """Deletion and insertion curves (mean, interquartile band) of `saliency_curves.parquet`."""
    import json

    from cnnatlas.explain.saliency import METHODS
    from cnnatlas.explain.trust import draw_curves
    from cnnatlas.io import read_parquet_meta

    fractions = json.loads(read_parquet_meta(curves_path)["cnnatlas.fractions"])
    curves = pd.read_parquet(curves_path)
    titles = {m: c.title for m, c in METHODS.items()}
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        fig = _figure(width, 1, 2, -0.4 * WIDTHS[width] / 2)
        axes = draw_curves(fig, curves, fractions, titles)
        letter_panels(axes, fonts["letter_size"])
    return fig


def saliency_randomisation_figure(
    cascade_path: str | Path,
    randomisation_path: str | Path,
    width: str,
    fonts: Mapping[str, float] | None = None,
) -> Figure:
    """The randomisation cascade: rows = methods, columns = input, trained model and each
    further layer randomised, the mean Spearman correlation above each map."""
    from cnnatlas.explain.trust import draw_cascade, load_cascade
    from cnnatlas.io import read_parquet_meta

    cascade = load_cascade(cascade_path)
    threshold = float(read_parquet_meta(randomisation_path)["cnnatlas.threshold"])
    rand = pd.read_parquet(randomisation_path)
    rows, cols = len(cascade["methods"]), len(cascade["layers"]) + 2
    fonts = paper_fonts(fonts)
    with matplotlib.rc_context(_rc(fonts)):
        fig = _figure(width, rows, cols, 0.45)
        draw_cascade(fig, cascade, rand, threshold)
    return fig


def save_paper_figure(
    fig: Figure, pdf: str | Path, png: str | Path, run: str, dpi: int
) -> None:
    """Write `fig` as PDF (vector text) and PNG atomically; the run hash goes in the metadata.

    No dates, creator or software version are written, so reruns are byte-identical.
    """
    note = f"cnnatlas run {run}"
    pdf_meta = {
        "CreationDate": None,
        "Creator": None,
        "Producer": None,
        "Subject": note,
        "Keywords": note,
    }
    for path, fmt, meta in (
        (pdf, "pdf", pdf_meta),
        (png, "png", {"Software": None, HASH_KEY: run}),
    ):
        with atomic_path(path) as tmp, matplotlib.rc_context({"pdf.fonttype": 42}):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)


# --- the kinds' drawing functions: a resolved entry (`cnnatlas.plan.paper`) in, a figure
# out; the planner's table of kinds names each by its dotted path ---


def draw_grid(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """layer_grid and perplexity_sweep: the panels' maps, coloured by class."""
    return embedding_grid(
        figure["panels"],
        figure["rows"],
        figure["cols"],
        figure["width"],
        fonts,
        figure["colour_by"],
    )


def draw_separation(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """separation: kNN accuracy per layer from the maps stage's per-layer metrics."""
    metrics = pd.concat(map(pd.read_parquet, figure["metrics"]), ignore_index=True)
    return separation_figure(
        metrics, figure["layers"], figure["checkpoints"], figure["width"], fonts
    )


def draw_saliency(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """saliency: Grad-CAM recomputed from the checkpoint for the listed images."""
    from cnnatlas.classes import read_class_space
    from cnnatlas.models import load_model

    spec = figure["spec"]
    return gradcam_figure(
        load_model(spec, figure["checkpoint"]),
        spec["transform"],
        read_predictions(figure["predictions"]),
        figure["image_ids"],
        read_class_space(figure["predictions"]),
        figure["target_layer"],
        figure["width"],
        fonts,
        figure["device"],
    )


def draw_filters(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """filters: recomputed from the checkpoint with the explain stage's options."""
    from cnnatlas.models import load_model

    spec = figure["spec"]
    return filters_figure(
        load_model(spec, figure["checkpoint"]),
        spec["transform"],
        figure["layer"],
        figure["channels"],
        figure["options"],
        figure["columns"],
        figure["width"],
        fonts,
        figure["device"],
    )


def draw_saliency_curves(
    figure: Mapping[str, Any], fonts: Mapping[str, float]
) -> Figure:
    """saliency_curves: from the explain stage's saliency checks."""
    return saliency_curves_figure(figure["curves"], figure["width"], fonts)


def draw_saliency_randomisation(
    figure: Mapping[str, Any], fonts: Mapping[str, float]
) -> Figure:
    """saliency_randomisation: from the explain stage's saliency checks."""
    return saliency_randomisation_figure(
        figure["cascade"], figure["randomisation"], figure["width"], fonts
    )


def draw_similarity(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """similarity: CKA matrices from the similarity stage's table of the model."""
    return similarity_figure(
        pd.read_parquet(figure["table"]),
        figure["comparison"],
        figure["keys"],
        figure["width"],
        fonts,
    )


def draw_function(
    path: str,
) -> Callable[[Mapping[str, Any], Mapping[str, float]], Figure]:
    """The function a kind's dotted path (`module:function`) names, imported."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def draw_figure(figure: Mapping[str, Any], fonts: Mapping[str, float]) -> Figure:
    """The figure a resolved `paper.figures` entry describes, drawn by the function its
    kind names in `cnnatlas.plan.paper.KINDS`."""
    kind = figure["kind"]
    if kind not in plan_paper.KINDS:
        raise ValueError(f"paper figure kind {kind!r} is not one of {KINDS}")
    return draw_function(plan_paper.KINDS[kind].draw)(figure, fonts)
