import re

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


_check_explain()


def explain_lib(module):
    """An explanation module and the helpers it imports, as rule inputs."""
    return [lib(f"explain/{m}") for m in (module, "inputs.py", "render.py")]


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
    ]


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
