rule select_explain_images:
    input:
        predictions=P.extract.out("predictions"),
        lib=lib("select_explain_images.py"),
    output:
        selection=P.explain.out("selection"),
    log:
        P.explain.log("select_explain_images"),
    benchmark:
        P.explain.benchmark("select_explain_images")
    conda:
        "../../envs/torch.yaml"
    params:
        images=P.explain.config["images"],
    script:
        "../scripts/select_explain_images.py"


rule render_feature_maps:
    input:
        selection=rules.select_explain_images.output.selection,
        checkpoint=P.checkpoint_file,
        lib=lib("render_feature_maps.py"),
    output:
        maps=report(
            directory(P.explain.out("feature_maps")),
            patterns=["{name}_overview.png"],
            caption="../report/feature_maps.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: feature maps",
        ),
    log:
        P.explain.log("render_feature_maps"),
    benchmark:
        P.explain.benchmark("render_feature_maps")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        layers=P.explain.layers,
        options=P.explain.config["feature_maps"],
        device=config["extract"]["device"],
    script:
        "../scripts/render_feature_maps.py"


rule visualize_filters:
    input:
        predictions=P.extract.out("predictions"),
        checkpoint=P.checkpoint_file,
        lib=lib("visualize_filters.py"),
    output:
        grids=report(
            directory(P.explain.out("filters")),
            patterns=["{name}.png"],
            caption="../report/filters.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: filters",
        ),
        table=P.explain.out("filters_table"),
    log:
        P.explain.log("visualize_filters"),
    benchmark:
        P.explain.benchmark("visualize_filters")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        layers=P.explain.layers,
        options=P.explain.config["filters"],
        device=config["extract"]["device"],
    script:
        "../scripts/visualize_filters.py"


rule render_saliency:
    input:
        predictions=P.extract.out("predictions"),
        selection=rules.select_explain_images.output.selection,
        checkpoint=P.checkpoint_file,
        lib=lib("render_saliency.py"),
    output:
        overlays=report(
            directory(P.explain.out("saliency")),
            patterns=["overview.png"],
            caption="../report/saliency.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency maps",
        ),
        per_image=P.explain.out("saliency_faithfulness"),
        summary=P.explain.out("saliency_summary"),
        figure=report(
            P.explain.out("saliency_figure"),
            caption="../report/saliency_faithfulness.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency maps",
        ),
    log:
        P.explain.log("render_saliency"),
    benchmark:
        P.explain.benchmark("render_saliency")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        options=P.explain.config["saliency"],
        device=config["extract"]["device"],
    script:
        "../scripts/render_saliency.py"


rule check_saliency:
    input:
        predictions=P.extract.out("predictions"),
        checkpoint=P.checkpoint_file,
        lib=lib("check_saliency.py"),
    output:
        summary=P.explain.out("summary"),
        curves=P.explain.out("curves"),
        randomisation=P.explain.out("randomisation"),
        cascade=P.explain.out("cascade"),
        curves_figure=report(
            P.explain.out("curves_figure"),
            caption="../report/saliency_curves.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency checks",
        ),
        cascade_figure=report(
            P.explain.out("cascade_figure"),
            caption="../report/saliency_randomisation.rst",
            category="Explanations",
            subcategory="{model} {ckpt}: saliency checks",
        ),
    log:
        P.explain.log("check_saliency"),
    benchmark:
        P.explain.benchmark("check_saliency")
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        spec=P.model_spec,
        methods=P.explain.trust_methods,
        layer=P.explain.config["saliency"]["target_layer"],
        options=P.explain.config["trust"],
        device=config["extract"]["device"],
    script:
        "../scripts/check_saliency.py"
