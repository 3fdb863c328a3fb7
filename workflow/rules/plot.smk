# Figures of every layer's maps: static PNG/PDF per colouring, interactive HTML pages,
# sweep grids (perplexity x seed) and, per model, checkpoint x layer grids; then
# results/atlas.html (every 2-D map in one WebGL page) and results/index.html. One job
# per checkpoint (or per layer: config layer_jobs) draws all of its layers' figures: the
# imports cost more than a map, so one process per file would dominate the run.


report: "../report/workflow.rst"


rule make_thumbnail_sheets:
    input:
        manifest=rules.build_manifest.output.manifest,
        lib=lib("make_thumbnail_sheets.py"),
    output:
        sheets=directory(FIGURES.sheets),
    log:
        f"{RESULTS}/logs/make_thumbnail_sheets.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_thumbnail_sheets.tsv"
    conda:
        "../../envs/figures.yaml"
    params:
        size=FIGURES.config["thumbnail_px"],
    script:
        "../scripts/make_thumbnail_sheets.py"


rule plot_embeddings:
    input:
        embeddings=FIGURES.job_embeddings_needed,
        predictions=P.predictions_path("{model}", "{ckpt}"),
        sheets=FIGURES.layer_sheets,
        lib=lib("plot_embeddings.py"),
    output:
        png=flagged(
            FIGURES.job_outputs(FIGURES.static_report()),
            "embedding.rst",
            "Maps",
            "{model} {ckpt}",
        ),
        pdf=FIGURES.job_outputs(FIGURES.static_files("pdf")),
        html=FIGURES.job_outputs(FIGURES.html_files()),
        sweep_png=flagged(
            FIGURES.job_outputs(FIGURES.sweep_report()),
            "sweep_grid.rst",
            "Sweeps",
            "{model} {ckpt}",
        ),
        sweep_pdf=FIGURES.job_outputs(FIGURES.sweep_files("pdf")),
    log:
        FIGURES.job_log("logs"),
    benchmark:
        FIGURES.job_log("benchmarks")
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        layers=FIGURES.job_layers,
        figures=FIGURES.config,
    script:
        "../scripts/plot_embeddings.py"


rule plot_checkpoint_layer_grids:
    input:
        files=FIGURES.model_grid_inputs,
        lib=lib("plot_checkpoint_layer_grids.py"),
    output:
        png=flagged(
            FIGURES.grid_report(), "checkpoint_layer_grid.rst", "Checkpoints x layers"
        ),
        pdf=FIGURES.grid_files("pdf"),
    log:
        f"{RESULTS}/logs/plot_checkpoint_layer_grids/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_checkpoint_layer_grids/{{model}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        grids=FIGURES.model_grids,
        figures=FIGURES.config,
    script:
        "../scripts/plot_checkpoint_layer_grids.py"


rule write_atlas:
    input:
        manifest=rules.build_manifest.output.manifest,
        files=P.atlas.files(),
        metrics=rules.gather_metrics.output.metrics,
        sheets=FIGURES.sheets,
        lib=lib("write_atlas.py"),
        # read by the writer at run time, not imported
        bundle=os.path.join(SCRIPTS, "cnnatlas/viewer/atlas.bundle.js"),
        template=os.path.join(SCRIPTS, "cnnatlas/viewer/template.html"),
    output:
        atlas=P.atlas.path,
        compare=P.atlas.compare_path,
    log:
        f"{RESULTS}/logs/write_atlas.log",
    benchmark:
        f"{RESULTS}/benchmarks/write_atlas.tsv"
    conda:
        "../../envs/figures.yaml"
    params:
        plan=P.atlas.inputs(),
        zoom=FIGURES.config["thumbnail_zoom"],
    script:
        "../scripts/write_atlas.py"


rule write_index:
    input:
        unpack(P.similarity.index_inputs),
        files=P.index_files,
        atlas=P.atlas.path,
        metrics=rules.gather_metrics.output.metrics,
        # the summary's predictions, saliency checks and every earlier job's log
        summary=P.index.summary_files(),
        lib=lib("write_index.py"),
    output:
        index=P.index.path,
    log:
        f"{RESULTS}/logs/write_index.log",
    benchmark:
        f"{RESULTS}/benchmarks/write_index.tsv"
    conda:
        "../../envs/figures.yaml"
    params:
        paper=[f for f in PAPER.targets() if f.endswith(".png")],
        summary=P.index.summary(),
        captions=P.index.captions(),
    script:
        "../scripts/write_index.py"
