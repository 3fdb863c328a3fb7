from cnnatlas.extract import extract_shard
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    spec, opts = snakemake.params.spec, snakemake.params.extract
    extract_shard(
        snakemake.input.manifest,
        load_model(spec, snakemake.input.checkpoint),
        layers=spec["layers"],
        shard_dir=snakemake.output.shard,
        transform=spec["transform"],
        shard=int(snakemake.wildcards.shard),
        threads=snakemake.threads,
        model_name=snakemake.wildcards.model,
        **opts,  # shards, batch_size, num_workers, device, precision, decode
    )


main(snakemake)  # noqa: F821
