# atlas.html: every 2-D map of the run in one WebGL page, with each image's
# feature-space neighbours, the training evolution and the Grad-CAM overlays; its data
# inline up to figures.atlas_inline_mb, above in atlas_files/ beside it (always
# written, empty for a self-contained page); compare.html shows two of its maps side
# by side.


rule write_atlas:
    input:
        manifest=rules.build_manifest.output.manifest,
        files=P.atlas.files(),
        metrics=rules.gather_metrics.output.metrics,
        sheets=P.figures.sheets,
        lib=lib("write_atlas.py"),
        # read by the writer at run time, not imported
        bundle=os.path.join(SCRIPTS, "cnnatlas/viewer/atlas.bundle.js"),
        template=os.path.join(SCRIPTS, "cnnatlas/viewer/template.html"),
    output:
        atlas=P.atlas.out("atlas"),
        files=directory(P.atlas.out("atlas_files")),
        compare=P.atlas.out("compare"),
    log:
        P.atlas.log("write_atlas"),
    benchmark:
        P.atlas.benchmark("write_atlas")
    conda:
        "../../envs/figures.yaml"
    params:
        plan=P.atlas.inputs(),
        zoom=P.figures.config["thumbnail_zoom"],
        inline_mb=P.figures.config["atlas_inline_mb"],
    script:
        "../scripts/write_atlas.py"
