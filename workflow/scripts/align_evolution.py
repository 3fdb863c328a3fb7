from cnnatlas.evolution import evolve_layer
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    evolve_layer(
        features=snakemake.params.features,
        method=snakemake.wildcards.method,
        maps_dir=snakemake.output.maps,
        alignment=snakemake.output.alignment,
        perplexity=snakemake.params.perplexity,
        seed=snakemake.params.seed,
        options=snakemake.params.options,
        n_jobs=snakemake.threads,
    )


main(snakemake)  # noqa: F821
