"""predictions.parquet written a block of rows at a time: the same table as the writer it
replaced (kept in benchmarks/predictions_memory.py), and read a few columns at a time."""

import hashlib
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cnnatlas import extract
from cnnatlas.classes import class_space
from cnnatlas.io import read_predictions
from cnnatlas.precomputed import LogitRows, open_folder
from cnnatlas.projector import METADATA_COLUMNS, metadata_table

from benchmarks.predictions_memory import old_predictions_table, old_write

KEY = "models.m.class_index"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _case(n: int = 40, k: int = 12, seed: int = 0):
    """A manifest of n images in 3 classes (a string metadata column that is null in
    its first rows, a float one) and logits [n, k] float32."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    manifest = pd.DataFrame(
        {
            "image_id": range(n),
            "path": [f"c{lab}/{i}.png" for i, lab in enumerate(labels)],
            "label": labels,
            "label_name": [f"c{lab}" for lab in labels],
            "note": [None] * (n // 2) + [f"n{i}" for i in range(n - n // 2)],
            "weight": rng.normal(size=n),
        }
    )
    logits = rng.normal(scale=2, size=(n, k)).astype(np.float32)
    return manifest, logits, ["c0", "c1", "c2"]


@pytest.fixture
def titled(tmp_path):
    """A class space that maps the 3 classes into 12 outputs, titled by a file."""
    index = {str(i): [f"n{i:08d}", f"title {i}"] for i in range(12)}
    (tmp_path / "index.json").write_text(json.dumps(index))
    names = [f"n{i:08d}" for i in (7, 2, 9)]
    return names, class_space(str(tmp_path / "index.json"), names, 12, KEY)


@pytest.mark.parametrize("mapped", [False, True])
def test_blocks_write_the_table_the_old_writer_wrote(
    tmp_path, monkeypatch, titled, mapped
):
    manifest, logits, classes = _case()
    space = None
    if mapped:
        classes, space = titled
        manifest["label_name"] = [classes[lab] for lab in manifest["label"]]
    old_write(manifest, logits, classes, 3, tmp_path / "old.parquet", space)
    monkeypatch.setattr(extract, "PREDICTION_ROWS", 7)  # 6 blocks, wider rows (12)
    new = tmp_path / "new.parquet"
    extract.write_predictions(manifest, logits, classes, 3, new, space)
    assert pq.ParquetFile(new).metadata.num_row_groups == 6
    a, b = pq.read_table(tmp_path / "old.parquet"), pq.read_table(new)
    assert a.schema.equals(b.schema, check_metadata=True)
    assert a.equals(b)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "old.parquet"),
        pd.read_parquet(new),
        check_exact=True,
    )


def test_one_block_writes_the_old_bytes_and_rewrites_the_same(tmp_path, monkeypatch):
    manifest, logits, classes = _case(n=300, k=20, seed=1)
    old_write(manifest, logits, classes, 5, tmp_path / "old.parquet")
    extract.write_predictions(manifest, logits, classes, 5, tmp_path / "new.parquet")
    assert _sha(tmp_path / "new.parquet") == _sha(tmp_path / "old.parquet")
    monkeypatch.setattr(extract, "PREDICTION_ROWS", 64)
    for name in ("a", "b"):
        extract.write_predictions(manifest, logits, classes, 5, tmp_path / name)
    assert _sha(tmp_path / "a") == _sha(tmp_path / "b")


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_blocks_take_any_float_logits(tmp_path, monkeypatch, dtype):
    manifest, logits, classes = _case(k=3)
    logits = logits.astype(dtype)
    old_write(manifest, logits, classes, 2, tmp_path / "old.parquet")
    monkeypatch.setattr(extract, "PREDICTION_ROWS", 9)
    extract.write_predictions(manifest, logits, classes, 2, tmp_path / "new.parquet")
    old, new = pq.read_table(tmp_path / "old.parquet"), pq.read_table(tmp_path / "new.parquet")  # fmt: skip
    assert old.equals(new)


def test_logits_read_a_block_at_a_time_give_the_same_file(tmp_path, monkeypatch):
    manifest, logits, classes = _case()
    order = np.random.default_rng(3).permutation(len(manifest))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "logits.npy", logits[np.argsort(order)])
    rows = LogitRows(open_folder(tmp_path / "f", [], "key"), order)
    monkeypatch.setattr(extract, "PREDICTION_ROWS", 16)
    extract.write_predictions(manifest, logits, classes, 3, tmp_path / "memory")
    extract.write_predictions(manifest, rows, classes, 3, tmp_path / "lazy")
    assert _sha(tmp_path / "memory") == _sha(tmp_path / "lazy")


def test_predictions_table_is_the_old_table():
    manifest, logits, classes = _case(k=5)
    new = extract.predictions_table(manifest, logits, classes, 3)
    old = old_predictions_table(manifest, logits, classes, 3)
    assert list(new.columns) == list(old.columns)
    for col in new.columns:
        if col in ("topk_ids", "topk_probs", "probs"):
            np.testing.assert_array_equal(np.stack(new[col]), np.stack(old[col]))
            assert np.stack(new[col]).dtype == np.stack(old[col]).dtype
        else:
            assert new[col].tolist() == old[col].tolist(), col


def test_readers_leave_the_per_class_probs_behind(tmp_path):
    manifest, logits, classes = _case()
    path = tmp_path / "p.parquet"
    extract.write_predictions(manifest, logits, classes, 3, path)
    everything = pd.read_parquet(path)
    table = read_predictions(path)
    assert list(table.columns) == [c for c in everything.columns if c != "probs"]
    pd.testing.assert_frame_equal(table, everything.drop(columns="probs"))
    # a column the file lacks (an older table's titles) is left out, not an error
    some = read_predictions(path, ["image_id", "correct", "no_such_column"])
    assert list(some.columns) == ["image_id", "correct"]
    pd.testing.assert_frame_equal(
        metadata_table(read_predictions(path, METADATA_COLUMNS), manifest),
        metadata_table(everything, manifest),
    )
