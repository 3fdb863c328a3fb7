from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.similarity import model_similarity


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    table = model_similarity(
        snakemake.wildcards.model, snakemake.params.features, snakemake.params.options
    )
    write_parquet(table, snakemake.output.table)


main(snakemake)  # noqa: F821
