from cnnatlas.logs import to_log
from cnnatlas.metrics import gather_metrics


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    gather_metrics(snakemake.input.parts, snakemake.output.metrics)


main(snakemake)  # noqa: F821
