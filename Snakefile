from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/reduce.smk"
include: "workflow/rules/provenance.smk"


rule all:
    default_target: True
    input:
        extract_targets(),
        maps_targets(),
        PROVENANCE,
