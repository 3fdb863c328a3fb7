"""Every figure of one layer (or one model) in one process.

A layer's maps, interactive pages and sweep grids are drawn by one job: importing
matplotlib, pandas and plotly costs more than drawing a map of a few thousand points, so
one process per layer instead of one per file keeps a sweep's figures cheap. The jobs are
described by plain dicts that the workflow builds from the config (see figures.smk).
"""

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnatlas.interactive import write_interactive
from cnnatlas.plots import (
    check_colour_by,
    load_points,
    plot_embedding,
    plot_grid_files,
    save_figure,
)

__all__ = ["thumbnail_layout", "draw_layer", "draw_grids"]

log = logging.getLogger(__name__)


def thumbnail_layout(sheets: str | Path, page: str | Path, zoom: int) -> dict:
    """The sheets' index.json plus the relative URL of the sheets folder as seen from `page`."""
    sheets = Path(sheets)
    layout = json.loads((sheets / "index.json").read_text())
    prefix = Path(os.path.relpath(sheets, Path(page).parent)).as_posix() + "/"
    return {**layout, "prefix": prefix, "zoom": zoom}


def draw_layer(
    maps: Sequence[Mapping[str, Any]],
    sweeps: Sequence[Mapping[str, Any]],
    predictions: str | Path,
    opts: Mapping[str, Any],
    sheets: str | Path | None = None,
) -> None:
    """Static figures (one per colouring), HTML pages and sweep grids of one layer.

    maps: [{embedding, title, png: [...], pdf: [...], html: path or None}] with png/pdf in
    the order of opts["colour_by"]; sweeps: [{png, pdf, cells, rows, cols}].
    """
    modes = opts["colour_by"]
    for m in maps:
        df, classes = load_points(m["embedding"], predictions)
        check_colour_by(modes, df)
        # A map selected for a page only (figures.html, not figures.maps) has no files here.
        static = zip(modes, m["png"], m["pdf"], strict=True) if m["png"] else []
        for mode, png, pdf in static:
            fig = plot_embedding(df, classes, mode, m["title"], width=opts["width"])
            save_figure(fig, png, pdf, dpi=opts["dpi"])
        if m.get("html"):
            thumbs = thumbnail_layout(sheets, m["html"], opts["thumbnail_zoom"])
            write_interactive(df, classes, m["html"], m["title"], thumbs, modes[0])
    draw_grids(sweeps, opts)


def draw_grids(grids: Sequence[Mapping[str, Any]], opts: Mapping[str, Any]) -> None:
    """Grid figures [{png, pdf, cells: [[(title, embedding, predictions)]], rows, cols}]."""
    for g in grids:
        fig = plot_grid_files(
            g["cells"],
            opts["colour_by"][0],
            row_labels=g["rows"],
            col_labels=g["cols"],
            panel_size=opts["grid_panel_size"],
        )
        save_figure(fig, g["png"], g["pdf"], dpi=opts["dpi"])
