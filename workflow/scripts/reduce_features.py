from cnnatlas.logs import to_log
from cnnatlas.reduce import MapSpec, write_maps


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    params = snakemake.params
    outputs = {
        MapSpec(int(dim), float(perplexity), int(seed)): path
        for (dim, perplexity, seed), path in zip(
            params.maps, snakemake.output.maps, strict=True
        )
    }
    write_maps(
        params.layer_file,
        params.method,
        outputs,
        params.options,
        n_jobs=snakemake.threads,
    )


main(snakemake)  # noqa: F821
