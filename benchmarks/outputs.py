"""Wall time and peak RSS of every output job (figures, sheets, pages, atlas, paper grid,
evolution, projector) at N points, each in a fresh process as Snakemake runs it.

For each N: a synthetic run (`synthetic_maps.write_run`: real 24 px PNG images,
3 classes, the real manifest and `predictions_table`, seeded 2-D and 3-D maps), then
per job a fresh Python process that imports the library and makes that job's outputs
with the shipped figure options (300 dpi PNG + PDF): the work of one `plot_embeddings`
job for one map (static figure, plotly page, 2-D and 3-D, a 2 x 2 sweep grid),
`plot_checkpoint_layer_grids` (3 checkpoints x 2 layers), `make_thumbnail_sheets`,
`write_atlas` (two checkpoints, two maps each, feature neighbours, an evolution),
`write_index`, the paper's `embedding_grid` (2 x 3 panels), `plot_evolution` (3
checkpoints) and `export_projector` (two layers of 64 and 512 dims). The peak RSS is the
process's own (VmHWM of /proc/self/status at its end: per address space, so unlike
`ru_maxrss` it does not inherit the parent's), imports included. Prints one JSON object per N and, when
two or more N are given, the ratio of each job's time and RSS between the largest and
the smallest N.

    nice -n 10 .venv/bin/python benchmarks/outputs.py --points 2000 10000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.io import write_parquet  # noqa: E402
from cnnatlas.metrics import feature_neighbors  # noqa: E402
from cnnatlas.schema import default  # noqa: E402
from synthetic_maps import write_run  # noqa: E402

OPTS = {
    "colour_by": ["label"],
    "dpi": 300,
    "width": 4.0,
    "grid_panel_size": 2.2,
    "thumbnail_zoom": 3,
}

# Each job: the code of a fresh process; `a` is the run's paths (JSON from argv).
JOBS = {
    "make_thumbnail_sheets": """
from cnnatlas.thumbnails import write_thumbnail_sheets
write_thumbnail_sheets(a["manifest"], a["root"] + "/sheets-job", 48)
""",
    "plot_embeddings": """
from cnnatlas.figures import draw_layer
out = a["root"] + "/fig/"
maps = [{"embedding": a[f"embedding{d}"], "title": f"{d}-D", "png": [out + f"{d}.png"],
         "pdf": [out + f"{d}.pdf"], "html": out + f"{d}.html"} for d in (2, 3)]
maps[1].update(png=[], pdf=[])
cells = [[("a", a["embedding2"], a["predictions"])] * 2] * 2
sweeps = [{"png": out + "sweep.png", "pdf": out + "sweep.pdf", "cells": cells,
           "rows": ["p10", "p30"], "cols": ["s0", "s1"]}]
draw_layer(maps, sweeps, a["predictions"], a["opts"], sheets=a["sheets"])
""",
    "plot_checkpoint_layer_grids": """
from cnnatlas.figures import draw_grids
cells = [[("a", a["embedding2"], a["predictions"])] * 2] * 3
draw_grids([{"png": a["root"] + "/grid.png", "pdf": a["root"] + "/grid.pdf",
             "cells": cells, "rows": ["c0", "c1", "c2"], "cols": ["l0", "l1"]}],
           a["opts"])
""",
    "write_atlas": """
from cnnatlas.viewer import write_atlas
write_atlas(a["root"] + "/atlas.html", manifest=a["manifest"], sheets=a["sheets"],
            zoom=3, title="atlas", **a["atlas"])
""",
    "write_index": """
from pathlib import Path
from cnnatlas.index import write_index
root = Path(a["root"])  # the run's outputs, not the dataset's images
files = sorted(str(p) for p in root.rglob("*") if "images" not in p.parts
               and p.suffix in (".png", ".pdf", ".html", ".parquet"))
write_index(a["root"] + "/index.html", files, atlas=a["root"] + "/atlas.html")
""",
    "draw_paper_figure": """
from cnnatlas.paper import embedding_grid, save_paper_figure
from cnnatlas.schema import default
panels = [{"row": r, "col": c, "embedding": a["embedding2"],
           "predictions": a["predictions"]} for r in ("early", "late")
          for c in ("l0", "l1", "l2")]
fig = embedding_grid(panels, ["early", "late"], ["l0", "l1", "l2"],
                     default("paper.figures.*.width"), None,
                     default("paper.figures.*.colour_by"))
save_paper_figure(fig, a["root"] + "/paper.pdf", a["root"] + "/paper.png", "run",
                  default("paper.dpi"))
""",
    "plot_evolution": """
from cnnatlas.evolution_plots import render_evolution
from cnnatlas.schema import default
e = a["atlas"]["evolution"][0]
out = a["root"] + "/evolution."
render_evolution(e["dir"], e["ckpts"], a["manifest"],
                 {c: a["predictions"] for c in e["ckpts"]}, out + "png", out + "pdf",
                 out + "gif", out + "html", title="evolution",
                 frames=default("evolution.frames"), fps=default("evolution.fps"))
""",
    "export_projector": """
from cnnatlas.projector import export_projector
export_projector(a["predictions"], a["manifest"], a["features"], a["root"] + "/proj",
                 maps={"fc": [a["embedding2"]]})
""",
}


def synthetic(root: Path, n: int) -> dict:
    """The run's paths (JSON-able): images, manifest, predictions, maps, features,
    neighbours, an aligned evolution of three checkpoints, the thumbnail sheets."""
    run = write_run(root, per_class=-(-n // 3), dims=(2, 3))
    rng = np.random.default_rng(0)
    labels = pd.read_parquet(run["manifest"])["label"].to_numpy()
    m = len(labels)
    xy = pd.read_parquet(run["embedding2"])[["x", "y"]].to_numpy()
    features, maps, neighbors = {}, [], []
    for layer, dim in (("conv", 64), ("fc", 512)):
        x = rng.normal(size=(m, dim)) + 3 * np.eye(dim)[labels % dim]
        features[layer] = str(root / f"{layer}.npy")
        np.save(features[layer], x.astype(np.float32))
    for ckpt in ("early", "late"):
        nb = root / f"{ckpt}-neighbors.npy"
        feature_neighbors(features["fc"], nb, 5, seed=default("maps.metrics.seed"))
        neighbors.append({"model": "net", "ckpt": ckpt, "layer": "fc", "path": str(nb)})
        for method in ("tsne", "pca"):
            maps.append({"model": "net", "ckpt": ckpt, "layer": "fc", "method": method,
                         "perplexity": 30.0 if method == "tsne" else 0.0, "seed": 0,
                         "embedding": str(run["embedding2"])})  # fmt: skip
    aligned = root / "aligned"
    aligned.mkdir()
    ckpts = ["c0", "c1", "c2"]
    for k, ckpt in enumerate(ckpts):
        df = pd.DataFrame({"image_id": np.arange(m), "x": xy[:, 0] + k, "y": xy[:, 1]})
        write_parquet(df.astype({"x": np.float32, "y": np.float32}),
                      aligned / f"{ckpt}.parquet")  # fmt: skip
    from cnnatlas.thumbnails import write_thumbnail_sheets

    write_thumbnail_sheets(run["manifest"], root / "sheets", 48)
    evolution = [{"model": "net", "layer": "fc", "method": "tsne", "perplexity": 30,
                  "seed": 0, "ckpts": ckpts, "dir": str(aligned)}]  # fmt: skip
    atlas = {
        "predictions": {f"net/{c}": str(run["predictions"]) for c in ("early", "late")},
        "maps": maps,
        "neighbors": neighbors,
        "evolution": evolution,
        "explain": [],
    }
    return {
        "root": str(root), "n": m, "manifest": str(run["manifest"]),
        "predictions": str(run["predictions"]), "embedding2": str(run["embedding2"]),
        "embedding3": str(run["embedding3"]), "features": features,
        "sheets": str(root / "sheets"), "atlas": atlas, "opts": OPTS,
    }  # fmt: skip


HWM = """
from pathlib import Path
status = Path("/proc/self/status").read_text().splitlines()
kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
Path(sys.argv[2]).write_text(kb)
"""


def run_job(code: str, args: dict, timeout: float) -> dict:
    """Wall seconds and peak RSS (MiB) of a fresh process running `code`."""
    env = os.environ | {"PYTHONPATH": str(REPO / "workflow" / "scripts"),
                        "MPLBACKEND": "Agg"}  # fmt: skip
    prog = "import json, sys\na = json.loads(sys.argv[1])\n" + code + HWM
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        t0 = time.perf_counter()
        try:
            subprocess.run([sys.executable, "-c", prog, json.dumps(args), hwm.name],
                           env=env, check=True, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"s": None, "rss_mib": None, "timeout": True}
        seconds = time.perf_counter() - t0
        return {"s": round(seconds, 2), "rss_mib": round(int(hwm.read()) / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[2_000, 10_000])
    ap.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per job")
    args = ap.parse_args()
    results = []
    for n in args.points:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            paths = synthetic(Path(tmp), n)
            row = {"points": paths["n"], "setup_s": round(time.perf_counter() - t0, 1),
                   "load_before": os.getloadavg(), "jobs": {}}  # fmt: skip
            for job in args.jobs:
                row["jobs"][job] = run_job(JOBS[job], paths, args.timeout)
                print(job, row["jobs"][job], file=sys.stderr, flush=True)
            row["load_after"] = os.getloadavg()
        results.append(row)
        print(json.dumps(row), flush=True)
    if len(results) > 1:
        lo, hi = results[0], results[-1]
        ratios = {
            job: {
                "time": round(hi["jobs"][job]["s"] / lo["jobs"][job]["s"], 2)
                if hi["jobs"][job]["s"] and lo["jobs"][job]["s"]
                else None,
                "rss": round(
                    hi["jobs"][job]["rss_mib"] / lo["jobs"][job]["rss_mib"], 2
                ),
            }
            for job in args.jobs
        }
        print(json.dumps({"ratio": f"{hi['points']}/{lo['points']}", "jobs": ratios}))


if __name__ == "__main__":
    main()
