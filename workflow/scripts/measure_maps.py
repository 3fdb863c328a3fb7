import numpy as np
import pandas as pd
from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.metrics import feature_neighbors, layer_metrics


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    labels = pd.read_parquet(snakemake.input.predictions, columns=["image_id", "label"])
    labels = labels.sort_values("image_id")["label"].to_numpy()
    k = snakemake.params.options.get("k", 10)
    # One layer, or every layer of the checkpoint (config layer_jobs), one at a time.
    for job in snakemake.params.jobs:
        w = snakemake.wildcards
        keys = {"model": w.model, "ckpt": w.ckpt, "layer": job["layer"]}
        features = np.load(job["features"])  # read once for both outputs
        df = layer_metrics(
            features, labels, job["embeddings"], keys, snakemake.params.options
        )
        write_parquet(df, job["metrics"])
        # Every image's neighbours (not the subsample's), for the atlas page.
        feature_neighbors(features, job["neighbors"], k)
        del features, df


main(snakemake)  # noqa: F821
