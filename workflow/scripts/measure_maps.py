import numpy as np
from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.metrics import feature_neighbors, layer_metrics
from cnnatlas.reduce import read_labels


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    labels = read_labels(snakemake.input.predictions)
    keys = {k: snakemake.wildcards[k] for k in ("model", "ckpt", "layer")}
    # Mapped, not read: the metrics read their subsample, the neighbours one pass.
    features = np.load(snakemake.params.layer_file, mmap_mode="r")
    df = layer_metrics(
        features,
        labels,
        snakemake.input.embeddings,
        keys,
        snakemake.params.options,
    )
    write_parquet(df, snakemake.output.metrics)
    # Every image's neighbours (not the subsample's), for the atlas page.
    k = snakemake.params.options.get("k", 10)
    feature_neighbors(features, snakemake.output.neighbors, k)


main(snakemake)  # noqa: F821
