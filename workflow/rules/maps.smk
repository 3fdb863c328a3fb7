# Maps of every layer's features, one rule per configured method (from the registry
# cnnatlas.maps). A method's maps of one checkpoint's layers are one job (or of one
# layer: config layer_jobs; t-SNE shares the PCA pre-step and kNN graph across
# perplexities and seeds); a `batched` method (UMAP: ~30 s of numba compilation per
# process) makes every layer's maps in one job, started before the others (priority):
# every layer's metrics wait for it.


for _method in P.maps.config["methods"]:
    _reduce = P.maps.rule(_method)

    rule:
        name:
            P.maps.rule_name(_method)
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
            options=P.maps.config[_method],
        script:
            "../scripts/reduce_features.py"
