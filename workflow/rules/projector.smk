rule export_projector:
    input:
        manifest=rules.build_manifest.output.manifest,
        predictions=P.extract.out("predictions"),
        features=P.extract.out("features"),
        maps=P.projector.map_files,
        lib=lib("export_projector.py"),
    output:
        projector=directory(P.projector.out("projector")),
    log:
        P.projector.log("export_projector"),
    benchmark:
        P.projector.benchmark("export_projector")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        features=P.projector.features,
        maps=P.projector.maps,
        thumbnail=P.projector.config["thumbnail"],
        min_thumbnail=P.projector.config["min_thumbnail"],
        seed=P.projector.config["seed"],
        max_values=P.projector.config["max_values"],
        reduce=P.projector.config["reduce"],
        pca_dims=P.projector.config["pca_dims"],
    script:
        "../scripts/export_projector.py"
