# Training evolution: one layer's maps across a model's checkpoints (config order),
# aligned so points can be followed, plus the figures that show them.


rule align_evolution:
    input:
        features=evolution_feature_dirs,
        lib=lib("evolution.py"),
        reduce=lib("reduce.py"),
    output:
        maps=directory(f"{EVOLUTION_DIR}/maps"),
        alignment=f"{EVOLUTION_DIR}/alignment.parquet",
    log:
        f"{RESULTS}/logs/align_evolution/{{model}}/{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align_evolution/{{model}}/{{layer}}/{{method}}.tsv"
    wildcard_constraints:
        method="tsne|pca",
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        features=evolution_feature_files,
        perplexity=EVOLUTION["perplexity"],
        seed=EVOLUTION["seed"],
        options=evolution_options,
    script:
        "../scripts/align_evolution.py"


rule plot_evolution:
    input:
        maps=rules.align_evolution.output.maps,
        manifest=rules.build_manifest.output.manifest,
        predictions=evolution_predictions,
        lib=lib("evolution_plots.py"),
    output:
        strip_png=f"{EVOLUTION_DIR}/strip.png",
        strip_pdf=f"{EVOLUTION_DIR}/strip.pdf",
        animation=f"{EVOLUTION_DIR}/animation.gif",
        html=f"{EVOLUTION_DIR}/slider.html",
    log:
        f"{RESULTS}/logs/plot_evolution/{{model}}/{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_evolution/{{model}}/{{layer}}/{{method}}.tsv"
    wildcard_constraints:
        method="tsne|pca",
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        ckpts=evolution_ckpts,
        predictions=evolution_prediction_files,
        title=evolution_title,
        frames=EVOLUTION["frames"],
        fps=EVOLUTION["fps"],
    script:
        "../scripts/plot_evolution.py"
