"""One forward pass per checkpoint: predictions and the features of every configured layer.

The pass is batched through a DataLoader, runs under `torch.inference_mode` in
channels_last layout (+34-46% on CPU here), and writes each layer's pooled features
into a preallocated `.npy` memmap, so memory does not grow with the number of images.
The data path (uint8 from the workers, decoding on the device, normalisation there, the
features' asynchronous copy back) is `cnnatlas.batches`.
"""

import itertools
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnatlas.batches import (
    CropDataset,
    FeatureSink,
    autocast_context,
    collate_crops,
    device_batch,
    resolve_decode,
    resolve_precision,
    strict_fp32,
)
from cnnatlas.classes import ClassSpace, class_space
from cnnatlas.errors import CnnatlasError
from cnnatlas.io import atomic_path, read_parquet_meta
from cnnatlas.logs import Progress
from cnnatlas.maps.toolbox import row_chunks
from cnnatlas.models import check_layers
from cnnatlas.precomputed import (
    LogitRows,
    copy_rows,
    folder_files,
    open_folder,
    row_order,
)
from cnnatlas.provenance import sha256_file
from cnnatlas.schema import default, defaults
from cnnatlas.torchutil import LOGITS, make_transform, resolve_device, tap_layers

__all__ = [
    "POOLS",
    "pool",
    "forward_pass",
    "PREDICTION_ROWS",
    "predictions_table",
    "write_predictions",
    "prediction_blocks",
    "extract_options",
    "extract",
    "shard_rows",
    "extract_shard",
    "gather_shards",
    "import_features",
]

log = logging.getLogger(__name__)

POOLS = ("avg", "max", "flatten")
# rows of the predictions computed and written at a time (one Parquet row group each):
# a float64 [rows, C] array of 65,536 rows and 1,000 classes is 0.5 GB, where ImageNet's
# whole [1,280,000, 1,000] is 10 GB
PREDICTION_ROWS = 1 << 16
# the manifest's columns that lead the predictions (its metadata columns come last)
_MANIFEST_COLUMNS = ("image_id", "path", "label", "label_name")


def pool(t: torch.Tensor, how: str = "avg") -> torch.Tensor:
    """[N, C, H, W] (or [N, T, D]) activations to [N, D]: average, max over space, or flatten."""
    if how not in POOLS:
        raise ValueError(f"pooling {how!r} is not one of {POOLS}")
    if t.ndim <= 2 or how == "flatten":
        return t.reshape(t.shape[0], -1)
    dims = tuple(range(2, t.ndim)) if t.ndim == 4 else (1,)
    return t.mean(dims) if how == "avg" else t.amax(dims)


def forward_pass(
    model: nn.Module,
    dataset: CropDataset,
    layers: Mapping[str, str],
    features_dir: str | Path,
    batch_size: int = default("extract.batch_size"),
    num_workers: int = 0,
    device: str = default("extract.device"),
    precision: str = default("extract.precision"),
) -> np.ndarray:
    """Run `model` once over `dataset`; write `features_dir/{layer}.npy`, return the logits [N, C].

    Features are stored as float32 whatever `precision` the model runs in.
    """
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    model = model.eval().to(dev, memory_format=torch.channels_last)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_crops,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if num_workers else None,
    )
    Path(features_dir).mkdir(parents=True, exist_ok=True)
    sink = FeatureSink(features_dir, len(dataset), dev, in_memory=[LOGITS])
    started = time.perf_counter()
    try:
        with (
            tap_layers(model, list(layers)) as tapped,
            torch.inference_mode(),
            strict_fp32(dev, dtype),
            Progress(len(dataset), "forward pass", "images") as progress,
        ):
            for batch in loader:
                ids = batch["rows"]
                x = device_batch(batch, dataset, dev)
                with autocast_context(dev, dtype):  # the model only, not the data path
                    out = tapped(x)
                # pooled in float32 whatever the model ran in (a no-op for fp32)
                pooled = {n: pool(out[n].float(), how) for n, how in layers.items()}
                sink.put(
                    slice(int(ids[0]), int(ids[-1]) + 1), pooled | {LOGITS: out[LOGITS]}
                )
                progress.update(len(ids))
        sink.close()
    finally:
        sink.discard()
    seconds = time.perf_counter() - started
    log.info(
        "forward pass: %d images in %.1f s (%.1f images/s) on %s, %s, decode %s",
        len(dataset),
        seconds,
        len(dataset) / seconds,
        dev,
        dtype or torch.float32,
        "on the device" if dataset.encoded else "by PIL",
    )
    return sink.arrays[LOGITS]


def predictions_table(
    manifest: pd.DataFrame,
    logits: np.ndarray,
    classes: Sequence[str],
    topk: int,
    space: ClassSpace | None = None,
) -> pd.DataFrame:
    """The predictions columns of DESIGN.md from the logits [N, C] and the manifest (row i = image i).

    `space` maps dataset classes to model outputs (default: class i is output i); `pred`,
    `topk_ids` and `probs` are in the model's outputs, `correct`, `in_topk` and `loss`
    compare them with each label's output. `label_title` and `pred_title` are the human
    names `space` gives (a class-index file's `tench`), else equal to `label_name` and
    `pred_name`. The table `write_predictions` writes, in memory: for small N (`probs`
    is one array per row).
    """
    schema, blocks = prediction_blocks(manifest, logits, classes, topk, space)
    return pa.Table.from_batches(list(blocks), schema).to_pandas()


def write_predictions(
    manifest: pd.DataFrame,
    logits: np.ndarray,
    classes: Sequence[str],
    topk: int,
    out: str | Path,
    space: ClassSpace | None = None,
) -> float:
    """Write `predictions_table` to the Parquet file `out` (atomically, with `space`'s
    metadata), `PREDICTION_ROWS` rows at a time, one row group each: the per-class
    columns never exist for more than one block. `logits` is anything sliced by rows
    (an array, a memmap, `cnnatlas.precomputed.LogitRows`). Returns the share of
    correct predictions.

    A table of at most `PREDICTION_ROWS` rows is the bytes `write_parquet` writes for
    `predictions_table`; a larger one the same values in more row groups.
    """
    schema, blocks = prediction_blocks(manifest, logits, classes, topk, space)
    correct = 0
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for block in blocks:
                writer.write_batch(block)
                correct += pc.sum(block.column("correct")).as_py() or 0
                del block  # not held while the next one is computed
    return correct / len(manifest)


def prediction_blocks(
    manifest: pd.DataFrame,
    logits: np.ndarray,
    classes: Sequence[str],
    topk: int,
    space: ClassSpace | None = None,
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The schema of `predictions_table` (pandas' metadata and `space`'s included) and
    its rows as Arrow batches of `PREDICTION_ROWS` rows, each computed when taken.

    Per-class columns are list arrays over one flat buffer per batch, never a Python
    object per row; softmax runs in float64 on a batch's rows only.
    """
    if space is None:
        space = class_space(
            None, classes, logits.shape[1], "models.<model>.class_index"
        )
    targets = _targets(manifest, space)
    base = _base_columns(manifest, space, targets)
    k = min(topk, logits.shape[1])
    schema = _schema(base, k, space.meta())
    outputs = range(logits.shape[1])
    names = np.array([space.name(i) for i in outputs], dtype=object)
    titles = np.array([space.title(i) for i in outputs], dtype=object)

    def batches() -> Iterator[pa.RecordBatch]:
        # no name holds a block's arrays past its yield: the next block is computed
        # beside the writer's buffers only
        for rows in row_chunks(len(manifest), PREDICTION_ROWS):
            yield _batch(
                base.slice(rows.start, rows.stop - rows.start),
                _scores(logits[rows], targets[rows], k),
                names,
                titles,
                schema,
            )

    return schema, batches()


def _targets(manifest: pd.DataFrame, space: ClassSpace) -> np.ndarray:
    """The model output of each image's label."""
    labels = manifest["label"].to_numpy(dtype=np.int64, copy=True)
    if labels.max() >= len(space.targets):
        raise CnnatlasError(
            f"labels go up to {labels.max()} but the class list has {len(space.targets)} classes"
        )
    return space.target(labels)


def _base_columns(
    manifest: pd.DataFrame, space: ClassSpace, targets: np.ndarray
) -> pa.Table:
    """The columns that do not depend on the logits: the manifest's four, label_title,
    then its metadata columns, converted once for all rows (so that a column's type is
    read from all of it, as `write_parquet` reads it)."""
    df = manifest[list(_MANIFEST_COLUMNS)].copy().reset_index(drop=True)
    df["label_title"] = [space.title(t) for t in targets]
    meta = manifest.drop(columns=list(_MANIFEST_COLUMNS))
    df = pd.concat([df, meta.reset_index(drop=True)], axis=1)
    return pa.Table.from_pandas(df, preserve_index=False)


def _scores(logits: np.ndarray, targets: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The columns computed from the logits [n, C] of n images, by name: numpy arrays
    of n values ([n, k] for the top-k columns, [n, C] for probs)."""
    # float64 whatever the logits' dtype: a copy of this block only
    logp = torch.log_softmax(torch.from_numpy(np.array(logits, np.float64)), dim=1)
    probs = logp.exp()
    top_p, top_i = probs.topk(k, dim=1)
    pred = top_i[:, 0].numpy()
    second = top_p[:, 1] if k > 1 else torch.zeros(len(logp), dtype=logp.dtype)
    loss = -logp[torch.arange(len(logp)), torch.from_numpy(targets)]
    # p * log p in logp's own memory (the same products as a new array): a block holds
    # two float64 [n, C] arrays at most
    entropy = -logp.mul_(probs).sum(1)
    return {
        "pred": pred.astype(np.int64),
        "confidence": top_p[:, 0].numpy().astype(np.float32),
        "correct": pred == targets,
        "topk_ids": top_i.numpy().astype(np.int64),
        "topk_probs": top_p.numpy().astype(np.float32),
        "in_topk": (top_i.numpy() == targets[:, None]).any(axis=1),
        "probs": probs.numpy().astype(np.float32),
        "loss": loss.numpy().astype(np.float32),
        "entropy": entropy.numpy().astype(np.float32),
        "margin": (top_p[:, 0] - second).numpy().astype(np.float32),
    }


def _batch(
    base: pa.Table,
    scores: dict[str, np.ndarray],
    names: np.ndarray,
    titles: np.ndarray,
    schema: pa.Schema,
) -> pa.RecordBatch:
    """One batch of `schema`: `base`'s rows and the columns computed for them."""
    pred = scores["pred"]
    computed = {"pred_name": names[pred], "pred_title": titles[pred]} | scores
    arrays = []
    for field in schema:
        if field.name in computed:
            arrays.append(_arrow(computed[field.name], field.type))
        else:
            arrays.append(base.column(field.name).combine_chunks())
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _arrow(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A numpy column as an Arrow array of `type_`; a 2-D one as a list array over its
    flat buffer (row i is values[i])."""
    if values.ndim == 1:
        return pa.array(values, type=type_)
    n, width = values.shape
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)), type=type_)


def _schema(base: pa.Table, k: int, meta: Mapping[str, str]) -> pa.Schema:
    """The fields and metadata `pa.Table.from_pandas` gives `predictions_table`: the
    computed columns' from a one-row table of them (their types do not depend on the
    data), `base`'s from all its rows; `meta` after pandas' own key."""
    one = {
        "pred": np.zeros(1, np.int64),
        "pred_name": ["x"],
        "pred_title": ["x"],
        "confidence": np.zeros(1, np.float32),
        "correct": np.zeros(1, bool),
        "topk_ids": list(np.zeros((1, k), np.int64)),
        "topk_probs": list(np.zeros((1, k), np.float32)),
        "in_topk": np.zeros(1, bool),
        "probs": list(np.zeros((1, 1), np.float32)),
        "loss": np.zeros(1, np.float32),
        "entropy": np.zeros(1, np.float32),
        "margin": np.zeros(1, np.float32),
    }
    computed = pa.Schema.from_pandas(pd.DataFrame(one), preserve_index=False)
    pandas = json.loads(base.schema.metadata[b"pandas"])
    at = len(_MANIFEST_COLUMNS) + 1  # after label_title
    columns = pandas["columns"]
    pandas["columns"] = (
        columns[:at]
        + json.loads(computed.metadata[b"pandas"])["columns"]
        + columns[at:]
    )
    fields = list(base.schema)[:at] + list(computed) + list(base.schema)[at:]
    extra = {k.encode(): v.encode() for k, v in meta.items()}
    return pa.schema(fields, metadata={b"pandas": json.dumps(pandas).encode()} | extra)


def extract_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `extract` section with the schema's defaults for keys not given."""
    schema = defaults("extract")
    unknown = sorted(set(options) - set(schema))
    if unknown:
        raise CnnatlasError(
            f"extract options {unknown} are not known; use {sorted(schema)}"
        )
    return {**schema, **options}


def _prepare(
    model: nn.Module, layers: Mapping[str, str], threads: int, model_name: str
) -> None:
    torch.set_num_threads(threads)
    check_layers(model, list(layers), model_name)


def _workers(num_workers: int | str, threads: int, device: torch.device) -> int:
    """`num_workers: auto`: 0 on the CPU, where workers compete with torch's threads for
    the job's cores; threads - 1 on CUDA, where they feed the device."""
    if num_workers != "auto":
        return int(num_workers)
    return max(threads - 1, 0) if device.type == "cuda" else 0


def extract(
    manifest: str | Path,
    model: nn.Module,
    layers: Mapping[str, str],
    predictions: str | Path,
    features_dir: str | Path,
    transform: Mapping[str, Any],
    threads: int = 1,
    model_name: str = "model",
    class_index: Mapping[str, int] | str | None = None,
    **options: Any,
) -> None:
    """Predictions Parquet and `features_dir/{layer}.npy` for every image of `manifest`.

    `options` are keys of the config's `extract` section (batch_size, num_workers,
    device, precision, decode, topk); the schema gives the rest. `model_name` (the
    config's key) names the model in error messages; `class_index` (the config's) maps
    the dataset's classes to the model's outputs (`cnnatlas.classes`).
    """
    opts = extract_options(options)
    _prepare(model, layers, threads, model_name)
    df = pd.read_parquet(manifest)
    logits = _forward(model, df, layers, features_dir, transform, opts, threads)
    _write_predictions(
        manifest, df, logits, predictions, opts["topk"], class_index, model_name
    )


def _forward(
    model: nn.Module,
    df: pd.DataFrame,
    layers: Mapping[str, str],
    features_dir: str | Path,
    transform: Mapping[str, Any],
    opts: Mapping[str, Any],
    threads: int,
) -> np.ndarray:
    """`forward_pass` over the images of `df` with the config's transform."""
    _warn_unused_gpu(opts["device"])
    dev = resolve_device(opts["device"])
    encoded = resolve_decode(opts["decode"]) == "gpu"
    dataset = CropDataset(df["path"].tolist(), make_transform(transform), encoded)
    workers = _workers(opts["num_workers"], threads, dev)
    return forward_pass(
        model, dataset, layers, features_dir, opts["batch_size"], workers,
        opts["device"], opts["precision"],
    )  # fmt: skip


def _warn_unused_gpu(device: str) -> None:
    # A scheduler that allocated a GPU sets CUDA_VISIBLE_DEVICES; a CPU-only torch
    # build (or a missing driver) would otherwise quietly extract on the CPU.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if device == "auto" and visible not in ("", "-1") and not torch.cuda.is_available():
        log.warning(
            "this job was given GPU(s) CUDA_VISIBLE_DEVICES=%s but torch sees no CUDA "
            "device (torch %s, CUDA build %s); extracting on the CPU",
            visible,
            torch.__version__,
            torch.version.cuda,
        )


def _write_predictions(
    manifest, df, logits, predictions, topk, class_index, model_name
) -> None:
    classes = json.loads(read_parquet_meta(manifest).get("cnnatlas.classes", "[]"))
    key = f"models.{model_name}.class_index"
    space = class_space(class_index, classes, logits.shape[1], key)
    accuracy = write_predictions(df, logits, classes, topk, predictions, space)
    log.info("accuracy %.4f over %d images", accuracy, len(df))


def shard_rows(n: int, batch_size: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) rows of each of `shards` shards of `n` images.

    Shards hold whole batches (the last one ends with the unsharded run's last, partial
    batch), so every batch a shard runs is a batch the unsharded pass runs: on the CPU
    the features and logits are then the same bytes. Batches are spread as evenly as
    possible; more shards than batches is an error, as a shard would be empty.
    """
    batches = -(-n // batch_size)
    if shards > batches:
        raise CnnatlasError(
            f"extract.shards is {shards} but {n} images make only {batches} batches of "
            f"extract.batch_size {batch_size}: use at most {batches} shards"
        )
    edges = [min(i * batches // shards * batch_size, n) for i in range(shards + 1)]
    return list(itertools.pairwise(edges))


def extract_shard(
    manifest: str | Path,
    model: nn.Module,
    layers: Mapping[str, str],
    shard_dir: str | Path,
    transform: Mapping[str, Any],
    shard: int,
    shards: int,
    threads: int = 1,
    model_name: str = "model",
    **options: Any,
) -> None:
    """Shard `shard` of `shards` of the manifest: `shard_dir/{layer}.npy` and `logits.npy`.

    `options` as for `extract`. `model_name` (the config's key) names the model in
    error messages.
    """
    opts = extract_options(options)
    _prepare(model, layers, threads, model_name)
    df = pd.read_parquet(manifest)
    start, stop = shard_rows(len(df), opts["batch_size"], shards)[shard]
    log.info("shard %d of %d: images %d..%d", shard, shards, start, stop - 1)
    logits = _forward(
        model, df.iloc[start:stop], layers, shard_dir, transform, opts, threads
    )
    with atomic_path(Path(shard_dir) / "logits.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, logits)


def gather_shards(
    manifest: str | Path,
    shard_dirs: Sequence[str | Path],
    layers: Sequence[str],
    predictions: str | Path,
    features_dir: str | Path,
    topk: int,
    model_name: str = "model",
    class_index: Mapping[str, int] | str | None = None,
) -> None:
    """The outputs of `extract` from the shards' outputs, given in shard order.

    Each layer is copied shard by shard into a memmap, so memory does not grow with N.
    """
    df = pd.read_parquet(manifest)
    counts = [len(np.load(Path(d) / "logits.npy", mmap_mode="r")) for d in shard_dirs]
    if sum(counts) != len(df):
        raise CnnatlasError(
            f"the shards {[str(d) for d in shard_dirs]} hold {sum(counts)} images but "
            f"{manifest} lists {len(df)}: the manifest changed; rerun the shards"
        )
    for layer in layers:
        parts = [np.load(Path(d) / f"{layer}.npy", mmap_mode="r") for d in shard_dirs]
        _concatenate(parts, Path(features_dir) / f"{layer}.npy")
    logits = np.concatenate([np.load(Path(d) / "logits.npy") for d in shard_dirs])
    _write_predictions(manifest, df, logits, predictions, topk, class_index, model_name)


def _concatenate(parts: Sequence[np.ndarray], out: Path) -> None:
    shape = (sum(len(p) for p in parts), parts[0].shape[1])
    with atomic_path(out) as tmp:
        mm = np.lib.format.open_memmap(tmp, "w+", np.float32, shape)
        row = 0
        for p in parts:
            mm[row : row + len(p)] = p
            row += len(p)
        mm.flush()
        del mm


def import_features(
    manifest: str | Path,
    folder: str | Path,
    layers: Sequence[str],
    predictions: str | Path,
    features_dir: str | Path,
    record: str | Path,
    topk: int,
    key: str,
    model_name: str = "model",
    class_index: Mapping[str, int] | str | None = None,
    num_classes: int | None = None,
    root: str | Path | None = None,
) -> None:
    """The outputs of `extract` from features extracted elsewhere (`cnnatlas.precomputed`).

    `folder` holds `{layer}.npy` per layer and `logits.npy` or `probs.npy`; `key`
    (`models.<m>.features_from.<ckpt>`) names it in errors; paths.txt is relative to
    `root` (`cnnatlas.precomputed.dataset_root`). Each layer is copied in row
    blocks as float32 in image_id order; `record` gets the sha256 of every file read.
    """
    df = pd.read_parquet(manifest)
    source = open_folder(folder, layers, key)
    order = row_order(source, df["path"].tolist(), key, root)
    k = source.scores.shape[1]
    if num_classes is not None and k != num_classes:
        raise CnnatlasError(
            f"the folder of {key} holds {k} outputs per image but "
            f"models.{model_name}.num_classes is {num_classes}; fix one"
        )
    Path(features_dir).mkdir(parents=True, exist_ok=True)
    for layer in layers:
        src = source.layers[layer]
        with atomic_path(Path(features_dir) / f"{layer}.npy") as tmp:
            mm = np.lib.format.open_memmap(
                tmp, "w+", np.float32, (len(df), src.shape[1])
            )
            copy_rows(src, order, mm)
            mm.flush()
            del mm
    logits = LogitRows(source, order)  # read by the writer a block at a time
    _write_predictions(manifest, df, logits, predictions, topk, class_index, model_name)
    _write_record(record, folder, layers)
    log.info("imported %d images of %s from %s", len(df), key, folder)


def _write_record(
    record: str | Path, folder: str | Path, layers: Sequence[str]
) -> None:
    """The provenance of an imported checkpoint, hashed once here: {"folder": folder,
    "files": {name: sha256}} of the files the import read."""
    files = {f.name: sha256_file(f) for f in folder_files(folder, layers)}
    text = json.dumps({"folder": str(folder), "files": files}, indent=2, sort_keys=True)
    with atomic_path(record) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
