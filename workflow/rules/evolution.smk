# Training evolution: one layer's maps across a model's checkpoints (config order),
# aligned so points can be followed, plus the figures that show them.


rule align_evolution:
    input:
        features=P.evolution.feature_dirs,
        lib=lib("align_evolution.py"),
    output:
        maps=directory(P.evolution.out("maps")),
        alignment=P.evolution.out("alignment"),
    log:
        P.evolution.log("align_evolution"),
    benchmark:
        P.evolution.benchmark("align_evolution")
    wildcard_constraints:
        method=P.evolution.method_names(),
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        features=P.evolution.feature_files,
        perplexity=P.evolution.config["perplexity"],
        seed=P.evolution.config["seed"],
        options=P.evolution.options,
    script:
        "../scripts/align_evolution.py"


rule plot_evolution:
    input:
        maps=rules.align_evolution.output.maps,
        manifest=rules.build_manifest.output.manifest,
        predictions=P.evolution.predictions,
        lib=lib("plot_evolution.py"),
    output:
        strip_png=P.evolution.out("strip_png"),
        strip_pdf=P.evolution.out("strip_pdf"),
        animation=P.evolution.out("animation"),
        html=P.evolution.out("html"),
    log:
        P.evolution.log("plot_evolution"),
    benchmark:
        P.evolution.benchmark("plot_evolution")
    wildcard_constraints:
        method=P.evolution.method_names(),
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        ckpts=P.model_ckpt_names,
        predictions=P.evolution.prediction_files,
        title=P.evolution.title,
        frames=P.evolution.config["frames"],
        fps=P.evolution.config["fps"],
    script:
        "../scripts/plot_evolution.py"
