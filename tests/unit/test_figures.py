"""One layer's job: static figures, pages and sweep grids from the workflow's job description."""

import json

from cnnatlas import figures, thumbnails
from PIL import Image

from benchmarks.synthetic_maps import write_run


def test_draw_layer_writes_what_the_job_lists(tmp_path):
    run = write_run(tmp_path, per_class=4, dims=(2, 3))
    thumbnails.write_thumbnail_sheets(run["manifest"], tmp_path / "thumbnails", 16)
    out = tmp_path / "m" / "c" / "figures" / "fc1"
    maps = [
        {  # a figure and a page
            "embedding": run["embedding2"],
            "title": "2-D",
            "png": [str(out / "a.label.png"), str(out / "a.domain.png")],
            "pdf": [str(out / "a.label.pdf"), str(out / "a.domain.pdf")],
            "html": str(out / "a.html"),
        },
        {  # a page only
            "embedding": run["embedding3"],
            "title": "3-D",
            "png": [],
            "pdf": [],
            "html": str(out / "b.html"),
        },
    ]
    cells = [[("s0", run["embedding2"], run["predictions"]), None]]
    sweeps = [
        {
            "png": str(out / "s.png"),
            "pdf": str(out / "s.pdf"),
            "cells": cells,
            "rows": ["p5"],
            "cols": ["seed 0", "seed 1"],
        }
    ]
    opts = {
        "colour_by": ["label", "domain"],
        "dpi": 50,
        "width": 2.0,
        "grid_panel_size": 1.5,
        "thumbnail_zoom": 2,
    }
    figures.draw_layer(maps, sweeps, run["predictions"], opts, tmp_path / "thumbnails")
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(
        [
            "a.label.png",
            "a.domain.png",
            "a.label.pdf",
            "a.domain.pdf",
            "a.html",
            "b.html",
            "s.png",
            "s.pdf",
        ]
    )
    assert Image.open(out / "a.label.png").size == (165, 100)
    page = (out / "b.html").read_text()
    payload = json.loads(page.split('id="cnnatlas-data">')[1].split("</script>")[0])
    assert (
        payload["dim"] == 3 and payload["thumbs"]["prefix"] == "../../../../thumbnails/"
    )
