from cnnatlas.logs import to_log
from cnnatlas.thumbnails import write_thumbnail_sheets


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    write_thumbnail_sheets(
        snakemake.input.manifest, snakemake.output.sheets, snakemake.params.size
    )


main(snakemake)  # noqa: F821
