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
