rule build_manifest:
    input:
        dataset=config["dataset"]["path"],
        lib=lib("data.py"),
    output:
        manifest=f"{RESULTS}/manifest.parquet",
    params:
        dataset=config["dataset"],
    log:
        f"{RESULTS}/logs/build_manifest.log",
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/build_manifest.py"


rule extract_features:
    input:
        manifest=rules.build_manifest.output.manifest,
        checkpoint=checkpoint_file,
        lib=lib("extract.py"),
    output:
        predictions=f"{RESULTS}/{{model}}/{{ckpt}}/predictions.parquet",
        features=directory(f"{RESULTS}/{{model}}/{{ckpt}}/features"),
    params:
        spec=model_spec,
        extract=config["extract"],
    log:
        f"{RESULTS}/logs/extract_features/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{model}}/{{ckpt}}.tsv"
    threads: 2
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/extract_features.py"
