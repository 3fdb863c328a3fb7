from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/atlas.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/projector.smk"
include: "workflow/rules/evolution.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        P.extract.targets(),
        P.maps.targets(),
        P.metrics.targets(),
        P.provenance.path,
        P.explain.targets(),
        P.figures.targets(),
        P.atlas.path,
        P.index.path,
        P.projector.targets(),
        P.evolution.targets(),
        P.similarity.targets(),


rule paper:
    input:
        P.paper.targets(),
