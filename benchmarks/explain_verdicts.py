"""Do the bounded default saliency checks reach the same verdicts as the full ones?

For each checkpoint, `cnnatlas.explain.trust.render_saliency_checks` runs three times on
the same predictions: with the full checks (every method on 100 images, one layer per
cascade step and every checked image through it, 5% deletion/insertion steps, nine ROAD
fractions, no budget: the demo config's settings), with the schema's defaults (at most
100 images, or `--images`, and 20 of them through at most 8 cascade steps, fewer where
`explain.trust.budget_gflop` says so; 20% steps, ROAD at 0.2/0.5/0.8), and with the
defaults at the budget's floors (10 images, 4 through the cascade: what a costly model
such as a ResNet-50 at 224 px gets). Per method checked by all, it compares the
verdicts: passing the randomisation check, and deletion and insertion beating, tying or
losing to the random order; and records each run's CPU seconds.

Checkpoints: the demo's (run the demo first: `snakemake --cores 2`), and a torchvision
resnet18 trained here on the demo's digits (`--resnet18`, seed 0, a few hundred Adam
steps at 32 px; a few CPU-minutes).

    .venv/bin/python benchmarks/explain_verdicts.py --results results --resnet18 \
        > benchmarks/explain-verdicts.json
"""

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from cnnatlas.explain.trust import (  # noqa: E402
    MIN_CASCADE,
    MIN_IMAGES,
    render_saliency_checks,
)
from cnnatlas.models import load_model  # noqa: E402
from cnnatlas.schema import defaults  # noqa: E402
from cnnatlas.torchutil import ImageDataset, make_transform  # noqa: E402

FULL = {
    "max_images": 100,
    "cascade_images": None,
    "cascade_steps": None,
    "step": 0.05,
    "road_fractions": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "batch_size": 64,
    "budget_gflop": None,
}
# what the budget leaves a costly model (a ResNet-50 at 224 px): its floors
FLOORS = {"max_images": MIN_IMAGES, "cascade_images": MIN_CASCADE}
METHODS = ["gradcam", "gradcam++", "hirescam", "layercam"]
KINDS = ("randomisation", "deletion", "insertion")


def _words(verdict: str) -> dict[str, str]:
    """The verdict's outcomes: randomisation passes/fails, deletion/insertion words."""
    out = {"randomisation": "passes" if ": passes" in verdict else "fails"}
    for kind in ("deletion", "insertion"):
        m = re.search(kind + r" (beats|ties with|loses to) random order", verdict)
        out[kind] = m.group(1) if m else "?"
    return out


def _run(predictions, model, transform, options, methods) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = {
            k: f"{tmp}/{k}.{ext}"
            for k, ext in (
                ("summary", "parquet"),
                ("curves", "parquet"),
                ("randomisation", "parquet"),
                ("cascade", "npz"),
                ("curves_figure", "png"),
                ("cascade_figure", "png"),
            )
        }
        start = time.process_time()
        summary = render_saliency_checks(
            predictions, model, transform, out, methods, None, options, "cpu"
        )
        cpu = time.process_time() - start
    rows = summary[summary["group"] == "all"].set_index("method")
    return {m: _words(rows.loc[m, "verdict"]) | {"verdict": rows.loc[m, "verdict"]}
            for m in rows.index}, cpu  # fmt: skip


def _agree(a: dict, b: dict) -> dict:
    return {m: {k: a[m][k] == b[m][k] for k in KINDS} for m in METHODS}


def _contradicts(a: dict, b: dict) -> int:
    """Cells where one run says beats and the other loses (a tie contradicts neither)."""
    return sum(
        {a[m][k], b[m][k]} == {"beats", "loses to"} for m in METHODS for k in KINDS
    )


def compare(name, predictions, model, transform, images=None) -> dict:
    """Full checks, the defaults (the images and cascade images explain.trust.
    budget_gflop leaves the model), and the defaults at the budget's floors (10 images,
    4 through the cascade: what a costly model such as a ResNet-50 at 224 px gets). The
    defaults against the full isolate the cuts (steps, ROAD fractions, cascade steps and
    images) at the budget's sample; the floors against the full add the smaller
    sample."""
    reduced_opts = defaults("explain.trust")
    if images is not None:
        reduced_opts["max_images"] = images
    full_opts = reduced_opts | FULL
    floor_opts = reduced_opts | FLOORS
    runs, cpu = {}, {}
    for key, opts in (("full", full_opts), ("reduced", reduced_opts),
                      ("floors", floor_opts)):  # fmt: skip
        runs[key], t = _run(predictions, model, transform, opts, METHODS)
        cpu[key] = round(t, 1)
    agree = _agree(runs["full"], runs["reduced"])
    floors = _agree(runs["full"], runs["floors"])
    return {
        "checkpoint": name,
        "cpu_s": cpu,
        **runs,
        "agree": agree,
        "all_agree": all(all(v.values()) for v in agree.values()),
        "floors_agree": floors,
        "floors_all_agree": all(all(v.values()) for v in floors.values()),
        "floors_contradictions": _contradicts(runs["full"], runs["floors"]),
        "contradictions": _contradicts(runs["full"], runs["reduced"]),
    }


def _train_resnet18(results: Path, steps: int) -> tuple[torch.nn.Module, dict]:
    import torchvision

    transform = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    root = results / "demo" / "digits" / "train"
    paths = sorted(str(p) for p in root.rglob("*.png"))
    labels = [int(Path(p).parent.name) for p in paths]
    ds = ImageDataset(paths, make_transform(transform))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor(labels)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval(), transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resnet18", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--images", type=int, help="max_images of the bounded run (the default's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    spec = config["models"]["digitnet"]
    runs = []
    for ckpt, path in spec["checkpoints"].items():
        pred = pd.read_parquet(args.results / "digitnet" / ckpt / "predictions.parquet")
        model = load_model(spec, REPO / path)
        runs.append(
            compare(f"digitnet/{ckpt}", pred, model, spec["transform"], args.images)
        )
        print(
            json.dumps(
                {
                    runs[-1]["checkpoint"]: [
                        runs[-1]["all_agree"],
                        runs[-1]["floors_all_agree"],
                    ]
                }
            ),
            file=sys.stderr,
        )
    if args.resnet18:
        model, transform = _train_resnet18(args.results, args.steps)
        pred = pd.read_parquet(
            args.results / "digitnet" / "step0600" / "predictions.parquet"
        )
        with torch.inference_mode():
            ds = ImageDataset(pred["path"].tolist(), make_transform(transform))
            out = torch.cat([model(torch.stack([ds[i][0] for i in range(j, min(j + 64, len(ds)))]))
                             for j in range(0, len(ds), 64)])  # fmt: skip
        pred = pred.assign(pred=out.argmax(1).numpy())
        pred["correct"] = pred["pred"] == pred["label"]
        accuracy = float(pred["correct"].mean())
        runs.append(compare("resnet18 (digits)", pred, model, transform, args.images))
        runs[-1]["test_accuracy"] = round(accuracy, 3)
        print(
            json.dumps(
                {"resnet18": [runs[-1]["all_agree"], runs[-1]["floors_all_agree"]]}
            ),
            file=sys.stderr,
        )
    print(json.dumps({
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": args.threads},
        "runs": runs,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
