import json
import logging

import numpy as np
from cnnatlas.io import write_parquet
from cnnatlas.logs import to_log
from cnnatlas.maps.toolbox import read_labels
from cnnatlas.metrics import feature_neighbors, layer_metrics


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    labels = read_labels(snakemake.input.predictions)
    options = snakemake.params.options
    log = logging.getLogger("measure_maps")
    # One layer, or every layer of the checkpoint (config layer_jobs), one at a time.
    for job in snakemake.params.jobs:
        w = snakemake.wildcards
        keys = {"model": w.model, "ckpt": w.ckpt, "layer": job["layer"]}
        # Mapped, not read: the metrics read their subsample, the neighbours one pass.
        features = np.load(job["features"], mmap_mode="r")
        df = layer_metrics(features, labels, job["embeddings"], keys, options)
        if (df["trust_queries"] < df["n_points"]).any():
            log.info(
                "%s: trustworthiness and continuity of %d images estimated on %d "
                "stratified query points (maps.metrics.max_points), 95%% intervals "
                "up to +/-%.4f",
                job["layer"], len(features), df["trust_queries"].iloc[0],
                df[["trustworthiness_ci", "continuity_ci"]].to_numpy().max(),
            )  # fmt: skip
        # Every image's neighbours (not the subsample's), for the atlas page.
        found = feature_neighbors(
            features, job["neighbors"], options["k"], job["distances"],
            options["exact_neighbors_max"], seed=options["seed"],
        )  # fmt: skip
        found.pop("ids")
        if found["search"] != "exact":
            level = logging.WARNING if found["recall_at_k"] < 0.9 else logging.INFO
            log.log(
                level,
                "%s: feature-space neighbours of %d images from an HNSW index "
                "(maps.metrics.exact_neighbors_max %d): recall@%d %.3f on %d query points",
                job["layer"], len(features), options["exact_neighbors_max"],
                found["k"], found["recall_at_k"], found["recall_queries"],
            )  # fmt: skip
        meta = {"cnnatlas.neighbors": json.dumps(found, sort_keys=True)}
        write_parquet(df, job["metrics"], meta=meta)
        del features, df


main(snakemake)  # noqa: F821
