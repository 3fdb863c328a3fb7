from cnnatlas.logs import to_log
from cnnatlas.projector import export_projector


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    export_projector(
        predictions=snakemake.input.predictions,
        manifest=snakemake.input.manifest,
        features=snakemake.params.features,
        out=snakemake.output.projector,
        maps=snakemake.params.maps,
        thumbnail=snakemake.params.thumbnail,
        min_thumbnail=snakemake.params.min_thumbnail,
        seed=snakemake.params.seed,
        max_values=snakemake.params.max_values,
        reduce=snakemake.params.reduce,
        pca_dims=snakemake.params.pca_dims,
    )


main(snakemake)  # noqa: F821
