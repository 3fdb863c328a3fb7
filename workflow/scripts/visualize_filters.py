import torch
from cnnatlas.explain.filters import visualize_filters
from cnnatlas.explain.inputs import spatial_layers
from cnnatlas.explain.select import SAMPLE_COLUMNS
from cnnatlas.io import read_predictions
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    spec, opts = snakemake.params.spec, dict(snakemake.params.options)
    model = load_model(spec, snakemake.input.checkpoint)
    layers = spatial_layers(
        model, spec["transform"], list(spec["layers"]), snakemake.params.layers
    )
    visualize_filters(
        read_predictions(snakemake.input.predictions, SAMPLE_COLUMNS),
        model,
        spec["transform"],
        layers,
        out_dir=snakemake.output.grids,
        table_out=snakemake.output.table,
        device=snakemake.params.device,
        **opts,
    )


main(snakemake)  # noqa: F821
