from cnnatlas.figures import draw_layer
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    # One layer, or every layer of the checkpoint (config layer_jobs), in one process.
    for layer in snakemake.params.layers:
        draw_layer(
            layer["maps"],
            layer["sweeps"],
            snakemake.input.predictions,
            snakemake.params.figures,
            sheets=snakemake.input.sheets[0] if snakemake.input.sheets else None,
        )


main(snakemake)  # noqa: F821
