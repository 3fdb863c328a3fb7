from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/reduce.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/plot.smk"
include: "workflow/rules/projector.smk"
include: "workflow/rules/evolution.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        P.extract_targets(),
        P.maps_targets(),
        P.provenance,
        P.explain_targets(),
        FIGURES.targets(),
        P.atlas.path,
        rules.write_index.output.index,
        P.projector_targets(),
        P.evolution_targets(),
        P.similarity.targets(),


rule paper:
    input:
        PAPER.targets(),
