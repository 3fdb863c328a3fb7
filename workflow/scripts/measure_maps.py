import numpy as np
from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.metrics import feature_neighbors, layer_metrics
from cnnatlas.reduce import read_labels


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    labels = read_labels(snakemake.input.predictions)
    k = snakemake.params.options.get("k", 10)
    # One layer, or every layer of the checkpoint (config layer_jobs), one at a time.
    for job in snakemake.params.jobs:
        w = snakemake.wildcards
        keys = {"model": w.model, "ckpt": w.ckpt, "layer": job["layer"]}
        # Mapped, not read: the metrics read their subsample, the neighbours one pass.
        features = np.load(job["features"], mmap_mode="r")
        df = layer_metrics(
            features, labels, job["embeddings"], keys, snakemake.params.options
        )
        write_parquet(df, job["metrics"])
        # Every image's neighbours (not the subsample's), for the atlas page.
        feature_neighbors(features, job["neighbors"], k, job["distances"])
        del features, df


main(snakemake)  # noqa: F821
