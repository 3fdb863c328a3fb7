from cnnatlas.logs import to_log
from cnnatlas.reduce import MapSpec, write_maps


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    # One process for every layer: umap-learn compiles its numba code once.
    for job in snakemake.params.jobs:
        outputs = {
            MapSpec(int(dim), float(perplexity), int(seed)): path
            for dim, perplexity, seed, path in job["maps"]
        }
        write_maps(job["features"], "umap", outputs, snakemake.params.options)


main(snakemake)  # noqa: F821
