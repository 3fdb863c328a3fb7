# Figures of every layer's maps: static PNG/PDF per colouring, interactive HTML pages,
# sweep grids (perplexity x seed) and, per model, checkpoint x layer grids. One job per
# checkpoint (or per layer: config layer_jobs) draws all of its layers' figures: the
# imports cost more than a map, so one process per file would dominate the run.


report: "../report/workflow.rst"


rule make_thumbnail_sheets:
    input:
        manifest=rules.build_manifest.output.manifest,
        lib=lib("make_thumbnail_sheets.py"),
    output:
        sheets=directory(P.figures.sheets),
    log:
        P.figures.log("make_thumbnail_sheets"),
    benchmark:
        P.figures.benchmark("make_thumbnail_sheets")
    conda:
        "../../envs/figures.yaml"
    params:
        size=P.figures.config["thumbnail_px"],
    script:
        "../scripts/make_thumbnail_sheets.py"


rule plot_embeddings:
    input:
        embeddings=P.figures.job_embeddings_needed,
        predictions=P.extract.out("predictions"),
        sheets=P.figures.layer_sheets,
        lib=lib("plot_embeddings.py"),
    output:
        png=flagged(
            P.figures.job_outputs(P.figures.static_report()),
            "embedding.rst",
            "Maps",
            "{model} {ckpt}",
        ),
        pdf=P.figures.job_outputs(P.figures.static_files("pdf")),
        html=P.figures.job_outputs(P.figures.html_files()),
        sweep_png=flagged(
            P.figures.job_outputs(P.figures.sweep_report()),
            "sweep_grid.rst",
            "Sweeps",
            "{model} {ckpt}",
        ),
        sweep_pdf=P.figures.job_outputs(P.figures.sweep_files("pdf")),
    log:
        P.figures.log("plot_embeddings"),
    benchmark:
        P.figures.benchmark("plot_embeddings")
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        layers=P.figures.job_layers,
        figures=P.figures.config,
    script:
        "../scripts/plot_embeddings.py"


rule plot_checkpoint_layer_grids:
    input:
        files=P.figures.model_grid_inputs,
        lib=lib("plot_checkpoint_layer_grids.py"),
    output:
        png=flagged(
            P.figures.grid_report(),
            "checkpoint_layer_grid.rst",
            "Checkpoints x layers",
        ),
        pdf=P.figures.grid_files("pdf"),
    log:
        P.figures.log("plot_checkpoint_layer_grids"),
    benchmark:
        P.figures.benchmark("plot_checkpoint_layer_grids")
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        grids=P.figures.model_grids,
        figures=P.figures.config,
    script:
        "../scripts/plot_checkpoint_layer_grids.py"
