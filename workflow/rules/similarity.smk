rule measure_similarity:
    input:
        features=P.similarity.model_feature_dirs,
        lib=lib("measure_similarity.py"),
    output:
        table=P.similarity.out("model_part"),
    log:
        P.similarity.log("measure_similarity"),
    benchmark:
        P.similarity.benchmark("measure_similarity")
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
        table=P.similarity.out("pair_part"),
    log:
        P.similarity.log("compare_models"),
    benchmark:
        P.similarity.benchmark("compare_models")
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
        table=P.similarity.out("table"),
        summary=P.similarity.out("summary"),
        figures=directory(P.similarity.out("figures")),
    log:
        P.similarity.log("gather_similarity"),
    benchmark:
        P.similarity.benchmark("gather_similarity")
    conda:
        "../../envs/figures.yaml"
    threads: 1
    params:
        options=P.similarity.options,
    script:
        "../scripts/gather_similarity.py"
