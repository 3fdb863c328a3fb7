"""Paper-quality static maps (matplotlib): one embedding, or grids of embeddings.

Every figure of a run colours class k the same way: `class_styles` derives a colour (a
colour-blind-friendly palette) and a marker from the class index alone, so a class keeps
its look across checkpoints, layers, methods and the interactive maps. Misclassified
points get a black edge. PNGs and PDFs are written with fixed metadata so that reruns are
byte-identical; points are rasterised in the PDF above `RASTER_ABOVE` points, while text
and axes stay vector.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from cnnatlas.classes import OTHER, read_class_space  # noqa: E402
from cnnatlas.errors import CnnatlasError  # noqa: E402
from cnnatlas.io import atomic_path, read_predictions  # noqa: E402

__all__ = [
    "PALETTE",
    "MARKERS",
    "FIXED_MODES",
    "CORRECT_COLOURS",
    "CONTINUOUS_CMAP",
    "RASTER_ABOVE",
    "Style",
    "class_styles",
    "category_styles",
    "load_points",
    "metadata_columns",
    "is_continuous",
    "check_colour_by",
    "plot_embedding",
    "plot_grid",
    "plot_grid_files",
    "save_figure",
]

log = logging.getLogger(__name__)

# Paul Tol's "muted" scheme plus his pale grey's darker neighbour: distinguishable under
# the common colour-vision deficiencies, and none is black, so a black edge always shows.
PALETTE = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#6F6F6F",
)
# Filled markers only (an edge marks a misclassified point). 7 markers against 10 colours:
# (colour, marker) pairs repeat only after 70 classes.
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
CORRECT_COLOURS = {"correct": "#4477AA", "misclassified": "#EE6677"}
FIXED_MODES = ("label", "pred", "correct", "confidence")
RASTER_ABOVE = 2000
CONTINUOUS_CMAP = "viridis"
# inches per map of a grid figure
PANEL_SIZE = 2.2
_MAX_CATEGORIES = 40
_LEGEND_WIDTH = (
    1.3  # inches beside the axes for the legend (fixed: PNG size = figsize x dpi)
)
_PREDICTION_COLUMNS = {
    "image_id",
    "path",
    "label",
    "label_name",
    "label_title",
    "label_hover",
    "pred",
    "pred_name",
    "pred_title",
    "pred_hover",
    "confidence",
    "correct",
    "topk_ids",
    "topk_names",
    "topk_probs",
    "in_topk",
    "probs",
    "loss",
    "entropy",
    "margin",
}


@dataclass(frozen=True)
class Style:
    """How one category is drawn: its name, colour (hex) and matplotlib marker."""

    name: str
    colour: str
    marker: str


def class_styles(classes: Sequence[str]) -> list[Style]:
    """Style of class k for every class, from its index only (same in every figure)."""
    return [
        Style(str(c), PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)])
        for k, c in enumerate(classes)
    ]


def category_styles(values: Sequence) -> list[Style]:
    """Styles of the sorted distinct values of a categorical metadata column."""
    return class_styles([str(v) for v in sorted(set(values), key=str)])


def load_points(
    embedding: str | Path, predictions: str | Path
) -> tuple[pd.DataFrame, list[str]]:
    """The embedding's coordinates joined with the predictions on image_id, and the class
    list as legends show it (each class's title, `ClassSpace.class_titles`).

    `pred` is recoded as an index into that list (the dataset's classes, then OTHER for
    outputs that are none of them); `topk_names` names the top-k outputs by title;
    `label_hover` and `pred_hover` are the hover strings (`tench (n01440764)`).
    """
    emb = pd.read_parquet(embedding)
    missing = {"image_id", "x", "y"} - set(emb.columns)
    if missing:
        raise CnnatlasError(
            f"{embedding}: columns {sorted(missing)} are missing; an embedding needs image_id, x, y[, z]"
        )
    pred = read_predictions(predictions)  # all but the per-class probs
    df = emb.merge(pred, on="image_id", how="left", validate="one_to_one")
    if df["label"].isna().any():
        bad = df.loc[df["label"].isna(), "image_id"].iloc[0]
        raise CnnatlasError(
            f"{embedding}: image_id {bad} is not in {predictions}; rerun the map from the same manifest"
        )
    space = read_class_space(predictions)
    df["label_hover"], df["pred_hover"] = df["label_name"], df["pred_name"]
    if space.has_titles():
        hovers = space.class_hovers()
        df["label_hover"] = [hovers[k] for k in df["label"].astype(int)]
        df["pred_hover"] = [space.hover(o) for o in df["pred"]]
    # colours are the dataset's classes: a predicted output is drawn as its class, or
    # as OTHER when it is none of them (its own name stays in pred_name, topk_names)
    df["pred"] = space.dataset_codes(df["pred"].to_numpy())
    df["topk_names"] = [[space.title(i) for i in ids] for ids in df["topk_ids"]]
    classes = space.class_titles()
    if (df["pred"] == len(classes)).any():
        classes.append(OTHER)
    return df.sort_values("image_id").reset_index(drop=True), classes


def metadata_columns(df: pd.DataFrame) -> list[str]:
    """The dataset's own metadata columns in a points table (not the predictions' columns)."""
    return [c for c in df.columns if c not in _PREDICTION_COLUMNS | {"x", "y", "z"}]


def check_colour_by(modes: Sequence[str], df: pd.DataFrame) -> None:
    """Raise if a `figures.colour_by` entry is neither a fixed mode nor a metadata column."""
    columns = metadata_columns(df)
    for mode in modes:
        if mode not in FIXED_MODES and mode not in columns:
            raise CnnatlasError(
                f"figures.colour_by: {mode!r} is neither one of {list(FIXED_MODES)} nor a "
                f"metadata column of the dataset (it has {columns}); fix the config"
            )


def is_continuous(values: pd.Series) -> bool:
    """Whether a metadata column is drawn with a colour scale (float, or many integers)."""
    return pd.api.types.is_numeric_dtype(values) and (
        values.nunique() > _MAX_CATEGORIES or pd.api.types.is_float_dtype(values)
    )


def _groups(df: pd.DataFrame, mode: str, classes: Sequence[str]):
    """(style, row mask) per category of `mode`, in legend order; None for a continuous mode."""
    if mode in ("label", "pred"):
        codes = df[mode].to_numpy()
        return [(s, codes == k) for k, s in enumerate(class_styles(classes))]
    if mode == "correct":
        ok = df["correct"].to_numpy(dtype=bool)
        return [
            (Style(name, colour, "o"), ok if name == "correct" else ~ok)
            for name, colour in CORRECT_COLOURS.items()
        ]
    if mode == "confidence" or is_continuous(df[mode]):
        return None
    values = df[mode].astype(str).to_numpy()
    return [(s, values == s.name) for s in category_styles(df[mode].astype(str))]


def _axes(fig: Figure, spec, dim: int, title: str):
    ax = fig.add_subplot(spec, projection="3d" if dim == 3 else None)
    ax.set_xticks([])
    ax.set_yticks([])
    if dim == 3:
        ax.set_zticks([])
    else:
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=8)
    return ax


def _coords(df: pd.DataFrame, mask, dim: int):
    cols = ["x", "y", "z"][:dim]
    return [df[c].to_numpy()[mask] for c in cols]


def _draw(
    ax, df: pd.DataFrame, mode: str, classes: Sequence[str], dim: int, size: float
):
    """Scatter the points on `ax`; returns the continuous mappable (or None) and legend styles."""
    raster = len(df) > RASTER_ABOVE
    # Depth shading would change a class's colour with its depth: colours must stay exact.
    extra = {"depthshade": False} if dim == 3 else {}
    wrong = ~df["correct"].to_numpy(dtype=bool)
    groups = _groups(df, mode, classes)
    if groups is None:
        values = df[mode].to_numpy(dtype=float)
        everything = np.ones(len(df), dtype=bool)
        sc = ax.scatter(
            *_coords(df, everything, dim),
            c=values,
            cmap=CONTINUOUS_CMAP,
            s=size,
            marker="o",
            linewidths=0,
            rasterized=raster,
            **extra,
        )
        ax.scatter(
            *_coords(df, wrong, dim),
            facecolors="none",
            edgecolors="black",
            s=size,
            linewidths=0.6,
            rasterized=raster,
            **extra,
        )
        return sc, []
    for style, mask in groups:
        for miss in (False, True):
            sel = mask & (wrong if miss else ~wrong)
            if sel.any():
                ax.scatter(
                    *_coords(df, sel, dim),
                    c=style.colour,
                    marker=style.marker,
                    s=size,
                    edgecolors="black" if miss else "none",
                    linewidths=0.6 if miss else 0,
                    rasterized=raster,
                    **extra,
                )
    return None, [s for s, mask in groups if mask.any()]


def _legend(fig: Figure, styles: Sequence[Style], mode: str, any_wrong: bool) -> None:
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=s.marker,
            color=s.colour,
            markersize=5,
            markeredgewidth=0,
            label=s.name,
        )
        for s in styles
    ]
    if any_wrong and mode != "correct":
        handles.append(
            Line2D(
                [],
                [],
                linestyle="",
                marker="o",
                markerfacecolor="#DDDDDD",
                markeredgecolor="black",
                markeredgewidth=0.8,
                markersize=5,
                label="misclassified",
            )
        )
    if handles:
        ncol = 1 + (len(handles) - 1) // 20
        fig.legend(
            handles=handles,
            loc="outside right center",
            fontsize=7,
            frameon=False,
            title=mode,
            title_fontsize=8,
            ncol=ncol,
        )


def _point_size(n: int) -> float:
    return float(np.clip(600 / np.sqrt(max(n, 1)), 1.5, 30))


def plot_embedding(
    df: pd.DataFrame,
    classes: Sequence[str],
    mode: str = "label",
    title: str = "",
    *,
    width: float,
) -> Figure:
    """A one-panel figure of the points table `df` (from `load_points`) coloured by `mode`."""
    check_colour_by([mode], df)
    dim = 3 if "z" in df.columns else 2
    fig = plt.figure(figsize=(width + _LEGEND_WIDTH, width), layout="constrained")
    ax = _axes(fig, 111, dim, title)
    mappable, styles = _draw(ax, df, mode, classes, dim, _point_size(len(df)))
    _finish(fig, [ax], mappable, styles, mode, bool((~df["correct"]).any()))
    return fig


def plot_grid(
    panels: Sequence[Sequence[tuple[str, pd.DataFrame] | None]],
    classes: Sequence[str],
    mode: str = "label",
    panel_size: float = PANEL_SIZE,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
) -> Figure:
    """A rows x cols grid of (title, points table) panels (None leaves a cell empty), one shared legend."""
    rows, cols = len(panels), max(len(r) for r in panels)
    fig = plt.figure(
        figsize=(panel_size * cols + _LEGEND_WIDTH, panel_size * rows + 0.3),
        layout="constrained",
    )
    spec = fig.add_gridspec(rows, cols)
    axes, seen, mappable, any_wrong = [], {}, None, False
    for i, row in enumerate(panels):
        for j, cell in enumerate(row):
            if cell is None:
                continue
            title, df = cell
            check_colour_by([mode], df)
            dim = 3 if "z" in df.columns else 2
            ax = _axes(fig, spec[i, j], dim, title)
            m, styles = _draw(ax, df, mode, classes, dim, _point_size(len(df)) / 2)
            mappable = mappable or m
            seen.update({s.name: s for s in styles})
            any_wrong |= bool((~df["correct"]).any())
            axes.append(ax)
            _label_edges(ax, i, j, row_labels, col_labels)
    order = [s for s in _all_styles(mode, classes, seen) if s.name in seen]
    _finish(fig, axes, mappable, order, mode, any_wrong)
    return fig


def _all_styles(mode, classes, seen):
    if mode in ("label", "pred"):
        return class_styles(classes)
    return (
        sorted(seen.values(), key=lambda s: s.name)
        if mode != "correct"
        else [seen[k] for k in CORRECT_COLOURS if k in seen]
    )


def _label_edges(ax, i, j, row_labels, col_labels):
    text = getattr(
        ax, "text2D", ax.text
    )  # 3-D axes place axes-fraction text with text2D
    if j == 0 and i < len(row_labels):
        text(
            -0.08,
            0.5,
            row_labels[i],
            transform=ax.transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=8,
        )
    if i == 0 and j < len(col_labels):
        text(
            0.5,
            1.18,
            col_labels[j],
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=8,
            fontweight="bold",
        )


def _finish(fig, axes, mappable, styles, mode, any_wrong):
    if mappable is not None:
        bar = fig.colorbar(mappable, ax=axes, shrink=0.6, location="right")
        bar.set_label(mode, fontsize=8)
        bar.ax.tick_params(labelsize=7)
    _legend(fig, styles, mode, any_wrong)


def save_figure(
    fig: Figure,
    png: str | Path | None = None,
    pdf: str | Path | None = None,
    *,
    dpi: int,
) -> None:
    """Write `fig` as PNG and/or PDF atomically with fixed metadata (reruns are byte-identical).

    The PNG is exactly figsize x dpi pixels (no tight bounding box).
    """
    for path, fmt, meta in (
        (png, "png", {"Software": None}),
        (pdf, "pdf", {"CreationDate": None, "Creator": None, "Producer": None}),
    ):
        if path is None:
            continue
        # TrueType (42) rather than Type 3 fonts: the PDF's text stays selectable.
        with atomic_path(path) as tmp, matplotlib.rc_context({"pdf.fonttype": 42}):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)


def plot_grid_files(
    cells: Sequence[Sequence[tuple[str, str | Path, str | Path] | None]],
    mode: str = "label",
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    panel_size: float = PANEL_SIZE,
) -> Figure:
    """`plot_grid` of (title, embedding file, predictions file) cells; classes from the first."""
    classes: list[str] = []
    panels = []
    for row in cells:
        out_row = []
        for cell in row:
            if cell is None:
                out_row.append(None)
                continue
            df, cls = load_points(cell[1], cell[2])
            classes = cls if len(cls) > len(classes) else classes
            out_row.append((cell[0], df))
        panels.append(out_row)
    return plot_grid(panels, classes, mode, panel_size, row_labels, col_labels)
