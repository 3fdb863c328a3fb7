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
    # a model with features_from is imported instead (import_features)
    wildcard_constraints:
        model=P.extract.models(imported=False),
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


# A model with features_from: its folders' arrays, copied into the files the forward
# pass writes, so every later stage runs unchanged.
rule import_features:
    input:
        manifest=rules.build_manifest.output.manifest,
        files=P.extract.import_files,
        sources=P.model_sources,
        lib=lib("import_features.py"),
    output:
        predictions=P.extract.out("predictions"),
        features=directory(P.extract.out("features")),
        record=P.extract.out("imported"),
    log:
        P.extract.log("import_features"),
    benchmark:
        P.extract.benchmark("import_features")
    wildcard_constraints:
        model=P.extract.models(imported=True),
    priority: 1
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        folder=P.extract.import_folder,
        key=P.extract.import_key,
        model=P.extract.import_options,
        topk=config["extract"]["topk"],
    script:
        "../scripts/import_features.py"
