# Maps of every layer's features (one rule per configured method, from the registry
# cnnatlas.maps) and their faithfulness metrics. A method's maps of one checkpoint's
# layers are one job (or of one layer: config layer_jobs; t-SNE shares the PCA pre-step
# and kNN graph across perplexities and seeds); a `batched` method (UMAP: ~30 s of numba
# compilation per process) makes every layer's maps in one job, started before the others
# (priority): every layer's metrics wait for it.


for _method in P.maps["methods"]:
    _reduce = P.reduce_rule(_method)

    rule:
        name:
            f"reduce_{_method}"
        input:
            features=_reduce["features"],
            predictions=_reduce["predictions"],
            lib=lib("reduce_features.py"),
        output:
            maps=_reduce["maps"],
        log:
            _reduce["log"],
        benchmark:
            _reduce["benchmark"]
        priority: _reduce["priority"]
        conda:
            "../../envs/reduce.yaml"
        threads: 1
        params:
            method=_method,
            jobs=_reduce["jobs"],
            options=P.maps[_method],
        script:
            "../scripts/reduce_features.py"


rule measure_maps:
    input:
        features=rules.extract_features.output.features,
        predictions=rules.extract_features.output.predictions,
        embeddings=P.job_embeddings,
        lib=lib("measure_maps.py"),
    output:
        metrics=P.metrics_rule()["metrics"],
        neighbors=P.metrics_rule()["neighbors"],
        distances=P.metrics_rule()["distances"],
    log:
        P.metrics_rule()["log"],
    benchmark:
        P.metrics_rule()["benchmark"]
    conda:
        "../../envs/reduce.yaml"
    threads: 1
    params:
        jobs=P.metrics_jobs,
        options=P.maps["metrics"],
    script:
        "../scripts/measure_maps.py"


rule gather_metrics:
    input:
        parts=P.all_layer_metrics(),
        lib=lib("gather_metrics.py"),
    output:
        metrics=f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/gather_metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_metrics.tsv"
    conda:
        "../../envs/reduce.yaml"
    script:
        "../scripts/gather_metrics.py"


rule summarize_layers:
    input:
        metrics=rules.gather_metrics.output.metrics,
        lib=lib("summarize_layers.py"),
    output:
        table=P.summary_path("{model}", "parquet"),
        csv=P.summary_path("{model}", "csv"),
        png=P.summary_path("{model}", "png"),
        pdf=P.summary_path("{model}", "pdf"),
    log:
        f"{RESULTS}/logs/summarize_layers/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/summarize_layers/{{model}}.tsv"
    conda:
        "../../envs/reduce.yaml"
    params:
        layers=P.model_layers,
        ckpts=P.model_ckpt_names,
    script:
        "../scripts/summarize_layers.py"
