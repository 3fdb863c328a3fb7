import pandas as pd
import torch
from cnnatlas.classes import titles_as_names
from cnnatlas.explain.feature_maps import render_feature_maps
from cnnatlas.explain.inputs import spatial_layers
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    spec, opts = snakemake.params.spec, snakemake.params.options
    model = load_model(spec, snakemake.input.checkpoint)
    layers = spatial_layers(
        model, spec["transform"], list(spec["layers"]), snakemake.params.layers
    )
    render_feature_maps(
        # captions name classes by title (`tench`) where class_index gives one
        titles_as_names(pd.read_parquet(snakemake.input.selection)),
        model,
        spec["transform"],
        layers,
        snakemake.output.maps,
        per_row=opts["per_row"],
        normalize=opts["normalize"],
        cmap=opts["cmap"],
        device=snakemake.params.device,
    )


main(snakemake)  # noqa: F821
