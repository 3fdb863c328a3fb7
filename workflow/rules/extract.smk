rule build_manifest:
    input:
        dataset=config["dataset"]["path"],
        lib=lib("build_manifest.py"),
    output:
        manifest=P.extract.out("manifest"),
        bad_images=P.extract.out("bad_images"),
    log:
        P.extract.log("build_manifest"),
    benchmark:
        P.extract.benchmark("build_manifest")
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
        shards=P.extract.shard_dirs,
    output:
        predictions=P.extract.out("predictions"),
        features=directory(P.extract.out("features")),
    log:
        P.extract.log("extract_features"),
    benchmark:
        P.extract.benchmark("extract_features")
    # every checkpoint's extraction before the jobs that read one: the batched UMAP job
    # reads them all, and every layer's metrics wait for it
    priority: 1
    # Sharded (extract.shards > 1), this job only gathers the shards' rows: it runs
    # where snakemake runs, not as a cluster job holding a GPU.
    localrule: P.extract.shards > 1
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
        shard=temp(directory(P.extract.out("shard"))),
    log:
        P.extract.log("extract_shard"),
    benchmark:
        P.extract.benchmark("extract_shard")
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
