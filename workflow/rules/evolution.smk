EVOLUTION_DIR = P.evolution_dir()
# Training evolution: one layer's maps across a model's checkpoints (config order),
# aligned so points can be followed, plus the figures that show them.


rule align_evolution:
    input:
        features=P.evolution_feature_dirs,
        lib=lib("align_evolution.py"),
    output:
        maps=directory(f"{EVOLUTION_DIR}/maps"),
        alignment=f"{EVOLUTION_DIR}/alignment.parquet",
    log:
        f"{RESULTS}/logs/align_evolution/{{model}}/{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/align_evolution/{{model}}/{{layer}}/{{method}}.tsv"
    wildcard_constraints:
        method=P.evolution_method_names(),
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        features=P.evolution_feature_files,
        perplexity=P.evolution["perplexity"],
        seed=P.evolution["seed"],
        options=P.evolution_options,
    script:
        "../scripts/align_evolution.py"


rule plot_evolution:
    input:
        maps=rules.align_evolution.output.maps,
        manifest=rules.build_manifest.output.manifest,
        predictions=P.evolution_predictions,
        lib=lib("plot_evolution.py"),
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
        method=P.evolution_method_names(),
    conda:
        "../../envs/evolution.yaml"
    threads: 1
    params:
        ckpts=P.model_ckpt_names,
        predictions=P.evolution_prediction_files,
        title=P.evolution_title,
        frames=P.evolution["frames"],
        fps=P.evolution["fps"],
    script:
        "../scripts/plot_evolution.py"
