from pathlib import Path

from cnnatlas.logs import to_log
from cnnatlas.provenance import provenance, write_provenance


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    record = provenance(
        config=snakemake.params.config,
        checkpoints=snakemake.params.checkpoints,
        manifest=snakemake.input.manifest,
        outputs=snakemake.input.outputs,
        results=Path(snakemake.output.provenance).parent,
        threads=snakemake.params.threads,
        cores=snakemake.params.cores,
    )
    write_provenance(snakemake.output.provenance, record)


main(snakemake)  # noqa: F821
