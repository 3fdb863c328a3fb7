"""The maps stage, above the map methods: every map of a job (one layer, every layer of a
checkpoint, or of the run for a `batched` method), computed by its method from the
registry (`cnnatlas.maps`) and written as the output contract's embedding files, with
the map's parameters in the Parquet metadata (`cnnatlas.map`, JSON).

Each checkpoint's class labels (which stratify a subsample) are read once per job.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnatlas.io import write_parquet
from cnnatlas.maps import MapSpec, get_method, map_fields
from cnnatlas.maps.toolbox import (
    META_KEY,
    FeatureError,
    embedding_frame,
    load_features,
    read_labels,
)

__all__ = ["write_embedding", "write_maps", "write_job_maps"]

log = logging.getLogger(__name__)


def write_embedding(
    coords: np.ndarray, path: str | Path, method: str, spec: MapSpec, params: dict
) -> None:
    """Write one embedding Parquet; the method, the map's sweep point (`map_fields`)
    and `params` go to the metadata key `cnnatlas.map` (JSON)."""
    meta = {"method": method, **map_fields(spec), **params}
    write_parquet(
        embedding_frame(coords), path, {META_KEY: json.dumps(meta, sort_keys=True)}
    )


def write_maps(
    features: str | Path,
    method: str,
    outputs: Mapping[MapSpec, str | Path],
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    labels: np.ndarray | None = None,
) -> None:
    """Compute every map of one layer and method and write each to its output path;
    `labels` (the images' classes, `read_labels` of the checkpoint's predictions)
    stratify a subsample."""
    x = load_features(features)
    if labels is not None and len(labels) != len(x):
        raise FeatureError(
            f"{features}: {len(x)} rows but the checkpoint's predictions have "
            f"{len(labels)} images; re-run the extraction of this checkpoint"
        )
    log.info(
        "%s: %d points x %d features, %d %s maps",
        features,
        *x.shape,
        len(outputs),
        method,
    )
    maps = get_method(method).maps(
        x, list(outputs), options, n_jobs, str(features), labels
    )
    for spec, coords, params in maps:
        params = {"features": Path(features).name, **params}
        write_embedding(coords, outputs[spec], method, spec, params)


def write_job_maps(
    jobs: Sequence[Mapping[str, Any]],
    method: str,
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
) -> None:
    """`write_maps` for every layer of a reduce job (`Maps.jobs` entries: per
    layer its features, predictions and [dim, perplexity, seed, path] maps, as file
    names spell them); each checkpoint's labels are read once."""
    labels: dict[str, np.ndarray] = {}
    for job in jobs:
        predictions = str(job["predictions"])
        if predictions not in labels:
            labels[predictions] = read_labels(predictions)
        outputs = {
            get_method(method).spec(dim, perplexity, seed): path
            for dim, perplexity, seed, path in job["maps"]
        }
        write_maps(
            job["features"], method, outputs, options, n_jobs, labels[predictions]
        )
