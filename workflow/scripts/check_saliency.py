import torch
from cnnatlas.explain.select import SAMPLE_COLUMNS
from cnnatlas.explain.trust import render_saliency_checks
from cnnatlas.io import read_predictions
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    spec, out = snakemake.params.spec, snakemake.output
    render_saliency_checks(
        read_predictions(snakemake.input.predictions, SAMPLE_COLUMNS),
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
