import pandas as pd
import torch
from cnnatlas.classes import read_class_space
from cnnatlas.explain.gradcam import render_saliency
from cnnatlas.explain.select import SAMPLE_COLUMNS
from cnnatlas.io import read_predictions
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    spec, opts = snakemake.params.spec, snakemake.params.options
    out = snakemake.output
    render_saliency(
        read_predictions(snakemake.input.predictions, SAMPLE_COLUMNS),
        pd.read_parquet(snakemake.input.selection),
        load_model(spec, snakemake.input.checkpoint),
        spec["transform"],
        # captions name classes by title (`tench`) where class_index gives one
        read_class_space(snakemake.input.predictions).shown(),
        overlays_dir=out.overlays,
        per_image_out=out.per_image,
        summary_out=out.summary,
        figure_out=out.figure,
        methods=opts["methods"],
        layer=opts["target_layer"],
        fraction=opts["fraction"],
        blur=opts["blur"],
        seed=opts["seed"],
        batch_size=opts["batch_size"],
        device=snakemake.params.device,
        max_images=opts["max_images"],
        mem_mb=snakemake.resources.get("mem_mb"),
    )


main(snakemake)  # noqa: F821
