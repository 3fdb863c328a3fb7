"""Features extracted elsewhere (`models.<model>.features_from`): checked and read.

A model with `features_from` maps each checkpoint name to a folder holding
`<layer>.npy` ([N, D], any float dtype) for every configured layer, `logits.npy` or
`probs.npy` ([N, K]) and optionally `paths.txt` (one image path per row, relative to
the dataset's root: the ImageFolder, or the folder of a manifest table). Without
`paths.txt` row i is image_id i. The import (`cnnatlas.extract.import_features`)
writes the same files as a forward pass; this module holds what it reads and the
checks, each naming the config key to fix.
"""

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnatlas.errors import CnnatlasError

__all__ = [
    "FEATURES_FROM",
    "RECORD",
    "PROBS_MIN",
    "BLOCK_ROWS",
    "imported",
    "complete_models",
    "folder_files",
    "Folder",
    "open_folder",
    "dataset_root",
    "row_order",
    "LogitRows",
    "read_logits",
    "copy_rows",
]

log = logging.getLogger(__name__)

FEATURES_FROM = "features_from"
# beside an imported checkpoint's predictions: the sha256 of the files it was read from
RECORD = "imported.json"
# probabilities are clipped to this before their log is taken (log(0) = -inf)
PROBS_MIN = 1e-12
# rows copied at a time: 16,384 rows of 2,048 float64 features are 256 MiB
BLOCK_ROWS = 1 << 14
_SHOW = 5  # missing paths listed in an error


def imported(spec: Mapping[str, Any]) -> bool:
    """Whether a model's features come from folders (`features_from`), not a network."""
    return FEATURES_FROM in spec


def complete_models(models: dict[str, Any]) -> None:
    """Give every imported model its `checkpoints` (the keys of `features_from`, each
    with its folder) when the config leaves them out; fail, naming the key, when a
    checkpoint has no folder or a folder no checkpoint."""
    for name, spec in models.items():
        if not imported(spec):
            continue
        folders = spec[FEATURES_FROM]
        spec.setdefault("checkpoints", dict(folders))
        key = f"models.{name}.{FEATURES_FROM}"
        for ckpt in spec["checkpoints"]:
            if ckpt not in folders:
                raise CnnatlasError(
                    f"{key}.{ckpt}: checkpoint {ckpt!r} of models.{name}.checkpoints "
                    f"has no folder; add it to {key} (or leave checkpoints out)"
                )
        for ckpt in folders:
            if ckpt not in spec["checkpoints"]:
                raise CnnatlasError(
                    f"{key}.{ckpt}: {ckpt!r} is not a checkpoint of "
                    f"models.{name}.checkpoints ({list(spec['checkpoints'])})"
                )


def folder_files(folder: str | Path, layers: Sequence[str]) -> list[Path]:
    """The files of an import folder that the import reads, in a fixed order."""
    folder = Path(folder)
    names = [f"{layer}.npy" for layer in layers]
    names += ["logits.npy", "probs.npy", "paths.txt"]
    return [folder / n for n in names if (folder / n).is_file()]


class Folder:
    """An import folder, checked: `layers` {name: [N, D] memmap}, `scores` [N, K]
    memmap read from `scores_file`, `probs` (whether the scores are probabilities),
    `paths` (rows' image paths, or None), `n` rows."""

    def __init__(
        self,
        layers: dict[str, np.ndarray],
        scores: np.ndarray,
        scores_file: Path,
        probs: bool,
        paths: list[str] | None,
    ) -> None:
        self.layers, self.scores, self.probs, self.paths = layers, scores, probs, paths
        self.scores_file = scores_file
        self.n = len(scores)


def _load(path: Path, key: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise CnnatlasError(f"{path}: not a .npy array ({err}); fix {key}") from err
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise CnnatlasError(
            f"{path}: a {array.ndim}-D {array.dtype} array, not a 2-D float array "
            f"[images, values]; fix the folder of {key}"
        )
    return array


def open_folder(folder: str | Path, layers: Sequence[str], key: str) -> Folder:
    """The import folder of `key` (`models.<m>.features_from.<ckpt>`), every file
    checked: one `<layer>.npy` per layer, `logits.npy` or `probs.npy`, the same rows."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnatlasError(f"{key}: {folder} is not a folder")
    arrays = {}
    for layer in layers:
        path = folder / f"{layer}.npy"
        if not path.is_file():
            raise CnnatlasError(
                f"{path} does not exist: every layer of the model's layers needs its "
                f"features in the folder of {key} (or remove layer {layer!r})"
            )
        arrays[layer] = _load(path, key)
    file, probs = _scores(folder, key)
    scores = _load(file, key)
    for name, array in arrays.items():
        if len(array) != len(scores):
            raise CnnatlasError(
                f"{folder / (name + '.npy')} has {len(array)} rows but "
                f"{file.name} has {len(scores)}; fix {key}"
            )
    paths = _paths(folder, len(scores), key)
    return Folder(arrays, scores, file, probs, paths)


def _scores(folder: Path, key: str) -> tuple[Path, bool]:
    """The file of the model's outputs, and whether it holds probabilities."""
    logits, probs = folder / "logits.npy", folder / "probs.npy"
    if logits.is_file() and probs.is_file():
        raise CnnatlasError(
            f"{folder} holds both logits.npy and probs.npy; keep one (fix {key})"
        )
    if not logits.is_file() and not probs.is_file():
        raise CnnatlasError(
            f"{logits} does not exist: the folder of {key} needs the model's outputs, "
            "logits.npy or probs.npy [images, classes]"
        )
    return (probs, True) if probs.is_file() else (logits, False)


def _paths(folder: Path, n: int, key: str) -> list[str] | None:
    path = folder / "paths.txt"
    if not path.is_file():
        return None
    paths = path.read_text(encoding="utf-8").splitlines()
    if len(paths) != n:
        raise CnnatlasError(
            f"{path} lists {len(paths)} paths but the arrays have {n} rows; "
            f"one path per row (fix {key})"
        )
    return paths


def dataset_root(dataset: Mapping[str, Any]) -> str:
    """The folder paths.txt is relative to: the config's ImageFolder, or the folder of
    its manifest table (whose relative paths start there)."""
    path = Path(dataset["path"])
    return str(path if dataset["kind"] == "imagefolder" else path.parent)


def _relative(path: str, root: Path | None) -> str:
    """`path` normalised, relative to `root` when it lies below it."""
    p = Path(os.path.normpath(path))
    if root is not None and p.is_relative_to(root):
        p = p.relative_to(root)
    return p.as_posix()


def row_order(
    folder: Folder,
    manifest_paths: Sequence[str],
    key: str,
    root: str | Path | None = None,
) -> np.ndarray:
    """For each manifest image (in image_id order), its row in the folder's arrays.

    Without paths.txt the rows are the manifest's images in order, so their counts must
    match; with it every manifest image must be listed (rows of other images are left
    out, with a warning). Paths match relative to `root` (`dataset_root`): paths.txt
    may list them relative to it, or as the manifest stores them.
    """
    n = len(manifest_paths)
    if folder.paths is None:
        if folder.n != n:
            raise CnnatlasError(
                f"{folder.scores_file} has {folder.n} rows but the manifest lists {n} "
                "images: without paths.txt row i must be image_id i; add paths.txt "
                f"(one image path per row) to match rows to images (fix {key})"
            )
        return np.arange(n)
    base = Path(os.path.normpath(root)) if root is not None else None
    rows: dict[str, int] = {}
    for i, p in enumerate(folder.paths):
        rows.setdefault(_relative(p, base), i)
    wanted = [_relative(p, base) for p in manifest_paths]
    missing = [p for p in wanted if p not in rows]
    if missing:
        raise CnnatlasError(
            f"paths.txt of {key} lacks {len(missing)} of the manifest's {n} images, "
            f"e.g. {missing[:_SHOW]}; list each image's path relative to the "
            f"dataset's root {str(root)!r}"
        )
    extra = folder.n - n
    if extra:
        log.warning(
            "%s: %d rows of images that are not in the manifest are left out",
            key,
            extra,
        )
    return np.array([rows[p] for p in wanted], dtype=np.int64)


class LogitRows:
    """The logits [N, K] float32 of the manifest's images (`order`: each image's row in
    the folder), read when sliced: `logits[a:b]` reads those rows only, so a reader that
    takes a block at a time never holds [N, K]. Probabilities become
    log(max(p, PROBS_MIN)), logits with the same softmax."""

    def __init__(self, folder: Folder, order: np.ndarray) -> None:
        self.folder, self.order = folder, order
        self.shape = (len(order), folder.scores.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        # a memmap of its own, unmapped on return: the pages a block read leave the
        # process's resident set with it (the folder's memmap would keep every one)
        file = np.load(self.folder.scores_file, mmap_mode="r", allow_pickle=False)
        scores = file[self.order[rows]]
        del file
        if self.folder.probs:
            scores = np.log(np.maximum(scores.astype(np.float64), PROBS_MIN))
        return scores.astype(np.float32, copy=False)


def read_logits(
    folder: Folder, order: np.ndarray, rows: int = BLOCK_ROWS
) -> np.ndarray:
    """`LogitRows` read whole: the logits [N, K] float32, `rows` rows at a time."""
    lazy = LogitRows(folder, order)
    out = np.empty(lazy.shape, np.float32)
    for block in _blocks(len(order), rows):
        out[block] = lazy[block]
    return out


def _blocks(n: int, rows: int) -> Iterator[slice]:
    # as maps.toolbox.row_chunks, which the planner (reading this module) may not import
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


def copy_rows(
    source: np.ndarray, order: np.ndarray, out: np.ndarray, rows: int = BLOCK_ROWS
) -> None:
    """out[i] = source[order[i]] as out's dtype, `rows` rows at a time (memory bounded
    for memmaps)."""
    for block in _blocks(len(order), rows):
        idx = order[block]
        start = int(idx[0])
        if np.array_equal(idx, np.arange(start, start + len(idx))):
            out[block] = source[
                start : start + len(idx)
            ]  # a slice of a memmap: no copy
        else:
            out[block] = source[np.sort(idx)][np.argsort(np.argsort(idx))]
