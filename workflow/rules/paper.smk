# Camera-ready figures of the config's `paper:` section, one job per figure; target `paper`
# (beside `all`). Each job reads only the files its figure shows; the manifest and every
# checkpoint are inputs too, since the run hash in the figures' metadata names them.


rule draw_paper_figure:
    input:
        files=paper_inputs,
        manifest=rules.build_manifest.output.manifest,
        checkpoints=list(checkpoint_files().values()),
        lib=lib("paper.py"),
        plots=lib("plots.py"),
        provenance=lib("provenance.py"),
    output:
        pdf=f"{PAPER_DIR}/{{name}}.pdf",
        png=f"{PAPER_DIR}/{{name}}.png",
    log:
        f"{RESULTS}/logs/draw_paper_figure/{{name}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_paper_figure/{{name}}.tsv"
    wildcard_constraints:
        name="[A-Za-z0-9_-]+",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        figure=paper_params,
        fonts=PAPER_FONTS,
        dpi=PAPER.get("dpi", 300),
        config=config,
        checkpoints=checkpoint_files(),
    script:
        "../scripts/draw_paper_figure.py"
