from cnnatlas.figures import draw_grids
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    draw_grids(snakemake.params.grids, snakemake.params.figures)


main(snakemake)  # noqa: F821
