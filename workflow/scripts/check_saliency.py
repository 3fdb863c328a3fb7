import pandas as pd
import torch
from cnnatlas.explain.trust import render_saliency_checks
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    spec, out = snakemake.params.spec, snakemake.output
    render_saliency_checks(
        pd.read_parquet(snakemake.input.predictions),
        load_model(spec, snakemake.input.checkpoint),
        spec["transform"],
        out={k: getattr(out, k) for k in out.keys()},
        methods=snakemake.params.methods,
        layer=snakemake.params.layer,
        options=snakemake.params.options,
        device=snakemake.params.device,
        mem_mb=snakemake.resources.get("mem_mb"),
    )


main(snakemake)  # noqa: F821
