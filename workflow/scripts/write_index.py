from cnnatlas.index import write_index
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    write_index(
        snakemake.output.index,
        snakemake.input.files,
        atlas=snakemake.input.atlas,
        metrics=snakemake.input.metrics,
        paper=snakemake.params.paper,
        similarity=snakemake.input.get("similarity"),
        summary=snakemake.params.summary,
        captions=snakemake.params.captions,
    )


main(snakemake)  # noqa: F821
