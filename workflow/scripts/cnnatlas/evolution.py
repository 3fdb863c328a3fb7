"""Maps of one layer across a model's checkpoints, aligned so the eye can follow points.

Each map method that can do this defines `evolve` in its registry entry
(`cnnatlas.maps`): t-SNE (`maps/tsne.py`): checkpoint 0 starts from the (jittered) PCA
initialisation, as the maps stage does; checkpoint k+1 starts from checkpoint k's map
rescaled to t-SNE's initial scale (`openTSNE.initialization.rescale`), so clusters keep
their place unless the features move them; a rotation/reflection the optimisation may
still add is undone by orthogonal Procrustes onto map k (t-SNE is blind to rotations).
PCA (`maps/pca.py`): each checkpoint's PCA map is rotated/reflected onto the previous
aligned one by orthogonal Procrustes. Both are compared here with independent maps (every
checkpoint from its own PCA initialisation / raw PCA) by the mean point displacement and
the Procrustes disparity between consecutive maps.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import procrustes

from cnnatlas.errors import CnnatlasError
from cnnatlas.io import write_parquet
from cnnatlas.maps import get_method, methods
from cnnatlas.maps.toolbox import embedding_frame, load_features

__all__ = [
    "META_KEY",
    "evolution_methods",
    "displacement",
    "disparity",
    "alignment_table",
    "evolve_layer",
    "read_evolution",
]

log = logging.getLogger(__name__)

META_KEY = "cnnatlas.evolution"


def evolution_methods() -> list[str]:
    """The map methods that can follow a layer across checkpoints (those with `evolve`)."""
    return [name for name, m in methods().items() if m.evolve is not None]


def _normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64) - np.mean(a, axis=0)
    scale = np.sqrt((a**2).sum(axis=1).mean())
    return a / scale if scale > 0 else a


def displacement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance a point moves from map `a` to map `b`, both centred and scaled to
    unit RMS radius; no rotation allowed, so it is what the eye sees."""
    return float(np.linalg.norm(_normalise(a) - _normalise(b), axis=1).mean())


def disparity(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's Procrustes disparity (after the best translation, scale and rotation)."""
    return float(procrustes(np.asarray(a, np.float64), np.asarray(b, np.float64))[2])


def alignment_table(
    method: str,
    ckpts: Sequence[str],
    aligned: Sequence[np.ndarray],
    independent: Sequence[np.ndarray],
) -> pd.DataFrame:
    """One row per consecutive pair of checkpoints and per kind (aligned, independent)."""
    rows = []
    for kind, maps in (("aligned", aligned), ("independent", independent)):
        for k in range(len(maps) - 1):
            rows.append(
                {
                    "method": method,
                    "from_ckpt": ckpts[k],
                    "to_ckpt": ckpts[k + 1],
                    "kind": kind,
                    "displacement": displacement(maps[k], maps[k + 1]),
                    "disparity": disparity(maps[k], maps[k + 1]),
                }
            )
    return pd.DataFrame(rows)


def evolve_layer(
    features: Mapping[str, str | Path],
    method: str,
    maps_dir: str | Path,
    alignment: str | Path,
    perplexity: float,
    seed: int,
    options: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Write `maps_dir/{ckpt}.parquet` (image_id, x, y) for checkpoints in the order of
    `features` (ckpt -> .npy) and the alignment table; returns the table."""
    if len(features) < 2:
        raise CnnatlasError(
            f"training evolution needs at least 2 checkpoints, got {list(features)}"
        )
    ckpts = list(features)
    xs = [load_features(features[c]) for c in ckpts]
    if len({len(x) for x in xs}) != 1:
        raise CnnatlasError(
            f"checkpoints {ckpts} have features of {[len(x) for x in xs]} images; "
            "they must come from the same manifest: re-run extract_features"
        )
    if method not in evolution_methods():
        raise ValueError(
            f"map method {method!r} has no training evolution; expected one of "
            f"{evolution_methods()}"
        )
    aligned, independent = get_method(method).evolution(
        xs, perplexity, seed, options, n_jobs, [str(features[c]) for c in ckpts]
    )
    table = alignment_table(method, ckpts, aligned, independent)
    _write_maps(maps_dir, ckpts, aligned, method, perplexity, seed)
    write_parquet(table, alignment)
    _log_summary(table)
    return table


def _write_maps(folder, ckpts, maps, method, perplexity, seed) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, (ckpt, coords) in enumerate(zip(ckpts, maps, strict=True)):
        meta = {"method": method, "ckpt": ckpt, "order": k, "ckpts": ckpts}
        axes = {"perplexity": perplexity, "seed": seed}
        meta |= {a: axes[a] for a in get_method(method).axes}
        write_parquet(
            embedding_frame(coords),
            folder / f"{ckpt}.parquet",
            {META_KEY: json.dumps(meta, sort_keys=True)},
        )


def _log_summary(table: pd.DataFrame) -> None:
    mean = table.groupby("kind")[["displacement", "disparity"]].mean()
    for kind, row in mean.iterrows():
        log.info(
            "%s maps: mean displacement %.4f, Procrustes disparity %.4f",
            kind, row["displacement"], row["disparity"],
        )  # fmt: skip


def read_evolution(maps_dir: str | Path, ckpts: Sequence[str]) -> list[np.ndarray]:
    """The aligned maps [N, 2] of `ckpts` (in that order) from `maps_dir`."""
    out = []
    for ckpt in ckpts:
        path = Path(maps_dir) / f"{ckpt}.parquet"
        if not path.is_file():
            raise CnnatlasError(f"{path} is missing: re-run align_evolution")
        df = pd.read_parquet(path).sort_values("image_id")
        out.append(df[["x", "y"]].to_numpy(np.float32))
    return out
