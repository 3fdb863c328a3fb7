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
