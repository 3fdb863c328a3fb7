PROVENANCE = f"{RESULTS}/provenance.json"


def run_outputs(wildcards):
    """Every target of `rule all` but the provenance record itself."""
    return [str(f) for f in rules.all.input if str(f) != PROVENANCE]


def checkpoint_files():
    """{model/ckpt: checkpoint file} of the config."""
    return {f"{m}/{c}": checkpoint_file_of(m, c) for m, c in model_ckpts()}


def checkpoint_file_of(model, ckpt):
    return MODELS[model]["checkpoints"][ckpt]


def rule_threads(wildcards):
    """Threads each rule asks for (set-threads of the profiles applied), by rule name."""
    out = {}
    for r in workflow.rules:
        value = getattr(r.resources["_cores"], "value", 1)
        out[r.name] = value if isinstance(value, int) else str(value)
    return out


rule write_provenance:
    input:
        manifest=rules.build_manifest.output.manifest,
        checkpoints=list(checkpoint_files().values()),
        outputs=run_outputs,
        lib=lib("provenance.py"),
    output:
        provenance=PROVENANCE,
    log:
        f"{RESULTS}/logs/write_provenance.log",
    conda:
        "../../envs/torch.yaml"
    params:
        config=config,
        checkpoints=checkpoint_files(),
        threads=rule_threads,
        cores=workflow.resource_settings.cores,
        results=RESULTS,
    script:
        "../scripts/write_provenance.py"
