import numpy as np
import pandas as pd
from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.metrics import feature_neighbors, layer_metrics


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    labels = pd.read_parquet(snakemake.input.predictions, columns=["image_id", "label"])
    labels = labels.sort_values("image_id")["label"].to_numpy()
    keys = {k: snakemake.wildcards[k] for k in ("model", "ckpt", "layer")}
    features = np.load(snakemake.params.layer_file)  # read once for both outputs
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
