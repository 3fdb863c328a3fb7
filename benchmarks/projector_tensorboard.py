"""How large a tensor the real TensorBoard server hands the projector within a deadline.

For each ROWSxDIMS, writes a projector folder holding one synthetic float32 tensor
(normal values, written by `cnnatlas.projector.write_tensor_tsv` as the export writes it,
with a metadata TSV of the same rows), starts `tensorboard --logdir` on it, waits until
the projector plugin is active, then times the plugin's `tensor` request end to end (the
request the Projector tab makes). TensorBoard 2.21 parses every tensor of the config in
Python when the plugin activates (`ready_s`: from start until the plugins listing says
the projector is enabled) and keeps only the last one in its cache (capacity 1), so a
second, tiny tensor is listed after the measured one: the measured request then parses
the TSV again, as it does whenever a user switches tensors. Reports the TSV's size, the
write time, the request time (None when it ran past 2 x `--deadline`) and TensorBoard's
peak RSS. Prints one JSON line per size.

    nice -n 10 .venv/bin/python benchmarks/projector_tensorboard.py 10000x512 10000x2048
"""

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.projector import (  # noqa: E402
    CONFIG_FILE,
    Embedding,
    projector_config_text,
    write_metadata_tsv,
    write_tensor_tsv,
)
from tensorboard_server import get, serve  # noqa: E402


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_export(folder: Path, rows: int, dims: int) -> dict:
    """A projector folder with one `rows` x `dims` tensor; returns write time and size."""
    x = np.random.default_rng(0).normal(size=(rows, dims)).astype(np.float32)
    t0 = time.perf_counter()
    write_tensor_tsv(x, folder / "tensor.tsv")
    seconds = time.perf_counter() - t0
    meta = pd.DataFrame({"label": [f"c{i % 10}" for i in range(rows)]})
    write_metadata_tsv(meta, folder / "metadata.tsv")
    write_tensor_tsv(x[:rows, :2], folder / "tiny.tsv")
    entries = [
        Embedding("t", "tensor.tsv", (rows, dims), sprite_path=None),
        Embedding("tiny", "tiny.tsv", (rows, 2), sprite_path=None),
    ]
    (folder / CONFIG_FILE).write_text(projector_config_text(entries))
    return {
        "write_s": round(seconds, 2),
        "tsv_mb": (folder / "tensor.tsv").stat().st_size / 1e6,
    }


def time_request(folder: Path, deadline: float) -> dict:
    """Start TensorBoard on `folder`, time the projector's tensor request, stop it."""
    t_start = time.monotonic()
    with serve(folder, folder / "tb.log", timeout=600) as (base, proc):
        ready = time.monotonic() - t_start
        get(f"{base}/data/plugin/projector/info?run=.", 60)
        url = f"{base}/data/plugin/projector/tensor?run=.&name=t"
        t0 = time.perf_counter()
        try:
            raw = get(url, 2 * deadline)
            seconds, nbytes = time.perf_counter() - t0, len(raw)
        except (TimeoutError, urllib.error.URLError):
            seconds, nbytes = None, 0
        return {
            "ready_s": round(ready, 2),
            "request_s": None if seconds is None else round(seconds, 2),
            "served_bytes": nbytes,
            "within_deadline": seconds is not None and seconds <= deadline,
            "tensorboard_peak_rss_mib": round(_peak_rss_mib(proc.pid)),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sizes", nargs="+", help="ROWSxDIMS, e.g. 10000x512")
    ap.add_argument("--deadline", type=float, default=30.0)
    args = ap.parse_args()
    for size in args.sizes:
        rows, dims = map(int, size.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            out = {"rows": rows, "dims": dims, "values": rows * dims}
            out |= write_export(folder, rows, dims)
            out |= time_request(folder, args.deadline)
            out["load"] = os.getloadavg()
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
