"""Per-rule cost of a run of the workflow on a scale dataset, from Snakemake's benchmark files.

run: make the scale dataset (`scale_data.py`) in WORKDIR unless its config.yaml exists,
run the real snakemake there (nice -n 10), time the whole run, then collect.
collect: read WORKDIR/results/benchmarks/**/*.tsv after a run (the rule is the first part
of the path under benchmarks/, e.g. measure_maps/digitnet/step0600/relu.tsv).
compare: each rule's cost ratio between two such JSONs (e.g. N = 10,000 over 2,000).

Per rule: jobs, wall time `s` (sum and max over jobs), `cpu_time` (sum and max) and the
max peak RSS `max_rss` (MB) of any job. Prints JSON; write `uptime` beside the numbers.

    .venv/bin/python benchmarks/scale.py run --kind digits --n 2000 --workdir /tmp/scale2000
    .venv/bin/python benchmarks/scale.py collect --workdir /tmp/scale2000 > n2000.json
    .venv/bin/python benchmarks/scale.py compare n2000.json n10000.json
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

COLUMNS = ("s", "cpu_time", "max_rss")


def collect(results: Path) -> dict:
    """{rule: {jobs, s: {sum, max}, cpu_time: {sum, max}, max_rss: {max}}} and the span
    of the run seen from the files (first job's start to last job's end, in seconds)."""
    bench = results / "benchmarks"
    files = sorted(bench.rglob("*.tsv"))
    if not files:
        raise SystemExit(f"{bench}: no benchmark files; run the workflow first")
    rows = []
    for f in files:
        table = pd.read_csv(f, sep="\t")
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise SystemExit(
                f"{f}: no column {missing} (not a Snakemake benchmark file)"
            )
        rule = f.relative_to(bench).parts[0].removesuffix(".tsv")
        end = f.stat().st_mtime
        for _, row in table.iterrows():
            rows.append(
                {"rule": rule, "end": end, **{c: float(row[c]) for c in COLUMNS}}
            )
    df = pd.DataFrame(rows)
    rules = {}
    for rule, g in df.groupby("rule", sort=True):
        rules[rule] = {
            "jobs": len(g),
            "s": {"sum": round(g["s"].sum(), 2), "max": round(g["s"].max(), 2)},
            "cpu_time": {
                "sum": round(g["cpu_time"].sum(), 2),
                "max": round(g["cpu_time"].max(), 2),
            },
            "max_rss": {"max": round(g["max_rss"].max(), 1)},
        }
    span = df["end"].max() - (df["end"] - df["s"]).min()
    return {"rules": rules, "span_s": round(float(span), 1)}


def compare(small: dict, large: dict) -> dict:
    """Per rule, large / small of s sum, cpu_time sum and max_rss; and of the run's wall."""

    def ratio(a: float, b: float) -> float | None:
        return round(b / a, 2) if a > 0 else None

    out = {}
    for rule in sorted(set(small["rules"]) | set(large["rules"])):
        a, b = small["rules"].get(rule), large["rules"].get(rule)
        if a is None or b is None:
            out[rule] = {"only_in": "small" if b is None else "large"}
            continue
        out[rule] = {
            "s": ratio(a["s"]["sum"], b["s"]["sum"]),
            "cpu_time": ratio(a["cpu_time"]["sum"], b["cpu_time"]["sum"]),
            "max_rss": ratio(a["max_rss"]["max"], b["max_rss"]["max"]),
        }
    wall = "wall_s" if "wall_s" in small and "wall_s" in large else "span_s"
    return {
        "n": [small.get("n"), large.get("n")],
        wall: ratio(small[wall], large[wall]),
        "rules": out,
    }


def run(
    kind: str,
    n: int,
    workdir: Path,
    cores: int,
    extra: list[str],
    tsne_threads: int = 1,
) -> dict:
    """Make the dataset if needed, run snakemake in workdir and collect its benchmarks."""
    from scale_data import make_digits, make_shapes

    if not (workdir / "config.yaml").exists():
        (make_digits if kind == "digits" else make_shapes)(workdir, n, *extra)
    cmd = ["nice", "-n", "10", sys.executable, "-m", "snakemake"]
    cmd += ["-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", str(cores)]
    # one core per t-SNE job (per-layer jobs side by side, beside the 1-core UMAP job):
    # a 2-core t-SNE job could not start while UMAP holds one of 2 cores
    cmd += ["--set-threads", f"reduce_tsne={tsne_threads}"]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    (workdir / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(
            f"snakemake failed ({proc.returncode}): see {workdir}/snakemake.log"
        )
    return {"wall_s": round(wall, 1), **collect(workdir / "results")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("run")
    r.add_argument("--kind", choices=["digits", "shapes"], default="digits")
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--workdir", type=Path, required=True)
    r.add_argument("--cores", type=int, default=2)
    r.add_argument("--checkpoints", help="digits: the demo's checkpoint folder")
    r.add_argument(
        "--tsne-threads", type=int, default=1, help="cores of each t-SNE job (1)"
    )
    c = sub.add_parser("collect")
    c.add_argument("--workdir", type=Path, required=True)
    c.add_argument("--n", type=int, help="recorded in the JSON")
    c.add_argument("--wall", type=float, help="the run's wall time, if measured")
    p = sub.add_parser("compare")
    p.add_argument("small", type=Path)
    p.add_argument("large", type=Path)
    args = parser.parse_args()
    load = os.getloadavg()
    if args.mode == "compare":
        out = compare(
            json.loads(args.small.read_text()), json.loads(args.large.read_text())
        )
    elif args.mode == "collect":
        out = {"n": args.n, **collect(args.workdir / "results")}
        if args.wall is not None:
            out["wall_s"] = args.wall
    else:
        extra = [0, args.checkpoints] if args.kind == "digits" else []
        out = {
            "n": args.n,
            "kind": args.kind,
            **run(
                args.kind, args.n, args.workdir, args.cores, extra, args.tsne_threads
            ),
        }
    if args.mode == "run":  # the machine's load around the run, to judge the times
        out["loadavg_before"] = [round(x, 2) for x in load]
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
