from cnnatlas.logs import to_log
from cnnatlas.mapping import write_job_maps


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    # One job per layer, or (a `batched` method) every layer in one process.
    write_job_maps(
        snakemake.params.jobs,
        snakemake.params.method,
        snakemake.params.options,
        snakemake.threads,
    )


main(snakemake)  # noqa: F821
