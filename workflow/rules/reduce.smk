# Maps of every layer's features and their faithfulness metrics. One job per
# (model, ckpt, layer) for t-SNE (sharing the PCA pre-step and kNN graph across
# perplexities and seeds) and for PCA; one job for every UMAP map, because umap-learn
# pays ~30 s of numba compilation in every new process.


if "tsne" in MAPS["methods"]:

    rule reduce_tsne:
        input:
            features=rules.extract_features.output.features,
            lib=lib("reduce.py"),
        output:
            maps=method_outputs("tsne"),
        log:
            f"{RESULTS}/logs/reduce_tsne/{{model}}/{{ckpt}}/{{layer}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/reduce_tsne/{{model}}/{{ckpt}}/{{layer}}.tsv"
        conda:
            "../../envs/reduce.yaml"
        threads: 1
        params:
            method="tsne",
            layer_file=layer_features,
            maps=method_maps("tsne"),
            options=MAPS["tsne"],
        script:
            "../scripts/reduce_features.py"


if "pca" in MAPS["methods"]:

    rule reduce_pca:
        input:
            features=rules.extract_features.output.features,
            lib=lib("reduce.py"),
        output:
            maps=method_outputs("pca"),
        log:
            f"{RESULTS}/logs/reduce_pca/{{model}}/{{ckpt}}/{{layer}}.log",
        conda:
            "../../envs/reduce.yaml"
        threads: 1
        params:
            method="pca",
            layer_file=layer_features,
            maps=method_maps("pca"),
            options=MAPS["pca"],
        script:
            "../scripts/reduce_features.py"


if "umap" in MAPS["methods"]:

    rule reduce_umap:
        input:
            features=all_features_dirs(),
            lib=lib("reduce.py"),
        output:
            maps=umap_outputs(),
        log:
            f"{RESULTS}/logs/reduce_umap.log",
        benchmark:
            f"{RESULTS}/benchmarks/reduce_umap.tsv"
        conda:
            "../../envs/reduce.yaml"
        threads: 1
        params:
            jobs=umap_jobs(),
            options=MAPS["umap"],
        script:
            "../scripts/reduce_umap.py"


rule measure_maps:
    input:
        features=rules.extract_features.output.features,
        predictions=rules.extract_features.output.predictions,
        embeddings=layer_embeddings,
        lib=lib("metrics.py"),
    output:
        metrics=f"{RESULTS}/{{model}}/{{ckpt}}/metrics/{{layer}}.parquet",
        neighbors=f"{RESULTS}/{{model}}/{{ckpt}}/metrics/{{layer}}.neighbors.npy",
    log:
        f"{RESULTS}/logs/measure_maps/{{model}}/{{ckpt}}/{{layer}}.log",
    conda:
        "../../envs/reduce.yaml"
    threads: 1
    params:
        layer_file=layer_features,
        options=MAPS["metrics"],
    script:
        "../scripts/measure_maps.py"


rule gather_metrics:
    input:
        parts=all_layer_metrics(),
        lib=lib("metrics.py"),
    output:
        metrics=f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/gather_metrics.log",
    conda:
        "../../envs/reduce.yaml"
    script:
        "../scripts/gather_metrics.py"


rule summarize_layers:
    input:
        metrics=rules.gather_metrics.output.metrics,
        lib=lib("metrics.py"),
    output:
        table=summary_path("{model}", "parquet"),
        csv=summary_path("{model}", "csv"),
        png=summary_path("{model}", "png"),
        pdf=summary_path("{model}", "pdf"),
    log:
        f"{RESULTS}/logs/summarize_layers/{{model}}.log",
    conda:
        "../../envs/reduce.yaml"
    params:
        layers=model_layers,
        ckpts=model_ckpt_names,
    script:
        "../scripts/summarize_layers.py"
