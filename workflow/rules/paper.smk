# Camera-ready figures of the config's `paper:` section, one job per figure; target `paper`
# (beside `all`). Each job reads only the files its figure shows; the manifest and every
# checkpoint are inputs too, since the run hash in the figures' metadata names them.


rule draw_paper_figure:
    input:
        files=PAPER.inputs,
        manifest=rules.build_manifest.output.manifest,
        checkpoints=list(P.checkpoint_files().values()),
        lib=lib("draw_paper_figure.py"),
    output:
        pdf=f"{PAPER.dir}/{{name}}.pdf",
        png=f"{PAPER.dir}/{{name}}.png",
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
        figure=PAPER.params,
        fonts=PAPER.fonts,
        dpi=PAPER.config["dpi"],
        config=config,
        checkpoints=P.checkpoint_files(),
    script:
        "../scripts/draw_paper_figure.py"
