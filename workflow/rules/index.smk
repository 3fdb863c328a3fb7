# index.html: the landing page. It summarises the run (dataset, accuracy per
# checkpoint, the most faithful map per layer, saliency verdicts, the warnings of every
# job's log) and links every figure, page and table.


rule write_index:
    input:
        unpack(P.similarity.index_inputs),
        files=P.index.files,
        atlas=P.atlas.path,
        metrics=rules.gather_metrics.output.metrics,
        # the summary's predictions, saliency checks and every earlier job's log
        summary=P.index.summary_files(),
        lib=lib("write_index.py"),
    output:
        index=P.index.out("index"),
    log:
        P.index.log("write_index"),
    benchmark:
        P.index.benchmark("write_index")
    conda:
        "../../envs/figures.yaml"
    params:
        paper=[f for f in P.paper.targets() if f.endswith(".png")],
        summary=P.index.summary(),
        captions=P.index.captions(),
    script:
        "../scripts/write_index.py"
