from pathlib import Path

from cnnatlas.demo import write_digits
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    root = Path(snakemake.output.train).parent
    write_digits(
        root,
        size=snakemake.params.size,
        test_size=snakemake.params.test_size,
        seed=snakemake.params.seed,
    )


main(snakemake)  # noqa: F821
