import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.data import (
    build_manifest,
    load_image,
    manifest_from_imagefolder,
    manifest_from_table,
)
from cnnatlas.errors import DatasetError
from cnnatlas.io import read_parquet_meta
from PIL import Image


def test_imagefolder_manifest_is_sorted_and_labelled(imagefolder):
    m = manifest_from_imagefolder(imagefolder)
    assert len(m) == 30
    assert m["image_id"].tolist() == list(range(30))
    assert m["path"].tolist() == sorted(m["path"])
    assert (m.groupby("label_name")["label"].nunique() == 1).all()
    assert dict(zip(m["label_name"], m["label"], strict=True)) == {
        "circle": 0,
        "square": 1,
        "stripes": 2,
    }


def test_explicit_class_order_sets_labels(imagefolder):
    m = manifest_from_imagefolder(imagefolder, classes=["stripes", "square", "circle"])
    assert dict(zip(m["label_name"], m["label"], strict=True)) == {
        "stripes": 0,
        "square": 1,
        "circle": 2,
    }


def test_csv_manifest_keeps_metadata_and_resolves_relative_paths(imagefolder, tmp_path):
    rows = manifest_from_imagefolder(imagefolder)
    table = pd.DataFrame(
        {
            "file": [str(p) for p in rows["path"]][::-1],
            "cls": list(rows["label_name"])[::-1],
            "domain": ["source", "target"] * 15,
        }
    )
    csv = tmp_path / "m.csv"
    table.to_csv(csv, index=False)
    m = manifest_from_table(csv, path_column="file", label_column="cls")
    assert m.columns.tolist() == ["image_id", "path", "label", "label_name", "domain"]
    assert m["path"].tolist() == sorted(rows["path"])
    # row order of the CSV does not change image_id, and metadata follows its row
    back = table.set_index("file").loc[m["path"], "domain"].tolist()
    assert m["domain"].tolist() == back

    rel = pd.DataFrame({"path": ["a.png"], "label": ["x"]})
    rel.to_csv(tmp_path / "rel.csv", index=False)
    assert manifest_from_table(tmp_path / "rel.csv", "path", "label")["path"][0] == str(
        tmp_path / "a.png"
    )


def test_integer_labels_and_parquet_manifest(imagefolder, tmp_path):
    rows = manifest_from_imagefolder(imagefolder)
    pq = tmp_path / "m.parquet"
    rows[["path", "label"]].to_parquet(pq)
    m = manifest_from_table(pq, "path", "label", ["c", "s", "t"])
    assert m["label_name"].tolist() == [["c", "s", "t"][i] for i in m["label"]]
    with pytest.raises(DatasetError, match=r"outside 0\.\.1"):
        manifest_from_table(pq, "path", "label", ["c", "s"])


def test_write_manifest_records_class_list(imagefolder, tmp_path):
    out = tmp_path / "manifest.parquet"
    build_manifest({"kind": "imagefolder", "path": str(imagefolder)}, out)
    assert json.loads(read_parquet_meta(out)["cnnatlas.classes"]) == [
        "circle",
        "square",
        "stripes",
    ]
    assert len(pd.read_parquet(out)) == 30


@pytest.mark.parametrize(
    "mode,shape",
    [
        ("L", (8, 8)),
        ("RGBA", (8, 8, 4)),
        ("P", (8, 8)),
        ("CMYK", (8, 8, 4)),
        ("I;16", (8, 8)),
    ],
)
def test_load_image_converts_every_mode(tmp_path, mode, shape):
    arr = np.full(shape, 200, dtype=np.uint16 if mode == "I;16" else np.uint8)
    if mode == "I;16":
        arr[:] = 65535
        img = Image.fromarray(arr)  # uint16 -> mode I;16
    else:
        img = Image.fromarray(arr.astype(np.uint8)).convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"img{suffix}"
    img.save(path)
    rgb = load_image(path, channels=3)
    gray = load_image(path, channels=1)
    assert rgb.mode == "RGB" and gray.mode == "L" and rgb.size == (8, 8)
    if mode == "I;16":
        assert (
            np.asarray(gray).min() == 255
        )  # full 16-bit scale maps to white, not clipped noise


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    assert (np.asarray(load_image(tmp_path / "t.png", 3)) == 255).all()


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="broken.png"):
        load_image(bad, 3)
