rule build_manifest:
    input:
        dataset=config["dataset"]["path"],
        lib=lib("build_manifest.py"),
    output:
        manifest=f"{RESULTS}/manifest.parquet",
        bad_images=f"{RESULTS}/bad_images.parquet",
    log:
        f"{RESULTS}/logs/build_manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_manifest.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    params:
        dataset=config["dataset"],
    script:
        "../scripts/build_manifest.py"


rule extract_features:
    input:
        manifest=rules.build_manifest.output.manifest,
        checkpoint=P.checkpoint_file,
        sources=P.model_sources,
        lib=lib("extract_features.py"),
        shards=P.extract_shard_dirs,
    output:
        predictions=f"{RESULTS}/{{model}}/{{ckpt}}/predictions.parquet",
        features=directory(f"{RESULTS}/{{model}}/{{ckpt}}/features"),
    log:
        f"{RESULTS}/logs/extract_features/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_features/{{model}}/{{ckpt}}.tsv"
    # every checkpoint's extraction before the jobs that read one: the batched UMAP job
    # reads them all, and every layer's metrics wait for it
    priority: 1
    # Sharded (extract.shards > 1), this job only gathers the shards' rows: it runs
    # where snakemake runs, not as a cluster job holding a GPU.
    localrule: P.shards > 1
    conda:
        "../../envs/torch.yaml"
    threads: 2
    params:
        spec=P.model_spec,
        extract=config["extract"],
    script:
        "../scripts/extract_features.py"


rule extract_shard:
    input:
        manifest=rules.build_manifest.output.manifest,
        checkpoint=P.checkpoint_file,
        sources=P.model_sources,
        lib=lib("extract_shard.py"),
    output:
        shard=temp(directory(P.shard_dir("{model}", "{ckpt}", "{shard}"))),
    log:
        f"{RESULTS}/logs/extract_shard/{{model}}/{{ckpt}}/{{shard}}-of-{P.shards}.log",
    benchmark:
        f"{RESULTS}/benchmarks/extract_shard/{{model}}/{{ckpt}}/{{shard}}-of-{P.shards}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    priority: 1
    conda:
        "../../envs/torch.yaml"
    threads: 2
    params:
        spec=P.model_spec,
        extract=config["extract"],
    script:
        "../scripts/extract_shard.py"
