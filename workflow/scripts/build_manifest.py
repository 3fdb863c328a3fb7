from cnnatlas.data import build_manifest
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    build_manifest(
        snakemake.params.dataset,
        snakemake.output.manifest,
        bad_images=snakemake.output.bad_images,
        threads=snakemake.threads,
    )


main(snakemake)  # noqa: F821
