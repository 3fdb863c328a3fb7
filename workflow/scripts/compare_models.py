from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.similarity import models_similarity


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    a, b = (tuple(x) for x in snakemake.params.features)
    table = models_similarity(a, b, snakemake.params.options)
    write_parquet(table, snakemake.output.table)


main(snakemake)  # noqa: F821
