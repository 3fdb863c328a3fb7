EXPLAIN_DIR = f"{RESULTS}/{{model}}/{{ckpt}}/explain"


rule select_explain_images:
    input:
        predictions=rules.extract_features.output.predictions,
        lib=lib("select_explain_images.py"),
    output:
        selection=f"{EXPLAIN_DIR}/images.parquet",
    log:
        f"{RESULTS}/logs/select_explain_images/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/select_explain_images/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        images=P.explain["images"],
    script:
        "../scripts/select_explain_images.py"


rule render_feature_maps:
    input:
        selection=rules.select_explain_images.output.selection,
        checkpoint=P.checkpoint_file,
        lib=lib("render_feature_maps.py"),
    output:
        maps=report(
            directory(f"{EXPLAIN_DIR}/feature_maps"),
            patterns=["{name}_overview.png"],
            caption="../report/feature_maps.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: feature maps",
        ),
    log:
        f"{RESULTS}/logs/render_feature_maps/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render_feature_maps/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        layers=P.explain_layers,
        options=P.explain["feature_maps"],
        device=config["extract"]["device"],
    script:
        "../scripts/render_feature_maps.py"


rule visualize_filters:
    input:
        predictions=rules.extract_features.output.predictions,
        checkpoint=P.checkpoint_file,
        lib=lib("visualize_filters.py"),
    output:
        grids=report(
            directory(f"{EXPLAIN_DIR}/filters"),
            patterns=["{name}.png"],
            caption="../report/filters.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: filters",
        ),
        table=f"{EXPLAIN_DIR}/filters.parquet",
    log:
        f"{RESULTS}/logs/visualize_filters/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/visualize_filters/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        layers=P.explain_layers,
        options=P.explain["filters"],
        device=config["extract"]["device"],
    script:
        "../scripts/visualize_filters.py"


rule render_saliency:
    input:
        predictions=rules.extract_features.output.predictions,
        selection=rules.select_explain_images.output.selection,
        checkpoint=P.checkpoint_file,
        lib=lib("render_saliency.py"),
    output:
        overlays=report(
            directory(f"{EXPLAIN_DIR}/saliency"),
            patterns=["overview.png"],
            caption="../report/saliency.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency maps",
        ),
        per_image=f"{EXPLAIN_DIR}/saliency_faithfulness.parquet",
        summary=f"{EXPLAIN_DIR}/saliency_summary.parquet",
        figure=report(
            f"{EXPLAIN_DIR}/saliency_faithfulness.png",
            caption="../report/saliency_faithfulness.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency maps",
        ),
    log:
        f"{RESULTS}/logs/render_saliency/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/render_saliency/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        options=P.explain["saliency"],
        device=config["extract"]["device"],
    script:
        "../scripts/render_saliency.py"


rule check_saliency:
    input:
        predictions=rules.extract_features.output.predictions,
        checkpoint=P.checkpoint_file,
        lib=lib("check_saliency.py"),
    output:
        summary=P.trust_file("{model}", "{ckpt}", "summary"),
        curves=P.trust_file("{model}", "{ckpt}", "curves"),
        randomisation=P.trust_file("{model}", "{ckpt}", "randomisation"),
        cascade=P.trust_file("{model}", "{ckpt}", "cascade"),
        curves_figure=report(
            P.trust_file("{model}", "{ckpt}", "curves_figure"),
            caption="../report/saliency_curves.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency checks",
        ),
        cascade_figure=report(
            P.trust_file("{model}", "{ckpt}", "cascade_figure"),
            caption="../report/saliency_randomisation.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency checks",
        ),
    log:
        f"{RESULTS}/logs/check_saliency/{{model}}/{{ckpt}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/check_saliency/{{model}}/{{ckpt}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        methods=P.trust_methods,
        layer=P.explain["saliency"]["target_layer"],
        options=P.explain["trust"],
        device=config["extract"]["device"],
    script:
        "../scripts/check_saliency.py"
