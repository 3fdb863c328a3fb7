"""Heat maps of the similarity stage's CKA tables: one colour scale from 0 to 1 (viridis)
for every panel, layers in network order and checkpoints in the order of training, the
value printed in each cell while the matrix stays small enough to read."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cnnatlas.plots import save_figure  # noqa: E402

__all__ = ["draw_panels", "panels_of", "heatmap_panels", "similarity_figures"]

CMAP = "viridis"


def _matrix(t: pd.DataFrame, rows: str, cols: str) -> pd.DataFrame:
    order_r = list(dict.fromkeys(t[rows]))
    order_c = list(dict.fromkeys(t[cols]))
    return t.pivot(index=rows, columns=cols, values="cka").loc[order_r, order_c]


def draw_panels(
    axes: Sequence,
    panels: Sequence[tuple[str, pd.DataFrame]],
    xlabel: str,
    ylabel: str,
    max_cell_labels: int,
    fontsize: float = 7,
):
    """CKA matrices on `axes`, 0 to 1 in viridis; the rows (the same in every panel)
    named on the first; values in the cells of small matrices. Returns the last image."""
    small = max(max(m.shape) for _, m in panels) <= max_cell_labels
    image = None
    for k, (ax, (name, m)) in enumerate(zip(axes, panels, strict=True)):
        image = ax.imshow(m.to_numpy(float), vmin=0, vmax=1, cmap=CMAP)
        ax.set_title(name, fontsize=fontsize + 2)
        ticks_r = range(len(m.index)) if len(m.index) <= 40 else []
        ticks_c = range(len(m.columns)) if len(m.columns) <= 40 else []
        ax.set_yticks(list(ticks_r), [str(m.index[i]) for i in ticks_r] if k == 0 else [],
                      fontsize=fontsize)  # fmt: skip
        ax.set_xticks(list(ticks_c), [str(m.columns[i]) for i in ticks_c],
                      fontsize=fontsize, rotation=45, ha="right")  # fmt: skip
        ax.set_xlabel(xlabel, fontsize=fontsize + 1)
        if k == 0:
            ax.set_ylabel(ylabel, fontsize=fontsize + 1)
        if small:
            for (i, j), v in np.ndenumerate(m.to_numpy(float)):
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center",
                            fontsize=fontsize - 1,
                            color="black" if v > 0.6 else "white")  # fmt: skip
    return image


def panels_of(
    table: pd.DataFrame, comparison: str, keys: Sequence[str] | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """One model's matrices of a comparison: 'layers' (one per checkpoint, layer x
    layer) or 'checkpoints' (one per layer, checkpoint x checkpoint); `keys` picks
    and orders the checkpoints or layers (None: all, in table order). Linear CKA."""
    t = table[(table["comparison"] == comparison) & (table["kernel"] == "linear")]
    by, rows, cols = {
        "layers": ("checkpoint", "layer", "other_layer"),
        "checkpoints": ("layer", "checkpoint", "other_checkpoint"),
    }[comparison]
    keys = list(dict.fromkeys(t[by])) if keys is None else list(keys)
    return [(k, _matrix(t[t[by] == k], rows, cols)) for k in keys]


def heatmap_panels(
    panels: Sequence[tuple[str, pd.DataFrame]],
    title: str,
    png: str | Path,
    pdf: str | Path,
    xlabel: str,
    ylabel: str,
    max_cell_labels: int,
) -> None:
    """One figure of CKA matrices side by side, one shared colour bar (0 to 1)."""
    n = len(panels)
    side = max(max(m.shape) for _, m in panels)
    small = side <= max_cell_labels
    panel = max(side * (0.42 if small else 0.12), 1.8) if side <= 40 else 4.5
    fig, axes = plt.subplots(1, n, figsize=(n * (panel + 0.25) + 2.2, panel + 1.9),
                             squeeze=False, layout="constrained")  # fmt: skip
    image = draw_panels(axes[0], panels, xlabel, ylabel, max_cell_labels)
    bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9, fraction=0.04)
    bar.set_label("linear CKA", fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(fig, png, pdf, dpi=150)


def similarity_figures(
    table: pd.DataFrame, out_dir: str | Path, max_cell_labels: int
) -> list[Path]:
    """Every heat map of a gathered CKA table into `out_dir`: per model, its layers in
    each checkpoint (`{model}-layers.png`) and each layer across its checkpoints
    (`{model}-checkpoints.png`); per pair of models, layer x layer
    (`{a}-vs-{b}.png`); each also as PDF; linear CKA. Returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = []

    def draw(stem, panels, title, xlabel, ylabel):
        png = out_dir / f"{stem}.png"
        heatmap_panels(panels, title, png, out_dir / f"{stem}.pdf", xlabel, ylabel,
                       max_cell_labels)  # fmt: skip
        pngs.append(png)

    for model in dict.fromkeys(table["model"]):
        t = table[table["model"] == model]
        if (t["comparison"] == "layers").any():
            panels = panels_of(t, "layers")
            draw(f"{model}-layers", panels,
                 f"{model}: CKA between layers, per checkpoint", "layer", "layer")  # fmt: skip
        if (t["comparison"] == "checkpoints").any():
            panels = panels_of(t, "checkpoints")
            draw(f"{model}-checkpoints", panels,
                 f"{model}: CKA of each layer between checkpoints", "checkpoint",
                 "checkpoint")  # fmt: skip
    models = table[(table["comparison"] == "models") & (table["kernel"] == "linear")]
    for (a, b), g in models.groupby(["model", "other_model"], sort=False):
        ca, cb = g["checkpoint"].iloc[0], g["other_checkpoint"].iloc[0]
        draw(f"{a}-vs-{b}", [(f"{a} {ca} x {b} {cb}", _matrix(g, "layer", "other_layer"))],
             f"CKA between the layers of {a} and {b}", f"{b} layer", f"{a} layer")  # fmt: skip
    return pngs
