from cnnatlas.logs import to_log
from cnnatlas.maps import MapSpec
from cnnatlas.reduce import write_maps


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    params = snakemake.params
    # One job per layer, or (a `batched` method) every layer in one process.
    for job in params.jobs:
        outputs = {
            MapSpec(int(dim), float(perplexity), int(seed)): path
            for dim, perplexity, seed, path in job["maps"]
        }
        write_maps(
            job["features"],
            params.method,
            outputs,
            params.options,
            snakemake.threads,
            job["predictions"],
        )


main(snakemake)  # noqa: F821
