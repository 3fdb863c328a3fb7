"""Peak memory of writing and reading predictions.parquet at ImageNet's class count.

For each N, seeded random logits [N, K] float32 (each image's label 4 above noise of
standard deviation 2) and a manifest of N images in K classes are saved; then, each in
a fresh process (its peak RSS and CPU time its own, torch on `--threads` threads):

- `old`: the table as `cnnatlas.extract` wrote it before its blocked writer
  (`old_predictions_table`: float64 softmax over all [N, K], `probs` and top-k as one
  numpy array per row in a DataFrame, then `write_parquet`), the logits in memory;
- `new`: `write_predictions` with the logits in memory (the extraction's route);
- `new_import`: `write_predictions` reading the logits a block at a time through
  `cnnatlas.precomputed.LogitRows` (the import's route, `features_from`);
- the readers, on the new file: `read_everything` (`pd.read_parquet` of every column, as
  the figures, projector, explanation and evolution jobs read it before), `load_points`
  (figures, paper, HTML pages), `projector_metadata`, `explain_sample` (the three
  explanation jobs), `select_explain_images`, `atlas_run` (the atlas page's predictions),
  `read_labels` (maps and metrics).

A child whose RSS passes `--max-rss-gb` is killed (the parent polls /proc), reported as
stopped with the RSS it had reached. Where `old` and `new` both finish, their files
are compared row group by row group (`same_values`) and by sha256.

    .venv/bin/python benchmarks/predictions_memory.py --n 50000 100000 200000 400000 \
        --old-max-n 200000 --classes 1000 > benchmarks/predictions-memory-2026-12-06.json

Prints JSON.
"""

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
sys.path.insert(0, str(SCRIPTS))

from cnnatlas.classes import ClassSpace, class_space  # noqa: E402
from cnnatlas.errors import CnnatlasError  # noqa: E402
from cnnatlas.io import write_parquet  # noqa: E402

BLOCK = 1 << 16  # rows of logits generated at a time
TOPK = 5


def old_predictions_table(
    manifest: pd.DataFrame,
    logits: np.ndarray,
    classes: list[str],
    topk: int,
    space: ClassSpace | None = None,
) -> pd.DataFrame:
    """`cnnatlas.extract.predictions_table` as it was before the blocked writer, kept
    here (and compared with the new writer by the unit tests) as the reference."""
    if space is None:
        space = class_space(
            None, classes, logits.shape[1], "models.<model>.class_index"
        )
    labels = manifest["label"].to_numpy(dtype=np.int64, copy=True)
    if labels.max() >= len(space.targets):
        raise CnnatlasError(
            f"labels go up to {labels.max()} but the class list has {len(space.targets)} classes"
        )
    targets = space.target(labels)
    t = torch.from_numpy(logits).double()
    logp = torch.log_softmax(t, dim=1)
    probs = logp.exp()
    k = min(topk, logits.shape[1])
    top_p, top_i = probs.topk(k, dim=1)
    pred = top_i[:, 0].numpy()
    second = top_p[:, 1] if k > 1 else torch.zeros(len(t), dtype=t.dtype)
    df = manifest[["image_id", "path", "label", "label_name"]].copy()
    df["label_title"] = [space.title(t) for t in targets]
    df["pred"] = pred.astype(np.int64)
    df["pred_name"] = [space.name(i) for i in pred]
    df["pred_title"] = [space.title(i) for i in pred]
    df["confidence"] = top_p[:, 0].numpy().astype(np.float32)
    df["correct"] = pred == targets
    df["topk_ids"] = list(top_i.numpy().astype(np.int64))
    df["topk_probs"] = list(top_p.numpy().astype(np.float32))
    df["in_topk"] = (top_i.numpy() == targets[:, None]).any(axis=1)
    df["probs"] = list(probs.numpy().astype(np.float32))
    df["loss"] = (
        (-logp[torch.arange(len(t)), torch.from_numpy(targets)])
        .numpy()
        .astype(np.float32)
    )
    df["entropy"] = (-(probs * logp).sum(1)).numpy().astype(np.float32)
    df["margin"] = (top_p[:, 0] - second).numpy().astype(np.float32)
    meta = manifest.drop(columns=["image_id", "path", "label", "label_name"])
    return pd.concat([df, meta.reset_index(drop=True)], axis=1)


def old_write(manifest, logits, classes, topk, out, space=None) -> None:
    """The old route: `old_predictions_table`, then `write_parquet`."""
    space = space or class_space(None, classes, logits.shape[1], "class_index")
    table = old_predictions_table(manifest, logits, classes, topk, space)
    write_parquet(table, out, meta=space.meta())


def make_inputs(n: int, k: int, folder: Path, seed: int = 0) -> None:
    """manifest.parquet (N images of K classes, a metadata column), logits.npy [N, K]
    float32 and a 2-D map (map.parquet), written a block of rows at a time."""
    from cnnatlas.data import write_manifest

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    classes = [f"n{c:08d}" for c in range(k)]
    names = np.array(classes, dtype=object)[labels]
    man = pd.DataFrame(
        {
            "image_id": np.arange(n),
            "path": [f"{c}/img_{i:08d}.JPEG" for i, c in enumerate(names)],
            "label": labels,
            "label_name": names,
            "site": np.array(["a", "b", "c"], dtype=object)[np.arange(n) % 3],
        }
    )
    write_manifest(man, folder / "manifest.parquet", classes)
    mm = np.lib.format.open_memmap(folder / "logits.npy", "w+", np.float32, (n, k))
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        x = rng.normal(scale=2.0, size=(rows.stop - start, k)).astype(np.float32)
        x[np.arange(len(x)), labels[rows]] += 4.0
        mm[rows] = x
    mm.flush()
    del mm
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    pd.DataFrame({"image_id": np.arange(n), "x": xy[:, 0], "y": xy[:, 1]}).to_parquet(
        folder / "map.parquet"
    )


# Each case in a fresh process, its imports done before the clock starts; its peak RSS
# is VmHWM (ru_maxrss would carry over the parent's, which execve keeps).
CHILD = """
import json, sys, time
sys.path.insert(0, {scripts!r}); sys.path.insert(0, {repo!r})
from pathlib import Path
import numpy as np, pandas as pd, torch
from benchmarks.predictions_memory import old_write
from cnnatlas.explain.select import SAMPLE_COLUMNS, bound_images, write_selection
from cnnatlas.extract import write_predictions
from cnnatlas.io import read_predictions
from cnnatlas.maps.toolbox import read_labels
from cnnatlas.plots import load_points
from cnnatlas.precomputed import LogitRows, open_folder
from cnnatlas.projector import METADATA_COLUMNS, metadata_table
from cnnatlas.viewer.atlas import Blocks, _run

def hwm():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(s for s in status if s.startswith("VmHWM:")).split()[1]) / 1024

torch.set_num_threads({threads})
folder, case = Path({folder!r}), {case!r}
imports = hwm()
wall, cpu = time.perf_counter(), time.process_time()
man = pd.read_parquet(folder / "manifest.parquet")
classes = sorted(man["label_name"].unique())
pred = folder / "new.parquet"
if case in ("old", "new"):
    logits = np.load(folder / "logits.npy")
    write = old_write if case == "old" else write_predictions
    write(man, logits, classes, 5, folder / (case + ".parquet"))
elif case == "new_import":
    rows = LogitRows(open_folder(folder, [], "key"), np.arange(len(man)))
    write_predictions(man, rows, classes, 5, folder / "new_import.parquet")
elif case == "read_everything":
    pd.read_parquet(pred)
elif case == "load_points":
    load_points(folder / "map.parquet", pred)
elif case == "projector_metadata":
    metadata_table(read_predictions(pred, METADATA_COLUMNS), man)
elif case == "explain_sample":
    bound_images(read_predictions(pred, SAMPLE_COLUMNS), 1000, 0, True, "key")
elif case == "select_explain_images":
    write_selection(pred, folder / "selection.parquet", correct_per_class=1,
                    wrong_per_class=1, seed=0)
elif case == "atlas_run":
    _run(pred, len(man), classes, Blocks())
elif case == "read_labels":
    read_labels(pred)
print(json.dumps({{
    "wall_s": round(time.perf_counter() - wall, 2),
    "cpu_s": round(time.process_time() - cpu, 2),
    "peak_rss_mb": round(hwm()),
    "after_imports_mb": round(imports),
    "work_mb": round(hwm() - imports),
}}))
"""
WRITERS = ("old", "new", "new_import")
READERS = (
    "read_everything",
    "load_points",
    "projector_metadata",
    "explain_sample",
    "select_explain_images",
    "atlas_run",
    "read_labels",
)


def _rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((s for s in text.splitlines() if s.startswith("VmRSS:")), "VmRSS: 0")
    return int(line.split()[1]) / 1024


def run_case(case: str, folder: Path, threads: int, max_rss_mb: float) -> dict:
    """`case` in a fresh process: its wall, CPU seconds and peak RSS, or where it was
    stopped at `max_rss_mb`, the RSS it had reached."""
    code = CHILD.format(
        scripts=str(SCRIPTS), repo=str(REPO), folder=str(folder), case=case,
        threads=threads,
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen = 0.0
    while proc.poll() is None:
        seen = max(seen, _rss_mb(proc.pid))
        if seen > max_rss_mb:
            proc.kill()
            proc.wait()
            return {"stopped_at_rss_mb": round(seen), "limit_mb": max_rss_mb}
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{case} failed:\n{err.decode()[-3000:]}")
    return json.loads(out.decode().splitlines()[-1])


def same_values(a: Path, b: Path) -> bool:
    """Whether two Parquet files hold the same schema and values, compared a batch of
    rows at a time (their row groups may differ)."""
    import pyarrow.parquet as pq

    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    if not fa.schema_arrow.equals(fb.schema_arrow, check_metadata=True):
        return False
    pairs = zip(fa.iter_batches(BLOCK), fb.iter_batches(BLOCK), strict=True)
    return all(x.equals(y) for x, y in pairs)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-rss-gb", type=float, default=7.5)
    ap.add_argument("--old-max-n", type=int, default=None, help="skip old above this N")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    import pyarrow

    record = {
        "machine": {"platform": platform.platform(), "cpus": _cpus()},
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyarrow": pyarrow.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },  # fmt: skip
        "classes": args.classes,
        "topk": TOPK,
        "threads": args.threads,
        "max_rss_gb": args.max_rss_gb,
        "runs": [],
    }
    limit = args.max_rss_gb * 1024
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in args.n:
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            make_inputs(n, args.classes, folder)
            run: dict = {"n": n, "logits_mb": round(n * args.classes * 4 / 2**20)}
            for case in WRITERS:
                if case == "old" and args.old_max_n and n > args.old_max_n:
                    run[case] = {"skipped": f"N above --old-max-n {args.old_max_n}"}
                    continue
                run[case] = run_case(case, folder, args.threads, limit)
                print(case, n, run[case], file=sys.stderr)
            new = folder / "new.parquet"
            run["file_mb"] = round(new.stat().st_size / 2**20, 1)
            run["new_import_same_bytes"] = _sha(new) == _sha(
                folder / "new_import.parquet"
            )
            old = folder / "old.parquet"
            if old.is_file():
                run["old_same_values"] = same_values(old, new)
                run["old_same_bytes"] = _sha(old) == _sha(new)
            run["readers"] = {}
            for case in READERS:
                run["readers"][case] = run_case(case, folder, args.threads, limit)
                print(case, n, run["readers"][case], file=sys.stderr)
            record["runs"].append(run)
            for f in folder.iterdir():
                f.unlink()
    print(json.dumps(record, indent=2))


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
