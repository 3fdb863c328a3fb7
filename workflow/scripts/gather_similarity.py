import pandas as pd
from cnnatlas.logs import to_log
from cnnatlas.similarity import write_summary
from cnnatlas.similarity_plots import similarity_figures


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    opts = snakemake.params.options
    table = pd.concat(
        [pd.read_parquet(p) for p in snakemake.input.parts], ignore_index=True
    )
    write_summary(
        table, snakemake.output.table, snakemake.output.summary, opts["settled"]
    )
    similarity_figures(table, snakemake.output.figures, opts["max_cell_labels"])


main(snakemake)  # noqa: F821
