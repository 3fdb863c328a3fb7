rule export_projector:
    input:
        manifest=rules.build_manifest.output.manifest,
        predictions=rules.extract_features.output.predictions,
        features=rules.extract_features.output.features,
        maps=P.projector_map_files,
        lib=lib("export_projector.py"),
    output:
        projector=directory(f"{RESULTS}/{{model}}/{{ckpt}}/projector"),
    log:
        f"{RESULTS}/logs/export_projector/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_projector/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        features=P.projector_features,
        maps=P.projector_maps,
        thumbnail=P.projector["thumbnail"],
        min_thumbnail=P.projector["min_thumbnail"],
        seed=P.projector["seed"],
        max_values=P.projector["max_values"],
        reduce=P.projector["reduce"],
        pca_dims=P.projector["pca_dims"],
    script:
        "../scripts/export_projector.py"
