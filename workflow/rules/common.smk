import re
from pathlib import Path

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
MODELS = config["models"]
LIB = "../scripts/cnnatlas"


def _alternatives(names):
    return "|".join(map(re.escape, sorted(set(names), key=len, reverse=True)))


wildcard_constraints:
    model=_alternatives(MODELS),
    ckpt=_alternatives(c for m in MODELS.values() for c in m["checkpoints"]),
    layer=_alternatives(l for m in MODELS.values() for l in m["layers"]),


def lib(module):
    """A library module as a rule input, so that changing it re-runs the rule."""
    return workflow.source_path(f"{LIB}/{module}")


# A run killed with SIGKILL leaves Snakemake's locks behind; clear them when their owner
# (recorded in onstart, after locking) is dead, so that rerunning the same command works.
import os
import sys

from snakemake.logging import logger

sys.path.insert(0, os.path.join(workflow.current_basedir, "../scripts"))
from cnnatlas.locks import clear_stale_locks, record_owner
from cnnatlas.explain.method_names import (
    check_saliency_methods,
    saliency_method_names,
)

for _lock in clear_stale_locks(".snakemake"):
    logger.warning(f"Removed the stale lock {_lock} of a killed snakemake run.")


onstart:
    record_owner(".snakemake")


def model_ckpts():
    """(model, ckpt) pairs of the config, in config order."""
    return [(m, c) for m, spec in MODELS.items() for c in spec["checkpoints"]]


def checkpoint_file(wildcards):
    return MODELS[wildcards.model]["checkpoints"][wildcards.ckpt]


def model_spec(wildcards):
    return MODELS[wildcards.model]


def model_layers(wildcards):
    return MODELS[wildcards.model]["layers"]


def run_dir(model, ckpt):
    return f"{RESULTS}/{model}/{ckpt}"


def extract_targets():
    return [
        out
        for m, c in model_ckpts()
        for out in (f"{run_dir(m, c)}/predictions.parquet", f"{run_dir(m, c)}/features")
    ]


MAPS = config["maps"]


def _fmt(value):
    """A perplexity as it appears in file names: 30 -> '30', 7.5 -> '7.5'."""
    return f"{float(value):g}"


def map_params():
    """(method, dim, perplexity, seed) of every configured map, as strings for paths.

    PCA is deterministic and has no perplexity: one map per dim, perplexity and seed 0.
    UMAP has no perplexity (0) and is swept over seeds; t-SNE over perplexities x seeds.
    """
    out = []
    for method in MAPS["methods"]:
        for dim in MAPS["dims"]:
            if method == "pca":
                out.append((method, str(dim), "0", "0"))
            elif method == "umap":
                out += [(method, str(dim), "0", str(s)) for s in MAPS["seeds"]]
            else:
                out += [
                    (method, str(dim), _fmt(p), str(s))
                    for p in MAPS["perplexities"]
                    for s in MAPS["seeds"]
                ]
    return out


def embedding_path(model, ckpt, layer, method, dim, perplexity, seed):
    """The output contract's embedding file."""
    return (
        f"{run_dir(model, ckpt)}/embeddings/{layer}/"
        f"{method}-{dim}d-p{perplexity}-s{seed}.parquet"
    )


def embedding_paths(model, ckpt, layer):
    """Every configured embedding of one layer of one checkpoint."""
    return [embedding_path(model, ckpt, layer, *p) for p in map_params()]


# --- maps stage helpers (reduce.smk) ---


def method_maps(method):
    """(dim, perplexity, seed) strings of the configured maps of one method."""
    return [p[1:] for p in map_params() if p[0] == method]


def method_outputs(method):
    """One method's embedding paths with {model}, {ckpt}, {layer} left as wildcards."""
    return [
        embedding_path("{model}", "{ckpt}", "{layer}", method, *p)
        for p in method_maps(method)
    ]


def features_file(model, ckpt, layer):
    return f"{run_dir(model, ckpt)}/features/{layer}.npy"


def layer_features(wildcards):
    return features_file(wildcards.model, wildcards.ckpt, wildcards.layer)


def layer_embeddings(wildcards):
    return embedding_paths(wildcards.model, wildcards.ckpt, wildcards.layer)


def model_layer_list(model):
    return list(MODELS[model]["layers"])


def umap_jobs():
    """Every layer's UMAP maps: [{features, maps: [[dim, perplexity, seed, path], ...]}]."""
    return [
        {
            "features": features_file(m, c, l),
            "maps": [
                [*p, embedding_path(m, c, l, "umap", *p)] for p in method_maps("umap")
            ],
        }
        for m, c in model_ckpts()
        for l in model_layer_list(m)
    ]


def umap_outputs():
    return [path for job in umap_jobs() for *_, path in job["maps"]]


def all_features_dirs():
    return [f"{run_dir(m, c)}/features" for m, c in model_ckpts()]


def layer_metrics_path(model, ckpt, layer):
    return f"{run_dir(model, ckpt)}/metrics/{layer}.parquet"


def all_layer_metrics():
    return [
        layer_metrics_path(m, c, l)
        for m, c in model_ckpts()
        for l in model_layer_list(m)
    ]


def summary_path(model, ext):
    return f"{RESULTS}/{model}/layer_summary.{ext}"


def model_ckpt_names(wildcards):
    return list(MODELS[wildcards.model]["checkpoints"])


def maps_targets():
    """The maps stage's final outputs: every embedding, metrics.parquet, layer summaries."""
    embeddings = [
        path
        for m, c in model_ckpts()
        for l in model_layer_list(m)
        for path in embedding_paths(m, c, l)
    ]
    summaries = [
        summary_path(m, ext) for m in MODELS for ext in ("parquet", "csv", "png", "pdf")
    ]
    return [*embeddings, f"{RESULTS}/metrics.parquet", *summaries]


PROVENANCE = f"{RESULTS}/provenance.json"


def run_outputs(wildcards):
    """Every target of `rule all` but the provenance record itself."""
    return [str(f) for f in rules.all.input if str(f) != PROVENANCE]


def checkpoint_files():
    """{model/ckpt: checkpoint file} of the config."""
    return {f"{m}/{c}": MODELS[m]["checkpoints"][c] for m, c in model_ckpts()}


def rule_threads(wildcards):
    """Threads each rule asks for (set-threads of the profiles applied), by rule name."""
    out = {}
    for r in workflow.rules:
        value = getattr(r.resources["_cores"], "value", 1)
        out[r.name] = value if isinstance(value, int) else str(value)
    return out


EXPLAIN = config["explain"]


def _check_explain():
    ckpts = {c for m in MODELS.values() for c in m["checkpoints"]}
    unknown = sorted(set(EXPLAIN["checkpoints"]) - ckpts)
    if unknown:
        raise ValueError(
            f"explain.checkpoints: {unknown} are not checkpoints of any model "
            f"({sorted(ckpts)}); fix the names or leave the list empty for all"
        )
    unknown = sorted(set(EXPLAIN["layers"]) - set(MODELS))
    if unknown:
        raise ValueError(
            f"explain.layers: {unknown} are not models of the config ({sorted(MODELS)})"
        )
    check_saliency_methods(EXPLAIN["gradcam"]["methods"], "explain.gradcam.methods")
    check_saliency_methods(EXPLAIN["trust"]["methods"], "explain.trust.methods")


_check_explain()


def explain_lib(module):
    """An explanation module and the helpers it imports, as rule inputs."""
    helpers = [module, "inputs.py", "render.py", "method_names.py"]
    return [lib(f"explain/{m}") for m in helpers] + [
        lib(f"explain/saliency/{m}") for m in SALIENCY_MODULES
    ]


# every saliency method's module, so that adding or editing one reruns the jobs using them
SALIENCY_MODULES = sorted(
    p.name
    for p in Path(workflow.current_basedir, LIB, "explain", "saliency").glob("*.py")
)


def explain_layers(wildcards):
    """The model's layers listed under explain.layers, or None (its spatial configured layers)."""
    return EXPLAIN["layers"].get(wildcards.model)


def explain_targets():
    """Every explanation output of the checkpoints explain.checkpoints names (all if empty)."""
    if not EXPLAIN["enabled"]:
        return []
    wanted = set(EXPLAIN["checkpoints"])
    return [
        f"{run_dir(m, c)}/explain/{out}"
        for m, c in model_ckpts()
        if not wanted or c in wanted
        for out in (
            "feature_maps",
            "filters",
            "filters.parquet",
            "gradcam",
            "gradcam_faithfulness.parquet",
            "gradcam_summary.parquet",
            "gradcam_faithfulness.png",
        )
    ] + trust_targets()


TRUST_FILES = {
    "summary": "saliency_checks.parquet",
    "curves": "saliency_curves.parquet",
    "randomisation": "saliency_randomisation.parquet",
    "cascade": "saliency_cascade.npz",
    "curves_figure": "saliency_curves.png",
    "cascade_figure": "saliency_randomisation.png",
}


def trust_targets():
    """The saliency checks of the explained checkpoints (explain.trust.enabled)."""
    if not EXPLAIN["trust"]["enabled"]:
        return []
    wanted = set(EXPLAIN["checkpoints"])
    return [
        f"{run_dir(m, c)}/explain/{out}"
        for m, c in model_ckpts()
        if not wanted or c in wanted
        for out in TRUST_FILES.values()
    ]


def trust_methods(wildcards):
    """explain.trust.methods, or every saliency method when it is empty."""
    return EXPLAIN["trust"]["methods"] or saliency_method_names()


PROJECTOR = config["projector"]


def projector_features(wildcards):
    """layer -> features .npy of one checkpoint, for every configured layer."""
    folder = f"{run_dir(wildcards.model, wildcards.ckpt)}/features"
    return {layer: f"{folder}/{layer}.npy" for layer in model_layers(wildcards)}


def projector_maps(wildcards):
    """layer -> the checkpoint's embedding Parquets exported as extra tensors."""
    if not PROJECTOR["maps"]:
        return {}
    return {
        layer: embedding_paths(wildcards.model, wildcards.ckpt, layer)
        for layer in model_layers(wildcards)
    }


def projector_map_files(wildcards):
    return [p for paths in projector_maps(wildcards).values() for p in paths]


def projector_targets():
    if not PROJECTOR["enabled"]:
        return []
    return [f"{run_dir(m, c)}/projector" for m, c in model_ckpts()]


EVOLUTION = config["evolution"]
EVOLUTION_DIR = f"{RESULTS}/{{model}}/evolution/{{layer}}/{{method}}"


def evolution_layers(model):
    """The evolution layers of one model: evolution.layers that it has (all if null)."""
    layers = MODELS[model]["layers"]
    wanted = EVOLUTION["layers"]
    return list(layers) if wanted is None else [l for l in wanted if l in layers]


def _check_evolution_layers():
    known = {l for spec in MODELS.values() for l in spec["layers"]}
    unknown = [l for l in EVOLUTION["layers"] or [] if l not in known]
    if unknown:
        raise ValueError(
            f"config evolution.layers {unknown} are not layers of any model "
            f"(configured layers: {sorted(known)}); fix evolution.layers"
        )


_check_evolution_layers()


def evolution_ckpts(wildcards):
    """The model's checkpoints in config order: the order of the evolution."""
    return list(MODELS[wildcards.model]["checkpoints"])


def evolution_feature_dirs(wildcards):
    return [
        f"{run_dir(wildcards.model, c)}/features" for c in evolution_ckpts(wildcards)
    ]


def evolution_feature_files(wildcards):
    return {
        c: f"{run_dir(wildcards.model, c)}/features/{wildcards.layer}.npy"
        for c in evolution_ckpts(wildcards)
    }


def evolution_prediction_files(wildcards):
    return {
        c: f"{run_dir(wildcards.model, c)}/predictions.parquet"
        for c in evolution_ckpts(wildcards)
    }


def evolution_predictions(wildcards):
    return list(evolution_prediction_files(wildcards).values())


def evolution_options(wildcards):
    """The maps stage's t-SNE options, with the evolution's own iteration count."""
    return {**MAPS.get("tsne", {}), "n_iter": EVOLUTION["n_iter"]}


def evolution_title(wildcards):
    return f"{wildcards.model} {wildcards.layer} ({wildcards.method}, aligned)"


def evolution_targets():
    """Figures of every evolution layer and method of each model with 2+ checkpoints."""
    if not EVOLUTION["enabled"]:
        return []
    return [
        f"{RESULTS}/{m}/evolution/{l}/{method}/{name}"
        for m, spec in MODELS.items()
        if len(spec["checkpoints"]) >= 2
        for l in evolution_layers(m)
        for method in EVOLUTION["methods"]
        for name in ("strip.png", "animation.gif", "slider.html", "alignment.parquet")
    ]


EXTRACT_SHARDS = config["extract"]["shards"]


def shard_dir(model, ckpt, shard):
    """The outputs of one extraction shard (temporary; gathered by extract_features)."""
    return f"{run_dir(model, ckpt)}/shards/{shard}-of-{EXTRACT_SHARDS}"


def extract_shard_dirs(wildcards):
    """Every shard of a checkpoint in shard order, or none when extraction is not sharded."""
    if EXTRACT_SHARDS == 1:
        return []
    return [
        shard_dir(wildcards.model, wildcards.ckpt, i) for i in range(EXTRACT_SHARDS)
    ]


# --- paper figures (paper.smk) ---

PAPER = config.get("paper", {})
PAPER_DIR = f"{RESULTS}/paper"
PAPER_FONTS = {
    k: PAPER.get(k, v)
    for k, v in {"font_size": 7, "title_size": 7, "letter_size": 9}.items()
}
_PAPER_DEFAULTS = {
    "width": "double",
    "checkpoint": None,
    "checkpoints": None,
    "layers": None,
    "layer": None,
    "method": "tsne",
    "dim": 2,
    "perplexity": None,
    "perplexities": None,
    "seed": None,
    "seeds": None,
    "colour_by": "label",
    "image_ids": [0],
    "target_layer": None,
    "channels": 8,
    "columns": 8,
}


def _paper_error(name, key, value, known):
    raise ValueError(
        f"paper.figures.{name}.{key}: {value!r} is not one of {list(known)}; fix the config"
    )


def _paper_pick(name, key, values, known):
    for v in values:
        if v not in known:
            _paper_error(name, key, v, known)
    return list(values)


def _paper_map(model, ckpt, layer, method, perplexity, seed):
    """The embedding path of a 2-D map, with PCA/UMAP's fixed perplexity and seed."""
    p = "0" if method != "tsne" else _fmt(perplexity)
    s = "0" if method == "pca" else str(seed)
    return embedding_path(model, ckpt, layer, method, "2", p, s)


def _paper_grid(name, f, m):
    ckpts = _paper_pick(
        name, "checkpoints", f["checkpoints"] or m["checkpoints"], m["checkpoints"]
    )
    layers = _paper_pick(name, "layers", f["layers"] or m["layers"], m["layers"])
    method = _paper_pick(name, "method", [f["method"]], MAPS["methods"])[0]
    perp = f["perplexity"] if f["perplexity"] is not None else MAPS["perplexities"][0]
    seed = f["seed"] if f["seed"] is not None else MAPS["seeds"][0]
    if method == "tsne":
        _paper_pick(name, "perplexity", [perp], MAPS["perplexities"])
    if method != "pca":
        _paper_pick(name, "seed", [seed], MAPS["seeds"])
    panels = [
        {
            "row": c,
            "col": l,
            "embedding": _paper_map(f["model"], c, l, method, perp, seed),
            "predictions": f"{run_dir(f['model'], c)}/predictions.parquet",
        }
        for c in ckpts
        for l in layers
    ]
    return {"rows": ckpts, "cols": layers, "panels": panels}


def _paper_sweep(name, f, m, ckpt, layer):
    perps = f["perplexities"] or MAPS["perplexities"]
    seeds = f["seeds"] or MAPS["seeds"]
    _paper_pick(name, "perplexities", perps, MAPS["perplexities"])
    _paper_pick(name, "seeds", seeds, MAPS["seeds"])
    if "tsne" not in MAPS["methods"]:
        _paper_error(name, "kind", "perplexity_sweep (needs tsne)", MAPS["methods"])
    cols = [f"perplexity {_fmt(p)}" for p in perps]
    rows = [f"seed {s}" for s in seeds]
    panels = [
        {
            "row": f"seed {s}",
            "col": f"perplexity {_fmt(p)}",
            "embedding": _paper_map(f["model"], ckpt, layer, "tsne", p, s),
            "predictions": f"{run_dir(f['model'], ckpt)}/predictions.parquet",
        }
        for s in seeds
        for p in perps
    ]
    return {"rows": rows, "cols": cols, "panels": panels}


def paper_figure(name):
    """A `paper.figures` entry resolved: defaults filled in, names checked, files listed."""
    if name not in PAPER.get("figures", {}):
        raise ValueError(f"paper.figures has no figure {name!r}")
    f = {**_PAPER_DEFAULTS, **PAPER["figures"][name]}
    if f["model"] not in MODELS:
        _paper_error(name, "model", f["model"], MODELS)
    m = MODELS[f["model"]]
    ckpt = f["checkpoint"] or list(m["checkpoints"])[-1]
    layer = f["layer"] or list(m["layers"])[-1]
    _paper_pick(name, "checkpoint", [ckpt], m["checkpoints"])
    _paper_pick(name, "layer", [layer], m["layers"])
    out = {"kind": f["kind"], "width": f["width"], "colour_by": f["colour_by"]}
    if f["kind"] == "layer_grid":
        out.update(_paper_grid(name, f, m))
    elif f["kind"] == "perplexity_sweep":
        out.update(_paper_sweep(name, f, m, ckpt, layer))
    elif f["kind"] == "separation":
        ckpts = _paper_pick(
            name, "checkpoints", f["checkpoints"] or m["checkpoints"], m["checkpoints"]
        )
        layers = _paper_pick(name, "layers", f["layers"] or m["layers"], m["layers"])
        metrics = [layer_metrics_path(f["model"], c, l) for c in ckpts for l in layers]
        out.update({"checkpoints": ckpts, "layers": layers, "metrics": metrics})
    elif f["kind"] in ("saliency_curves", "saliency_randomisation"):
        explain = f"{run_dir(f['model'], ckpt)}/explain"
        out.update({n: f"{explain}/{TRUST_FILES[n]}" for n in TRUST_FILES})
    else:
        out.update(
            {
                "spec": m,
                "checkpoint": m["checkpoints"][ckpt],
                "predictions": f"{run_dir(f['model'], ckpt)}/predictions.parquet",
                "device": config["extract"]["device"],
                "image_ids": f["image_ids"],
                "target_layer": f["target_layer"] or EXPLAIN["gradcam"]["target_layer"],
                "layer": layer,
                "channels": f["channels"],
                "columns": f["columns"],
                "options": EXPLAIN["filters"],
            }
        )
    return out


for _name in PAPER.get("figures", {}):
    paper_figure(_name)  # bad names fail when the workflow is parsed


def paper_inputs(wildcards):
    """The files one paper figure is drawn from (only those)."""
    f = paper_figure(wildcards.name)
    if f["kind"] in ("layer_grid", "perplexity_sweep"):
        files = [p[k] for p in f["panels"] for k in ("embedding", "predictions")]
    elif f["kind"] == "separation":
        files = f["metrics"]
    elif f["kind"] == "saliency_curves":
        files = [f["curves"]]
    elif f["kind"] == "saliency_randomisation":
        files = [f["cascade"], f["randomisation"]]
    else:
        files = [f["checkpoint"], f["predictions"]]
    return sorted(set(files))


def paper_params(wildcards):
    return paper_figure(wildcards.name)


def paper_targets():
    return [
        f"{PAPER_DIR}/{name}.{ext}"
        for name in PAPER.get("figures", {})
        for ext in ("pdf", "png")
    ]
