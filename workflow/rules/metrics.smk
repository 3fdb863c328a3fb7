# The faithfulness of every layer's maps and each image's feature-space neighbours (one
# job per checkpoint, or per layer: config layer_jobs), gathered into one table, and
# per model a summary of its layers.


rule measure_maps:
    input:
        features=P.extract.out("features"),
        predictions=P.extract.out("predictions"),
        embeddings=P.maps.job_embeddings,
        lib=lib("measure_maps.py"),
    output:
        metrics=P.metrics.job_outputs("layer"),
        neighbors=P.metrics.job_outputs("neighbors"),
        distances=P.metrics.job_outputs("distances"),
    log:
        P.metrics.log("measure_maps"),
    benchmark:
        P.metrics.benchmark("measure_maps")
    conda:
        "../../envs/reduce.yaml"
    threads: 1
    params:
        jobs=P.metrics.jobs,
        options=P.maps.config["metrics"],
    script:
        "../scripts/measure_maps.py"


rule gather_metrics:
    input:
        parts=P.metrics.all_layer_paths(),
        lib=lib("gather_metrics.py"),
    output:
        metrics=P.metrics.out("metrics"),
    log:
        P.metrics.log("gather_metrics"),
    benchmark:
        P.metrics.benchmark("gather_metrics")
    conda:
        "../../envs/reduce.yaml"
    script:
        "../scripts/gather_metrics.py"


rule summarize_layers:
    input:
        metrics=rules.gather_metrics.output.metrics,
        lib=lib("summarize_layers.py"),
    output:
        table=P.metrics.out("summary", ext="parquet"),
        csv=P.metrics.out("summary", ext="csv"),
        png=P.metrics.out("summary", ext="png"),
        pdf=P.metrics.out("summary", ext="pdf"),
    log:
        P.metrics.log("summarize_layers"),
    benchmark:
        P.metrics.benchmark("summarize_layers")
    conda:
        "../../envs/reduce.yaml"
    params:
        layers=P.model_layers,
        ckpts=P.model_ckpt_names,
    script:
        "../scripts/summarize_layers.py"
