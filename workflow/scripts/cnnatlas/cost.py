"""What a run will cost, before it starts: per rule, CPU time and peak memory.

The jobs come from a dry run of the workflow (`snakemake -n --quiet rules`); the work of
each job from the config (with the schema's defaults), the number of images and, per
model, a profile measured here in a few seconds: its FLOPs per image
(`torch.utils.flop_counter.FlopCounterMode`), the CPU time of a forward pass of a small
batch at the configured crop, the decoding time of a few of the dataset's images, and
its activation and parameter memory. Per-rule calibration constants, measured by
`benchmarks/first_run.py` (`cost_constants.json` beside this module), turn work into
CPU seconds: a torch rule's work is counted in forward passes of one image (a backward
pass about two), an analysis rule's in (N / 1000) ** exponent per job. A model with
`features_from` has no profile: its import_features jobs cost the reading and
writing of its folders' files (their size on disk, at IMPORT_MB_PER_S).
"""

import json
import logging
import math
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnatlas.logs import clock

__all__ = [
    "ModelProfile",
    "profile_model",
    "import_sizes",
    "count_jobs",
    "estimate",
    "format_plan",
    "CONSTANTS",
]

log = logging.getLogger(__name__)

CONSTANTS = Path(__file__).with_name("cost_constants.json")
# an import's copy: read the folder's arrays and write them as float32 (a disk's speed,
# assumed, not calibrated: a cost_constants.json "import_mb_per_s" takes precedence)
IMPORT_MB_PER_S = 200.0
# what an import holds at once besides the process: a block of rows of one layer
IMPORT_BLOCK_MB = 512.0

STAGES = {
    "extraction": [
        "build_manifest",
        "extract_features",
        "extract_shard",
        "import_features",
    ],
    "explanations": [
        "select_explain_images",
        "render_feature_maps",
        "visualize_filters",
        "render_saliency",
        "check_saliency",
    ],
    "analysis": [
        "reduce_tsne",
        "reduce_pca",
        "reduce_umap",
        "reduce_pacmap",
        "measure_maps",
        "gather_metrics",
        "summarize_layers",
        "plot_embeddings",
        "plot_checkpoint_layer_grids",
        "make_thumbnail_sheets",
        "write_atlas",
        "write_index",
        "export_projector",
        "align_evolution",
        "plot_evolution",
        "draw_paper_figure",
        "measure_similarity",
        "compare_models",
        "gather_similarity",
    ],
}

# the keys that change a rule's cost most, named in the plan
KEYS = {
    "build_manifest": ["dataset.path"],
    "extract_features": ["dataset size", "models.*.layers", "extract.batch_size"],
    "extract_shard": ["extract.shards", "extract.batch_size"],
    "import_features": ["models.*.features_from"],
    "render_feature_maps": ["explain.images.correct_per_class", "explain.layers"],
    "visualize_filters": [
        "explain.filters.budget_gflop",
        "explain.filters.max_images",
        "explain.filters.size",
    ],
    "render_saliency": ["explain.saliency.max_images", "explain.saliency.methods"],
    "check_saliency": [
        "explain.trust.max_images",
        "explain.trust.methods",
        "explain.trust.step",
        "explain.trust.road_fractions",
        "explain.trust.cascade_images",
        "explain.trust.budget_gflop",
    ],
    "reduce_tsne": ["maps.perplexities", "maps.seeds", "maps.dims"],
    "reduce_umap": ["maps.methods", "maps.seeds"],
    "reduce_pca": ["maps.methods"],
    "measure_maps": ["maps.*", "metrics.k"],
    "plot_embeddings": ["figures.maps.methods", "figures.colour_by"],
    "export_projector": ["projector.enabled"],
    "make_thumbnail_sheets": ["figures.thumbnail_px"],
    "measure_similarity": ["similarity.enabled", "similarity.gram_max_n"],
    "compare_models": ["similarity.enabled", "similarity.gram_max_n"],
}


@dataclass(frozen=True)
class ModelProfile:
    """What one model costs per image, measured here."""

    name: str
    gflop: float  # forward pass of one image (FlopCounterMode: 2 x multiply-adds)
    forward_s: (
        float  # CPU seconds per image of a forward pass (batches of 1 and 8 timed)
    )
    call_s: float  # CPU seconds per forward call beyond its images' (Python, dispatch)
    decode_s: float  # CPU seconds to decode and transform one dataset image
    params_mb: float
    activations_mb: float  # every module's output for one image (a backward keeps them)
    crop: int
    filter_gflop: float  # the filters' optimization after explain.filters.budget_gflop
    filter_setting: str  # "4 channels x 45 steps"
    target_channels: (
        int  # channels of the saliency layer (Score-CAM's passes per image)
    )
    parameter_layers: int  # layers of the randomisation cascade


def _cpu() -> float:
    return time.process_time()


def profile_model(
    spec: Mapping[str, Any],
    name: str,
    explain: Mapping[str, Any],
    sample_paths: Sequence[str],
    threads: int = 1,
    batch: int = 8,
) -> ModelProfile:
    """Measure one model (random weights of its architecture: the cost does not depend
    on the weights) at its configured transform, on `threads` threads."""
    import torch

    from cnnatlas.data import load_image
    from cnnatlas.explain.filters import fit_budget, step_gflop
    from cnnatlas.explain.gradcam import find_target_layer
    from cnnatlas.explain.inputs import activation_mb, spatial_layers
    from cnnatlas.explain.randomise import parameter_layers
    from cnnatlas.explain.trust import forward_gflop, layer_channels
    from cnnatlas.models import build_model
    from cnnatlas.torchutil import make_transform

    torch.set_num_threads(threads)
    model = build_model(spec["arch"], spec["num_classes"], spec.get("kwargs")).eval()
    tf = make_transform(spec["transform"])
    c, crop = tf.spec.channels, tf.spec.crop
    x = torch.rand(1, c, crop, crop)
    gflop = forward_gflop(model, x)
    times = {}
    with torch.inference_mode():
        for b in (1, batch):
            xb = torch.rand(b, c, crop, crop)
            model(xb)  # warm-up
            # the least of three: other load on the machine only ever adds time
            runs = []
            for _ in range(3):
                start = _cpu()
                model(xb)
                runs.append(_cpu() - start)
            times[b] = min(runs)
    # a call costs call_s plus forward_s per image
    forward_s = max((times[batch] - times[1]) / (batch - 1), times[batch] / batch / 4)
    call_s = max(times[1] - forward_s, 0.0)
    decode_s = 0.0
    if sample_paths:
        start = _cpu()
        for p in sample_paths:
            tf(load_image(p, c))
        decode_s = (_cpu() - start) / len(sample_paths)
    layers = spatial_layers(model, spec["transform"], list(spec["layers"]), None)
    filters = explain["filters"]
    size = min(filters["size"] or crop, crop)
    per_step = [step_gflop(model, layer, c, size, "cpu") for layer in layers]
    chans, steps = fit_budget(
        per_step, filters["channels"], filters["steps"], filters["budget_gflop"]
    )
    n_chan = chans if isinstance(chans, int) else len(chans)
    target = explain["saliency"]["target_layer"] or find_target_layer(model, c, crop)
    channels = layer_channels(model, target, x)
    params = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    return ModelProfile(
        name=name,
        gflop=gflop,
        forward_s=forward_s,
        call_s=call_s,
        decode_s=decode_s,
        params_mb=params,
        activations_mb=activation_mb(model, spec["transform"]),
        crop=crop,
        filter_gflop=n_chan * steps * sum(per_step),
        filter_setting=f"{n_chan} channels x {steps} steps at {size} px",
        target_channels=channels,
        parameter_layers=len(parameter_layers(model)),
    )


def import_sizes(models: Mapping[str, Any]) -> dict[str, float]:
    """{model/ckpt: MB of the files its import reads} for the models with
    `features_from` (a missing file counts 0: the import job names it)."""
    from cnnatlas.precomputed import FEATURES_FROM, folder_files

    return {
        f"{m}/{c}": sum(f.stat().st_size for f in folder_files(d, list(spec["layers"])))
        / 2**20
        for m, spec in models.items()
        for c, d in spec.get(FEATURES_FROM, {}).items()
    }


def _import_row(count: int, sizes: Mapping[str, float], constants) -> tuple:
    """(CPU seconds, work in MB, peak MB of one job) of `count` import jobs."""
    mb = count * sum(sizes.values()) / max(len(sizes), 1)
    speed = constants.get("import_mb_per_s", IMPORT_MB_PER_S)
    largest = max(sizes.values(), default=0.0)
    return mb / speed, mb, 700.0 + min(largest, IMPORT_BLOCK_MB)


_JOB_LINE = re.compile(r"^(\w+)\s+(\d+)$")


def count_jobs(
    snakefile: str | Path,
    workdir: str | Path,
    configfiles: Sequence[str] = (),
    cores: int = 1,
) -> dict[str, int]:
    """Jobs per rule that a run would execute now, from a dry run's job stats."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-n"]
    cmd += ["--quiet", "rules", "--cores", str(cores)]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
        raise RuntimeError("\n".join(lines[-15:]))
    jobs = {}
    for line in r.stdout.splitlines() + r.stderr.splitlines():
        m = _JOB_LINE.match(line.strip())
        if m and m.group(1) not in ("all", "total", "count"):
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def load_constants(path: str | Path = CONSTANTS) -> dict[str, Any]:
    """The calibration constants: base (CPU seconds per job), k (CPU seconds per unit of
    work), exponent (of N / 1000 per job, analysis rules) and where they were measured."""
    return json.loads(Path(path).read_text())


def _check_shape(
    prof: ModelProfile, trust: Mapping[str, Any], methods
) -> tuple[int, int]:
    """(cascade steps, Score-CAM's masked passes per image) of the saliency checks."""
    from cnnatlas.explain.randomise import step_bounds
    from cnnatlas.explain.saliency import METHODS

    steps = len(step_bounds(prof.parameter_layers, trust["cascade_steps"]))
    score = sum(METHODS[m].passes_per_channel for m in methods) * prof.target_channels
    return steps, score


def _passes_check(prof: ModelProfile, trust: Mapping[str, Any], methods, n: int):
    """Forward-pass equivalents of one checkpoint's saliency checks."""
    from cnnatlas.explain.trust import check_passes

    t, cascade = check_images(prof, trust, methods, n)
    steps, score = _check_shape(prof, trust, methods)
    # ROAD's imputations cost about a forward pass each at 224 px (coarse to fine)
    road = 2 * len(trust["road_fractions"]) * len(methods)
    return check_passes(t, cascade, steps, len(methods), trust, score) + t * road


def check_images(
    prof: ModelProfile, trust: Mapping[str, Any], methods, n: int
) -> tuple[int, int]:
    """(images, cascade images) of one checkpoint's saliency checks, as the job fits
    them to explain.trust.budget_gflop."""
    from cnnatlas.explain.trust import fit_check_budget

    steps, score = _check_shape(prof, trust, methods)
    return fit_check_budget(prof.gflop, n, steps, len(methods), trust, score)


def work(
    rule: str,
    jobs: int,
    n: int,
    classes: int,
    prof: ModelProfile,
    config: Mapping[str, Any],
    trust_methods: Sequence[str],
) -> float:
    """A torch rule's work in forward-pass CPU seconds of `prof`'s model (the
    analysis rules' work is counted in `estimate`)."""
    ex = config["explain"]
    images = ex["images"]

    def per_image(batch: int) -> float:
        return prof.forward_s + prof.call_s / max(batch, 1)

    fwd = per_image(ex["trust"]["batch_size"])
    chosen = len(images["ids"]) or classes * (
        images["correct_per_class"] + images["misclassified_per_class"]
    )
    if rule == "build_manifest":
        return n * prof.decode_s
    if rule in ("extract_features", "extract_shard"):
        bs = config["extract"]["batch_size"]
        return (
            jobs * n * (per_image(bs) + prof.decode_s)
            if rule == "extract_features"
            else 0.0
        )
    if rule == "select_explain_images":
        return 0.0
    if rule == "render_feature_maps":
        return jobs * chosen * (per_image(chosen) + prof.decode_s)
    if rule == "render_saliency":
        g = (
            n
            if ex["saliency"]["max_images"] is None
            else min(n, ex["saliency"]["max_images"])
        )
        m = len(ex["saliency"]["methods"])
        per = (
            3 + 1 + m
        )  # maps (forward + backward), random pixels, each method's pixels
        fwd = per_image(min(g, ex["saliency"]["batch_size"]))
        return jobs * (g * (per * fwd + prof.decode_s) + chosen * 5 * fwd)
    if rule == "visualize_filters":
        f = ex["filters"]
        stats = n if f["max_images"] is None else min(n, f["max_images"])
        chans = f["channels"] if isinstance(f["channels"], int) else len(f["channels"])
        am = prof.filter_gflop / max(prof.gflop, 1e-9) * per_image(chans)
        return jobs * (stats * (per_image(f["batch_size"]) + prof.decode_s) + am)
    if rule == "check_saliency":
        t = ex["trust"]
        fwd = per_image(
            min(t["batch_size"], check_images(prof, t, trust_methods, n)[0])
        )
        passes = _passes_check(prof, t, trust_methods, n)
        return jobs * passes * fwd
    return float(jobs)


def memory_mb(rule: str, prof: ModelProfile | None, config: Mapping[str, Any]) -> float:
    """Peak resident memory of one job (MB): the process with torch, the model, and the
    activations of its largest batch (most of them kept when it takes a gradient, a
    few layers' worth in an inference pass)."""
    base = 700.0
    if prof is None:
        return base
    ex, n = config["explain"], prof.activations_mb
    grad, infer = 0.8 * n, 0.12 * n
    if rule in ("extract_features", "extract_shard"):
        return base + prof.params_mb + config["extract"]["batch_size"] * infer
    if rule == "check_saliency":
        t = ex["trust"]
        # at most the images the budget leaves without Score-CAM (unknown here)
        bs = min(t["batch_size"], check_images(prof, t, [], 10**9)[0])
        return base + 2 * prof.params_mb + bs * grad
    if rule == "render_saliency":
        g = ex["saliency"]
        bs = min(g["batch_size"], g["max_images"] or g["batch_size"])
        return base + prof.params_mb + bs * grad
    if rule == "visualize_filters":
        f = ex["filters"]
        return base + prof.params_mb + f["batch_size"] * infer
    if rule == "render_feature_maps":
        return base + prof.params_mb + 32 * infer
    return base


def stage_of(rule: str) -> str:
    for stage, rules in STAGES.items():
        if rule in rules:
            return stage
    return "other"


def estimate(
    jobs: Mapping[str, int],
    n: int,
    classes: int,
    profiles: Mapping[str, ModelProfile],
    config: Mapping[str, Any],
    trust_methods: Sequence[str],
    constants: Mapping[str, Any],
    cores: int = 1,
    mem_mb: Mapping[str, float] | None = None,
    imports: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Per rule: jobs, CPU seconds, peak memory (MB) of one job and the keys that change
    it; per stage the sums; the dominant stage and rule; rules whose jobs would not fit
    `mem_mb` (a rule's memory resource). `imports`: `import_sizes` of the config."""
    base, k, expo = constants["base"], constants["k"], constants["exponent"]
    # a checkpoint of each model: the torch rules' jobs split evenly over the models
    n_models = max(len(profiles), 1)
    rows = []
    for rule, count in sorted(jobs.items()):
        torch_rule = rule in STAGES["extraction"] + STAGES["explanations"]
        fixed = count * base.get(rule, base["default"])
        units, mem = 0.0, 0.0
        if rule == "import_features":
            io_s, units, mem = _import_row(count, imports or {}, constants)
            cpu = fixed + io_s
        elif torch_rule and profiles:
            for prof in profiles.values():
                units += work(
                    rule, count / n_models, n, classes, prof, config, trust_methods
                )
                mem = max(mem, memory_mb(rule, prof, config))
            cpu = fixed + k.get(rule, 1.0) * units
        else:
            units = count * (n / 1000) ** expo.get(rule, expo["default"])
            cpu = fixed + k.get(rule, k["default"]) * units
            mem = memory_mb(rule, None, config)
        rows.append(
            {
                "rule": rule,
                "stage": stage_of(rule),
                "jobs": count,
                "cpu_s": round(cpu, 1),
                "base_s": round(fixed, 2),
                "work": round(units, 4),
                "mem_mb": round(mem),
                "keys": KEYS.get(rule, []),
            }
        )
    stages: dict[str, float] = {}
    for r in rows:
        stages[r["stage"]] = stages.get(r["stage"], 0.0) + r["cpu_s"]
    total = sum(stages.values())
    top = max(rows, key=lambda r: r["cpu_s"]) if rows else None
    too_big = []
    for r in rows:
        limit = (mem_mb or {}).get(r["rule"])
        if limit and r["mem_mb"] > limit:
            too_big.append(r["rule"])
    extraction = stages.get("extraction", 0.0) or math.nan
    return {
        "images": n,
        "cores": cores,
        "models": {
            name: {
                "gflop": round(p.gflop, 3),
                "forward_cpu_s": round(p.forward_s, 4),
                "call_cpu_s": round(p.call_s, 4),
                "decode_cpu_s": round(p.decode_s, 4),
                "filters": p.filter_setting,
            }
            for name, p in profiles.items()
        },
        "rules": rows,
        "stages": {s: round(v, 1) for s, v in sorted(stages.items())},
        "ratio_to_extraction": {
            s: round(v / extraction, 2) for s, v in sorted(stages.items())
        },
        "total_cpu_s": round(total, 1),
        "dominant": top["rule"] if top else None,
        "too_big": too_big,
        "calibration": constants.get("measured_on", ""),
    }


def format_plan(plan: Mapping[str, Any], mem_limits: Mapping[str, float]) -> str:
    """The plan as a table a user reads before starting a run."""
    lines = [f"cnnatlas plan: {plan['images']:,} images, {plan['cores']} cores"]
    for name, m in plan["models"].items():
        lines.append(
            f"  {name}: {m['gflop']:.3g} GFLOP and {m['forward_cpu_s']:.3g} CPU-s per "
            f"image forward, {m['decode_cpu_s']:.3g} CPU-s per image decode; filters "
            f"{m['filters']}"
        )
    lines.append("")
    head = (
        f"{'stage':<13} {'rule':<28} {'jobs':>5} {'CPU time':>14} {'peak memory':>12}"
    )
    lines += [head, "-" * len(head)]
    for r in sorted(plan["rules"], key=lambda r: (r["stage"], -r["cpu_s"])):
        limit = mem_limits.get(r["rule"])
        flag = " > mem_mb" if limit and r["mem_mb"] > limit else ""
        lines.append(
            f"{r['stage']:<13} {r['rule']:<28} {r['jobs']:>5} "
            f"{clock(r['cpu_s']):>14} {r['mem_mb'] / 1024:>9.1f} GB{flag}"
        )
    lines.append("")
    total = plan["total_cpu_s"]
    for stage, cpu in plan["stages"].items():
        ratio = plan["ratio_to_extraction"].get(stage)
        lines.append(
            f"{stage:<13} {clock(cpu):>14}  ({cpu / total:.0%} of the run, "
            f"{ratio:g} x the extraction)"
        )
    lines.append(
        f"in all about {clock(total)} of CPU time; on {plan['cores']} cores at least "
        f"{clock(total / plan['cores'])} of wall time"
    )
    top = next(r for r in plan["rules"] if r["rule"] == plan["dominant"])
    keys = ", ".join(top["keys"]) or "its rule's settings"
    lines.append(f"dominant: {top['rule']} ({top['cpu_s'] / total:.0%}); keys: {keys}")
    for rule in plan["too_big"]:
        r = next(x for x in plan["rules"] if x["rule"] == rule)
        lines.append(
            f"cnnatlas: {rule} would need about {r['mem_mb'] / 1024:.1f} GB, more than "
            f"its mem_mb ({mem_limits[rule] / 1024:.1f} GB); lower "
            f"{(r['keys'] or ['its batch size'])[0]} or the batch size, or raise mem_mb "
            "for the rule (--set-resources)"
        )
    if plan["calibration"]:
        lines.append(f"(calibration: {plan['calibration']})")
    return "\n".join(lines)
