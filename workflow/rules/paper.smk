# Camera-ready figures of the config's `paper:` section, one job per figure; target `paper`
# (beside `all`). Each job reads only the files its figure shows; the manifest and every
# checkpoint are inputs too, since the run hash in the figures' metadata names them.


rule draw_paper_figure:
    input:
        files=P.paper.inputs,
        manifest=rules.build_manifest.output.manifest,
        checkpoints=list(P.checkpoint_files().values()),
        lib=lib("draw_paper_figure.py"),
    output:
        pdf=P.paper.out("pdf"),
        png=P.paper.out("png"),
    log:
        P.paper.log("draw_paper_figure"),
    benchmark:
        P.paper.benchmark("draw_paper_figure")
    wildcard_constraints:
        name="[A-Za-z0-9_-]+",
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        figure=P.paper.params,
        fonts=P.paper.fonts,
        dpi=P.paper.config["dpi"],
        config=config,
        checkpoints=P.checkpoint_files(),
    script:
        "../scripts/draw_paper_figure.py"
