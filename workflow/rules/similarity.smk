rule measure_similarity:
    input:
        features=P.similarity.model_feature_dirs,
        lib=lib("measure_similarity.py"),
    output:
        table=P.similarity.model_part,
    log:
        f"{RESULTS}/logs/measure_similarity/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/measure_similarity/{{model}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        features=P.similarity.model_features,
        options=P.similarity.options,
    script:
        "../scripts/measure_similarity.py"


rule compare_models:
    input:
        features=P.similarity.pair_feature_dirs,
        lib=lib("compare_models.py"),
    output:
        table=P.similarity.pair_part,
    log:
        f"{RESULTS}/logs/compare_models/{{model}}/{{other}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_models/{{model}}/{{other}}.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        features=P.similarity.pair_features,
        options=P.similarity.options,
    script:
        "../scripts/compare_models.py"


rule gather_similarity:
    input:
        parts=P.similarity.parts(),
        lib=lib("gather_similarity.py"),
    output:
        table=P.similarity.table,
        summary=P.similarity.summary,
        figures=directory(P.similarity.figures),
    log:
        f"{RESULTS}/logs/gather_similarity.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_similarity.tsv"
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        options=P.similarity.options,
    script:
        "../scripts/gather_similarity.py"
