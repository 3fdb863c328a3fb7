from cnnatlas.index import write_index
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    write_index(snakemake.output.index, snakemake.input.files)


main(snakemake)  # noqa: F821
