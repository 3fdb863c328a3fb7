from cnnatlas.figures import draw_layer
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    draw_layer(
        snakemake.params.maps,
        snakemake.params.sweeps,
        snakemake.input.predictions,
        snakemake.params.figures,
        sheets=snakemake.input.sheets[0] if snakemake.input.sheets else None,
    )


main(snakemake)  # noqa: F821
