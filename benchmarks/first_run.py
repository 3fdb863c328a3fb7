"""A real model's first run, as a new user makes it: per-stage CPU time against extraction.

For each architecture: N photo-sized JPEGs (500 x 375, smooth random content in 10 class
folders, generated once per WORKDIR), a random-init checkpoint (`weights=None`, seed 0),
and a config with only the keys a new user writes (dataset, one model with one checkpoint,
a few layers, the ImageNet transform); every other key is the schema's default. The real
snakemake runs it (nice -n 10, `--cores CORES`), then Snakemake's benchmark files give
each rule's CPU time; rules are grouped into stages (extraction, explanations, analysis,
other), each reported with its ratio to the extraction's CPU time. When `cnnatlas plan`
exists, its estimate of each rule is recorded beside the measurement (before the run).

    .venv/bin/python benchmarks/first_run.py --archs resnet50 --n 1000 \
        --workdir /tmp/first-run > benchmarks/first-run-resnet50-1000.json

Prints JSON (one record per architecture).
"""

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cnnatlas.cost import stage_of  # noqa: E402
from scale import collect  # noqa: E402

CONSTANTS = REPO / "workflow" / "scripts" / "cnnatlas" / "cost_constants.json"

# a few layers per architecture, as a user picks them (`cnnatlas layers ARCH`)
LAYERS = {
    "resnet18": {
        "layer2": "avg",
        "layer3": "avg",
        "layer4": "avg",
        "avgpool": "flatten",
    },
    "resnet50": {
        "layer2": "avg",
        "layer3": "avg",
        "layer4": "avg",
        "avgpool": "flatten",
    },
    "vgg16": {
        "features.16": "avg",
        "features.23": "avg",
        "features.30": "avg",
        "classifier.4": "flatten",
    },
    "convnext_tiny": {
        "features.3": "avg",
        "features.5": "avg",
        "features.7": "avg",
        "avgpool": "flatten",
    },
    "efficientnet_b0": {
        "features.4": "avg",
        "features.6": "avg",
        "features.8": "avg",
        "avgpool": "flatten",
    },
    "mobilenet_v3_large": {
        "features.7": "avg",
        "features.12": "avg",
        "features.16": "avg",
        "avgpool": "flatten",
    },
}
TRANSFORM = {
    "resize": 256,
    "crop": 224,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def make_images(folder: Path, n: int, classes: int = 10, seed: int = 0) -> None:
    """`n` JPEGs of 500 x 375 in `classes` folders: low-frequency noise upsampled, a
    class-dependent tint, q 90 (photo-like sizes and decode cost)."""
    from PIL import Image

    if (folder / ".done").exists():
        return
    rng = np.random.default_rng(seed)
    for i in range(n):
        c = i % classes
        small = rng.random((12, 16, 3)) * 0.7 + 0.3 * np.eye(3)[c % 3]
        img = Image.fromarray((small * 255).astype(np.uint8)).resize(
            (500, 375), Image.Resampling.BICUBIC
        )
        out = folder / f"class{c:02d}" / f"img{i:05d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out, quality=90)
    (folder / ".done").write_text(str(n))


def write_config(workdir: Path, arch: str, images: Path) -> Path:
    import torch
    import torchvision

    ckpt = workdir / "checkpoints" / f"{arch}.pt"
    if not ckpt.exists():
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), ckpt)
    config = {
        "dataset": {"kind": "imagefolder", "path": str(images)},
        "models": {
            arch: {
                "arch": arch,
                "num_classes": 10,
                "checkpoints": {"init": str(ckpt)},
                "layers": LAYERS[arch],
                "transform": TRANSFORM,
            }
        },
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def plan_estimate(workdir: Path, cores: int) -> dict | None:
    """`cnnatlas plan --json` for the workdir's config, in an empty copy of the folder
    (so that the dry run lists every job, before or after the run)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(workdir / "config.yaml", Path(tmp) / "config.yaml")
        cmd = [sys.executable, "-m", "cnnatlas.cli", "plan", "--json"]
        cmd += ["--cores", str(cores)]
        env = os.environ | {"PYTHONPATH": str(REPO / "workflow" / "scripts")}
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env)
    if r.returncode not in (0, 1) or not r.stdout.strip().startswith("{"):
        print(f"plan: no estimate ({r.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return json.loads(r.stdout)


def attach_plan(record: dict, plan: dict) -> None:
    """Each rule's estimate (and its work units) beside its measured CPU time."""
    est = {j["rule"]: j for j in plan.get("rules", [])}
    for k, r in record["rules"].items():
        if k in est:
            r["plan_cpu_s"] = est[k]["cpu_s"]
            r["plan_base_s"] = est[k]["base_s"]
            r["plan_work"] = est[k]["work"]
            r["plan_over_measured"] = round(est[k]["cpu_s"] / max(r["cpu_s"], 0.5), 2)
            r["plan_mem_mb"] = est[k].get("mem_mb")
    record["plan_stages_cpu_s"] = plan.get("stages")
    record["plan_models"] = plan.get("models")


def calibrate(records: list[dict]) -> dict:
    """Per rule, k = median over runs of (measured - base) / work: CPU seconds per unit."""
    from statistics import median

    constants = json.loads(CONSTANTS.read_text())
    ks: dict[str, list[float]] = {}
    for rec in records:
        for rule, r in rec["rules"].items():
            if r.get("plan_work"):
                ks.setdefault(rule, []).append(
                    max(r["cpu_s"] - r["plan_base_s"], 0.0) / r["plan_work"]
                )
    constants["k"] |= {rule: round(median(v), 4) for rule, v in sorted(ks.items())}
    return constants


def run_arch(arch: str, n: int, workdir: Path, cores: int) -> dict:
    images = workdir.parent / f"images-{n}"
    make_images(images, n)
    write_config(workdir, arch, images)
    plan = plan_estimate(workdir, cores)
    cmd = ["nice", "-n", "10", sys.executable, "-m", "snakemake", "-s"]
    cmd += [str(REPO / "Snakefile"), "--cores", str(cores), "--quiet", "rules"]
    start = time.monotonic()
    subprocess.run(cmd, cwd=workdir, check=True)
    wall = time.monotonic() - start
    rules = collect(workdir / "results")["rules"]
    extraction = sum(
        r["cpu_time"]["sum"] for k, r in rules.items() if stage_of(k) == "extraction"
    )
    stages: dict[str, float] = {}
    for k, r in rules.items():
        stages[stage_of(k)] = stages.get(stage_of(k), 0.0) + r["cpu_time"]["sum"]
    record = {
        "arch": arch,
        "n_images": n,
        "cores": cores,
        "wall_s": round(wall, 1),
        "stages_cpu_s": {k: round(v, 1) for k, v in sorted(stages.items())},
        "ratio_to_extraction": {
            k: round(v / extraction, 3) for k, v in sorted(stages.items())
        },
        "rules": {
            k: {
                "jobs": r["jobs"],
                "cpu_s": r["cpu_time"]["sum"],
                "wall_s": r["s"]["sum"],
                "ratio_to_extraction": round(r["cpu_time"]["sum"] / extraction, 3),
                "max_rss_mb": r["max_rss"]["max"],
            }
            for k, r in sorted(rules.items())
        },
    }
    if plan is not None:
        attach_plan(record, plan)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--archs", nargs="+", default=list(LAYERS), choices=list(LAYERS)
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--workdir", type=Path, help="where the runs go")
    parser.add_argument(
        "--replan",
        nargs="+",
        type=Path,
        help="instead of running: estimate again (with the current constants) for the "
        "runs of these JSONs, whose workdirs still hold their config.yaml",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="with --replan: write the constants fitted to those runs first",
    )
    parser.add_argument(
        "--table",
        nargs="+",
        type=Path,
        help="instead of running: print the Markdown table of these JSONs' runs",
    )
    args = parser.parse_args()
    if args.table:
        return print(
            table([r for p in args.table for r in json.loads(p.read_text())["runs"]])
        )
    if args.replan:
        return replan(args.replan, args.cores, args.calibrate)
    if args.workdir is None:
        parser.error("give --workdir (where the runs go) or --replan JSON...")
    import torch

    out = {
        "command": " ".join(sys.argv),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "runs": [],
    }
    for arch in args.archs:
        work = args.workdir / f"{arch}-{args.n}"
        work.mkdir(parents=True, exist_ok=True)
        out["runs"].append(run_arch(arch, args.n, work, args.cores))
        out["runs"][-1]["workdir"] = str(work)
        print(json.dumps(out["runs"][-1]["ratio_to_extraction"]), file=sys.stderr)
    print(json.dumps(out, indent=1))


def table(runs: list[dict]) -> str:
    """Per run: CPU seconds of extraction, explanations and analysis, their ratios to
    the extraction, the largest explanation rule, and the plan's estimate of each stage
    over the measured time (the worst rule's too)."""
    head = (
        "| model | images | extraction CPU-s | explanations CPU-s (ratio) | analysis CPU-s "
        "(ratio) | largest explanation job | plan / measured, per stage | worst rule |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in runs:
        st, ra = r["stages_cpu_s"], r["ratio_to_extraction"]
        ex = {k: v for k, v in r["rules"].items() if stage_of(k) == "explanations"}
        top = max(ex, key=lambda k: ex[k]["cpu_s"])
        plan = r.get("plan_stages_cpu_s") or {}
        per_stage = ", ".join(
            f"{s_} {plan[s_] / st[s_]:.2f}"
            for s_ in ("extraction", "explanations", "analysis")
            if s_ in plan and st.get(s_)
        )
        rated = [(k, v["plan_over_measured"]) for k, v in r["rules"].items()
                 if "plan_over_measured" in v and v["cpu_s"] >= 5]  # fmt: skip
        worst = max(rated, key=lambda kv: abs(math.log(kv[1])), default=None)
        lines.append(
            f"| {r['arch']} | {r['n_images']:,} | {st['extraction']:.0f} | "
            f"{st['explanations']:.0f} ({ra['explanations']:.2f}) | "
            f"{st['analysis']:.0f} ({ra['analysis']:.2f}) | "
            f"{top} {ex[top]['cpu_s']:.0f} | {per_stage or '-'} | "
            f"{f'{worst[0]} {worst[1]:.2f}' if worst else '-'} |"
        )
    return "\n".join(lines)


def replan(paths: list[Path], cores: int, fit: bool) -> None:
    """Re-estimate recorded runs (optionally after fitting the constants to them) and
    print them with the estimates attached."""
    docs = [json.loads(p.read_text()) for p in paths]
    runs = [r for d in docs for r in d["runs"]]
    for r in runs:
        plan = plan_estimate(Path(r["workdir"]), cores)
        if plan is not None:
            attach_plan(r, plan)
    if fit:
        constants = calibrate(runs)
        names = ", ".join(f"{r['arch']} ({r['n_images']} images)" for r in runs)
        machine = docs[0]["machine"]
        constants["measured_on"] = (
            f"benchmarks/first_run.py on {names}; {machine['cpu_count']} CPUs, "
            f"{machine['platform']}, torch {machine['torch']}"
        )
        CONSTANTS.write_text(json.dumps(constants, indent=1, sort_keys=True) + "\n")
        for r in runs:
            plan = plan_estimate(Path(r["workdir"]), cores)
            if plan is not None:
                attach_plan(r, plan)
    out = {"command": " ".join(sys.argv), "machine": docs[0]["machine"], "runs": runs}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
