from cnnatlas.logs import to_log
from cnnatlas.viewer import write_atlas, write_compare_page


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    write_atlas(
        snakemake.output.atlas,
        manifest=snakemake.input.manifest,
        metrics=snakemake.input.metrics,
        sheets=snakemake.input.sheets,
        zoom=snakemake.params.zoom,
        inline_mb=snakemake.params.inline_mb,
        title="cnnatlas atlas",
        **snakemake.params.plan,
    )
    write_compare_page(snakemake.output.compare, snakemake.output.atlas)


main(snakemake)  # noqa: F821
