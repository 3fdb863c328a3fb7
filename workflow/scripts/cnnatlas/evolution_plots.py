"""Figures of a layer's aligned maps across checkpoints: strip, animation, slider HTML.

Every class keeps the colour and marker it has in all of the atlas's figures
(`plots.class_styles`: a colour-blind-safe palette, from the class index alone) in every
panel, frame and trace, and the axis limits are shared, so a point that does not move in
the data does not move on screen. Files are written with fixed metadata, so the same maps
give the same bytes.
"""

import html as html_lib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from cnnatlas.classes import ClassSpace, read_class_space  # noqa: E402
from cnnatlas.evolution import read_evolution  # noqa: E402
from cnnatlas.interactive import PLOTLY_SYMBOLS  # noqa: E402
from cnnatlas.io import (  # noqa: E402
    atomic_path,
    read_parquet_meta,
    read_predictions,
)
from cnnatlas.plots import Style, class_styles, save_figure  # noqa: E402

__all__ = [
    "frame_positions",
    "plot_strip",
    "write_animation",
    "slider_figure",
    "write_slider_html",
    "render_evolution",
]

log = logging.getLogger(__name__)


def _limits(maps: Sequence[np.ndarray], pad: float = 0.05) -> tuple[tuple, tuple]:
    allxy = np.concatenate(maps)
    lo, hi = allxy.min(axis=0), allxy.max(axis=0)
    margin = (hi - lo) * pad + 1e-9
    return (lo[0] - margin[0], hi[0] + margin[0]), (
        lo[1] - margin[1],
        hi[1] + margin[1],
    )


def _panel_limits(
    xy: np.ndarray, shared: tuple[tuple, tuple], small: float = 0.1
) -> tuple[tuple, tuple, float]:
    """The shared limits and zoom 1, or, when the panel's points fill less than `small`
    of the shared frame along both axes, limits fitted to them (at least 1e-3 of the
    shared frame, so identical points still get a frame) and the zoom that is."""
    span = np.array([shared[0][1] - shared[0][0], shared[1][1] - shared[1][0]])
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    if np.all(hi - lo >= small * span):
        return (*shared, 1.0)
    side = max(float(np.max((hi - lo) / span)), 1e-3) * 1.1
    centre = (lo + hi) / 2
    half = side * span / 2
    limits = tuple((centre[k] - half[k], centre[k] + half[k]) for k in (0, 1))
    return (*limits, 1 / side)


def _scatter_classes(
    ax, xy: np.ndarray, labels: np.ndarray, styles: Sequence[Style], size: float
) -> list:
    """One scatter per class in its colour and marker, in class order."""
    return [
        ax.scatter(
            *xy[labels == k].T,
            c=st.colour,
            marker=st.marker,
            s=size,
            linewidths=0,
            label=st.name,
        )
        for k, st in enumerate(styles)
    ]


def plot_strip(
    maps: Sequence[np.ndarray],
    ckpts: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    png: str | Path | None = None,
    pdf: str | Path | None = None,
    title: str = "",
) -> None:
    """One panel per checkpoint with shared limits; PNG and/or PDF with fixed metadata."""
    styles = class_styles(class_names)
    xlim, ylim = _limits(maps)
    aspect = min(1.5, max(0.4, (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])))
    size_in = (2.6 * len(maps), 2.6 * aspect + 0.9)
    fig, axes = plt.subplots(1, len(maps), figsize=size_in, squeeze=False)
    size = max(2.0, min(12.0, 3000 / len(labels)))
    for ax, xy, ckpt in zip(axes[0], maps, ckpts, strict=True):
        _scatter_classes(ax, xy, labels, styles, size)
        # a checkpoint whose points sit in a corner of the shared frame (a collapsed early
        # map) would be one dot: it is drawn on its own limits, and its title says so
        px, py, zoom = _panel_limits(xy, (xlim, ylim))
        ax.set(xlim=px, ylim=py, xticks=[], yticks=[], aspect="equal")
        ax.set_title(ckpt if zoom == 1 else f"{ckpt} (zoomed ×{zoom:.3g})", fontsize=9)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(10, len(styles)), fontsize=7,
               frameon=False, handletextpad=0.1, markerscale=1.5)  # fmt: skip
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.3 / size_in[1], 1, 1))
    save_figure(fig, png, pdf, dpi=110)


def frame_positions(
    maps: Sequence[np.ndarray], frames: int, hold: int
) -> list[tuple[np.ndarray, float]]:
    """(coordinates, position along the checkpoints) of every animation frame:
    `hold` frames at each checkpoint, `frames` linear steps between consecutive ones."""
    out = []
    for k, xy in enumerate(maps):
        out += [(xy, float(k))] * hold
        if k + 1 < len(maps):
            for t in np.arange(1, frames + 1) / (frames + 1):
                out.append(((1 - t) * xy + t * maps[k + 1], k + float(t)))
    return out


def write_animation(
    maps: Sequence[np.ndarray],
    ckpts: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    gif: str | Path,
    frames: int,
    fps: int,
) -> int:
    """A GIF moving every point from checkpoint to checkpoint; returns the frame count."""
    steps = frame_positions(maps, frames, hold=max(1, fps // 2))
    fig, ax = plt.subplots(figsize=(3.6, 3.8), dpi=90)
    xlim, ylim = _limits(maps)
    ax.set(xlim=xlim, ylim=ylim, xticks=[], yticks=[], aspect="equal")
    size = max(2.0, min(10.0, 2000 / len(labels)))
    dots = _scatter_classes(ax, maps[0], labels, class_styles(class_names), size)
    title = ax.set_title("", fontsize=9)
    fig.tight_layout()

    def draw(i: int) -> list:
        xy, pos = steps[i]
        for k, d in enumerate(dots):
            d.set_offsets(xy[labels == k])
        k = int(round(pos))
        between = f"{ckpts[int(pos)]} \u2192 {ckpts[min(int(pos) + 1, len(ckpts) - 1)]}"
        title.set_text(ckpts[k] if abs(pos - k) < 1e-9 else between)
        return [*dots, title]

    anim = FuncAnimation(fig, draw, frames=len(steps), blit=False)
    with atomic_path(gif) as tmp:
        # Pillow picks the format from the suffix, which the temporary name lacks.
        named = tmp.with_name(tmp.name + ".gif")
        try:
            anim.save(named, writer=PillowWriter(fps=fps))
            named.replace(tmp)
        finally:
            named.unlink(missing_ok=True)
    plt.close(fig)
    return len(steps)


def _hover(manifest: pd.DataFrame, pred: pd.DataFrame, space: ClassSpace) -> list[str]:
    """Hover text per point: image_id, label and this checkpoint's prediction, each
    with its title where the class index gives one (`tench (n01440764)`)."""
    esc = html_lib.escape  # class names are user data; plotly renders HTML tags
    label, shown = manifest["label_name"], pred["pred_name"]
    if space.has_titles():
        hovers = space.class_hovers()
        label = [hovers[k] for k in manifest["label"]]
        shown = [space.hover(p) for p in pred["pred"]]
    return [
        f"image {i}<br>label {esc(str(n))}<br>pred {esc(str(p))} ({c:.2f})"
        for i, n, p, c in zip(
            manifest["image_id"], label, shown, pred["confidence"], strict=True
        )
    ]


def _traces(xy, labels, class_names, hover, scatter) -> list:
    hover = np.asarray(hover, dtype=object)
    return [
        scatter(
            x=xy[labels == k, 0],
            y=xy[labels == k, 1],
            mode="markers",
            name=st.name,
            marker={
                "color": st.colour,
                "symbol": PLOTLY_SYMBOLS.get(st.marker, "circle"),
                "size": 6,
            },
            hovertext=hover[labels == k],
            hoverinfo="text",
        )
        for k, st in enumerate(class_styles(class_names))
    ]


def slider_figure(
    maps: Sequence[np.ndarray],
    ckpts: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    hovers: Sequence[Sequence[str]],
    title: str = "",
) -> go.Figure:
    """One plotly frame per checkpoint (a trace per class), a slider and a play button;
    plotly moves the points between frames."""
    scatter = go.Scattergl if len(labels) > 5000 else go.Scatter
    frames = [
        go.Frame(data=_traces(xy, labels, class_names, hv, scatter), name=c)
        for xy, c, hv in zip(maps, ckpts, hovers, strict=True)
    ]
    anim = {"mode": "immediate", "frame": {"duration": 700, "redraw": True},
            "transition": {"duration": 500}}  # fmt: skip
    xlim, ylim = _limits(maps)
    fig = go.Figure(data=frames[0].data, frames=frames)
    fig.update_layout(
        title=title, template="simple_white", height=640,
        xaxis={"range": xlim, "visible": False},
        yaxis={"range": ylim, "visible": False, "scaleanchor": "x"},
        sliders=[{"active": 0, "currentvalue": {"prefix": "checkpoint: "},
                  "steps": [{"label": c, "method": "animate", "args": [[c], anim]} for c in ckpts]}],
        updatemenus=[{"type": "buttons", "x": 0, "y": 0, "xanchor": "right",
                      "buttons": [{"label": "Play", "method": "animate", "args": [None, anim]}]}],
    )  # fmt: skip
    return fig


# what a map's hover text reads of a checkpoint's predictions.parquet (`_hover`)
HOVER = ["image_id", "pred", "pred_name", "confidence"]
# No modebar control that sends the chart off the machine (plotly's "share to cloud").
PLOTLY_CONFIG = {
    "displaylogo": False,
    "showSendToCloud": False,
    "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud"],
}


def write_slider_html(fig: go.Figure, html: str | Path) -> None:
    """Self-contained HTML (plotly.js inlined, fixed div id, so reruns give the same bytes).

    The page opens at the first checkpoint and waits for Play or the slider (plotly's
    default would start the animation on load, leaving the slider behind the frame)."""
    page = fig.to_html(
        include_plotlyjs=True,
        full_html=True,
        div_id="evolution",
        auto_play=False,
        config=PLOTLY_CONFIG,
    )
    with atomic_path(html) as tmp:
        tmp.write_text(page, encoding="utf-8")


def render_evolution(
    maps_dir: str | Path,
    ckpts: Sequence[str],
    manifest: str | Path,
    predictions: Mapping[str, str | Path],
    png: str | Path | None,
    pdf: str | Path | None,
    gif: str | Path,
    html: str | Path,
    title: str,
    frames: int,
    fps: int,
) -> None:
    """Strip figure (PNG/PDF), GIF and slider HTML of the aligned maps in `maps_dir`."""
    maps = read_evolution(maps_dir, ckpts)
    man = pd.read_parquet(manifest).sort_values("image_id").reset_index(drop=True)
    classes = json.loads(read_parquet_meta(manifest).get("cnnatlas.classes", "null"))
    classes = classes or [str(i) for i in range(int(man["label"].max()) + 1)]
    labels = man["label"].to_numpy()
    spaces = {c: read_class_space(predictions[c]) for c in ckpts}
    spaces = {c: s if s.classes else ClassSpace.of(classes) for c, s in spaces.items()}
    classes = spaces[ckpts[-1]].class_titles()  # titles (`tench`) in the legends
    hovers = [
        _hover(
            man,
            read_predictions(predictions[c], HOVER).sort_values("image_id"),
            spaces[c],
        )
        for c in ckpts
    ]
    plot_strip(maps, ckpts, labels, classes, png, pdf, title)
    n = write_animation(maps, ckpts, labels, classes, gif, frames, fps)
    write_slider_html(slider_figure(maps, ckpts, labels, classes, hovers, title), html)
    log.info("%s: %d checkpoints, %d animation frames", title, len(ckpts), n)
