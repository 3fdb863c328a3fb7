"""Writing outputs so that a final path never holds a partial file.

Every writer goes through `atomic_path`: the data is written to a temporary file in the
same folder and renamed over the final path only once it is complete, so a run killed
at any moment leaves either the old file, or none, never half of a new one.
"""

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "atomic_path",
    "write_parquet",
    "read_parquet_meta",
    "PER_CLASS",
    "read_predictions",
    "sync_page",
]

# predictions.parquet's columns of one value per class: [N, C], 1.28 M arrays of 1,000
# floats for ImageNet, which a reader materialises only when it asks for them by name
PER_CLASS = ("probs",)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(
    df: pd.DataFrame, path: str | Path, meta: dict[str, str] | None = None
) -> None:
    """Write `df` to Parquet atomically, byte-identical for identical input.

    `meta` is stored in the file's key-value metadata (strings only).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    extra = {k.encode(): v.encode() for k, v in (meta or {}).items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_parquet_meta(path: str | Path) -> dict[str, str]:
    """The key-value metadata of a Parquet file written by `write_parquet` (pandas' own key left out)."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k != b"pandas"}


def read_predictions(
    path: str | Path, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The columns of a predictions Parquet that the file has among `columns` (those a
    newer table added may be absent: callers test for them), or without `columns`
    every column but the per-class ones (`PER_CLASS`)."""
    names = pq.read_schema(path).names
    wanted = [c for c in names if c not in PER_CLASS] if columns is None else columns
    return pd.read_parquet(path, columns=[c for c in wanted if c in names])


def sync_page(page: Path, text: str, command: str, check: bool) -> bool:
    """Write a generated page when it differs from `text` (printing `updated: ...`), or
    with `check` only report it as stale (naming `command`, which regenerates it).
    Returns whether the page was stale."""
    current = page.read_text(encoding="utf-8") if page.exists() else None
    if current == text:
        return False
    if check:
        print(f"stale: {page} (run {command})")
    else:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text, encoding="utf-8")
        print(f"updated: {page}")
    return True
