rule export_projector:
    input:
        manifest=rules.build_manifest.output.manifest,
        predictions=rules.extract_features.output.predictions,
        features=rules.extract_features.output.features,
        maps=projector_map_files,
        lib=lib("projector.py"),
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
        features=projector_features,
        maps=projector_maps,
        thumbnail=PROJECTOR["thumbnail"],
        min_thumbnail=PROJECTOR["min_thumbnail"],
        seed=PROJECTOR["seed"],
    script:
        "../scripts/export_projector.py"
