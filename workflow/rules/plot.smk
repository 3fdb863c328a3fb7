# Figures of every layer's maps: static PNG/PDF per colouring, interactive HTML pages,
# sweep grids (perplexity x seed) and, per model, checkpoint x layer grids; then
# results/atlas.html (every 2-D map in one WebGL page) and results/index.html. One job
# per (model, ckpt, layer) draws all of that layer's figures: the imports cost more than
# a map, so one process per file would dominate the run.


include: "common_figures.smk"


report: "../report/workflow.rst"


rule make_thumbnail_sheets:
    input:
        manifest=rules.build_manifest.output.manifest,
        lib=lib("thumbnails.py"),
    output:
        sheets=directory(SHEETS),
    log:
        f"{RESULTS}/logs/make_thumbnail_sheets.log",
    conda:
        "../../envs/figures.yaml"
    params:
        size=FIGURES["thumbnail_px"],
    script:
        "../scripts/make_thumbnail_sheets.py"


rule plot_embeddings:
    input:
        embeddings=layer_embeddings_needed,
        predictions=f"{RESULTS}/{{model}}/{{ckpt}}/predictions.parquet",
        sheets=layer_sheets,
        lib=lib("figures.py"),
        plots=lib("plots.py"),
        interactive=lib("interactive.py"),
    output:
        png=static_report(),
        pdf=static_files("pdf"),
        html=html_files(),
        sweep_png=sweep_report(),
        sweep_pdf=sweep_files("pdf"),
    log:
        f"{RESULTS}/logs/plot_embeddings/{{model}}/{{ckpt}}/{{layer}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_embeddings/{{model}}/{{ckpt}}/{{layer}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        maps=layer_maps,
        sweeps=layer_sweeps,
        figures=FIGURES,
    script:
        "../scripts/plot_embeddings.py"


rule plot_checkpoint_layer_grids:
    input:
        files=model_grid_inputs,
        lib=lib("figures.py"),
        plots=lib("plots.py"),
    output:
        png=grid_report(),
        pdf=[
            f"{RESULTS}/{{model}}/figures/grid-{map_name(*p)}.pdf" for p in grid_maps()
        ],
    log:
        f"{RESULTS}/logs/plot_checkpoint_layer_grids/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_checkpoint_layer_grids/{{model}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        grids=model_grids,
        figures=FIGURES,
    script:
        "../scripts/plot_checkpoint_layer_grids.py"


rule write_atlas:
    input:
        manifest=rules.build_manifest.output.manifest,
        files=atlas_inputs(),
        metrics=rules.gather_metrics.output.metrics,
        sheets=SHEETS,
        lib=lib("viewer/atlas.py"),
        bundle=lib("viewer/atlas.bundle.js"),
        template=lib("viewer/template.html"),
    output:
        atlas=f"{RESULTS}/atlas.html",
    log:
        f"{RESULTS}/logs/write_atlas.log",
    benchmark:
        f"{RESULTS}/benchmarks/write_atlas.tsv"
    conda:
        "../../envs/figures.yaml"
    params:
        plan=atlas_plan(),
        zoom=FIGURES["thumbnail_zoom"],
    script:
        "../scripts/write_atlas.py"


rule write_index:
    input:
        files=index_files,
        atlas=rules.write_atlas.output.atlas,
        metrics=rules.gather_metrics.output.metrics,
        lib=lib("index.py"),
    output:
        index=f"{RESULTS}/index.html",
    log:
        f"{RESULTS}/logs/write_index.log",
    conda:
        "../../envs/figures.yaml"
    params:
        paper=[f for f in paper_targets() if f.endswith(".png")],
    script:
        "../scripts/write_index.py"
