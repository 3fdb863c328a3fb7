"""Why figures.smk draws a layer's figures in one job: one process per map vs one per layer.

Writes a synthetic predictions table and K embeddings of N points, then times (a) K fresh
Python processes that each import the library and draw one map (PNG + PDF at 300 dpi), the
per-file job layout, and (b) one process that draws all K. Also reports the HTML page size
per point. Prints JSON; compare the two times as a ratio within one run.

    .venv/bin/python benchmarks/figures.py --maps 6 --points 1000
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.extract import predictions_table  # noqa: E402
from cnnatlas.io import write_parquet  # noqa: E402

DRAW = """
import sys
from cnnatlas.plots import load_points, plot_embedding, save_figure
from cnnatlas.schema import default
for emb in sys.argv[2:]:
    df, classes = load_points(emb, sys.argv[1])
    fig = plot_embedding(df, classes, "label", width=default("figures.width"))
    save_figure(fig, emb + ".png", emb + ".pdf", dpi=default("figures.dpi"))
"""


def synthetic(folder: Path, n: int, k: int) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(0)
    classes = [f"class{i}" for i in range(10)]
    labels = rng.integers(0, 10, n)
    man = pd.DataFrame(
        {
            "image_id": np.arange(n),
            "path": [
                f"/data/images/class{c}/image_{i:06d}.png" for i, c in enumerate(labels)
            ],
            "label": labels,
            "label_name": [classes[c] for c in labels],
        }
    )
    logits = rng.normal(size=(n, 10)) + 3 * np.eye(10)[labels]
    pred = folder / "predictions.parquet"
    write_parquet(
        predictions_table(man, logits, classes, 5),
        pred,
        meta={"cnnatlas.classes": json.dumps(classes)},
    )
    embs = []
    for j in range(k):
        xy = rng.normal(size=(n, 2)) + 4 * rng.normal(size=(10, 2))[labels]
        emb = folder / f"map{j}.parquet"
        write_parquet(
            pd.DataFrame(
                {
                    "image_id": np.arange(n),
                    "x": xy[:, 0].astype("f4"),
                    "y": xy[:, 1].astype("f4"),
                }
            ),
            emb,
        )
        embs.append(emb)
    return pred, embs


def timed(cmds: list[list[str]]) -> float:
    env = {"PYTHONPATH": str(REPO / "workflow" / "scripts"), "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    for cmd in cmds:
        subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def html_bytes_per_point(pred: Path, emb: Path, n: int) -> float:
    import plotly.offline
    from cnnatlas.interactive import write_interactive
    from cnnatlas.plots import load_points

    df, classes = load_points(emb, pred)
    thumbs = {
        "size": 48,
        "columns": 64,
        "per_sheet": 4096,
        "n": n,
        "sheets": ["sheet-0000.png"],
        "prefix": "t/",
        "zoom": 2,
    }
    size = write_interactive(df, classes, emb.with_suffix(".html"), "t", thumbs)
    return (size - len(plotly.offline.get_plotlyjs().encode())) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", type=int, default=6)
    ap.add_argument("--points", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pred, embs = synthetic(Path(tmp), args.points, args.maps)
        py = [sys.executable, "-c", DRAW, str(pred)]
        per_file = timed([[*py, str(e)] for e in embs])
        per_layer = timed([[*py, *map(str, embs)]])
        per_point = html_bytes_per_point(pred, embs[0], args.points)
    print(
        json.dumps(
            {
                "maps": args.maps,
                "points": args.points,
                "one_process_per_map_s": round(per_file, 2),
                "one_process_for_all_s": round(per_layer, 2),
                "ratio": round(per_file / per_layer, 2),
                "html_bytes_per_point": round(per_point, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
