"""Every case of the bad-input corpus has its outcome: decoded, converted, or rejected with a reason."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from cnnatlas.data import (
    apply_bad_image_policy,
    build_manifest,
    check_image,
    find_bad_images,
    load_image,
    manifest_from_imagefolder,
    manifest_from_table,
)
from cnnatlas.errors import DatasetError
from cnnatlas.io import read_parquet_meta
from PIL import Image

from tests.badcorpus import (
    AWKWARD_CLASSES,
    BAD,
    IMAGES,
    write_imagefolder,
    write_images,
    write_manifests,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_corpus_image_has_its_outcome(corpus, name):
    expected = IMAGES[name][1]
    reason = check_image(corpus[name])
    if expected in ("ok", "converted"):
        assert reason is None
        rgb, gray = load_image(corpus[name], 3), load_image(corpus[name], 1)
        assert (rgb.mode, gray.mode, rgb.size) == ("RGB", "L", (24, 24))
    else:
        assert reason is not None and re.search(expected, reason), reason
        with pytest.raises(DatasetError, match=re.escape(str(corpus[name]))):
            load_image(corpus[name], 3)


def test_conversions_keep_the_picture(corpus):
    ref = np.asarray(load_image(corpus["ünïcødé name & <b>.png"], 3)).astype(int)
    assert ref.std() > 20
    # CMYK: JPEG round trip through CMYK stays close to the RGB original it came from
    from tests.badcorpus import _rgb

    cmyk = np.asarray(load_image(corpus["cmyk.jpg"], 3)).astype(int)
    assert np.abs(cmyk - _rgb().astype(int)).mean() < 12
    # 16-bit: the full 0..65535 range maps onto 0..255 (not clipped to white)
    g16 = np.asarray(load_image(corpus["sixteen_bit.png"], 1)).astype(int)
    assert g16.min() <= 2 and g16.max() >= 253 and len(np.unique(g16)) > 100
    # RGBA at alpha 128 is composited on white: every pixel brighter than the original
    rgba = np.asarray(load_image(corpus["rgba.png"], 3)).astype(int)
    assert (rgba >= _rgb().astype(int) - 1).all() and rgba.mean() > _rgb().mean() + 50
    # animated GIF: the first frame
    with Image.open(corpus["animated.gif"]) as im:
        assert im.n_frames == 3
    gif = np.asarray(load_image(corpus["animated.gif"], 3)).astype(int)
    assert np.abs(gif - _rgb(0).astype(int)).mean() < np.abs(gif - _rgb(1)).mean()


def test_missing_file_is_a_bad_image(tmp_path):
    assert check_image(tmp_path / "gone.png") == "file does not exist"


def test_find_bad_images_is_the_same_with_threads(corpus):
    paths = [str(corpus[n]) for n in sorted(IMAGES)] * 3
    one, two = find_bad_images(paths, 1), find_bad_images(paths, 2)
    assert one == two
    assert sorted({paths[i].rsplit("/", 1)[1] for i in one}) == BAD


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagefolder(tmp_path_factory.mktemp("folder") / "data")


def test_fail_lists_every_bad_file_with_its_reason(folder, tmp_path):
    out = tmp_path / "manifest.parquet"
    with pytest.raises(DatasetError) as err:
        build_manifest({"kind": "imagefolder", "path": str(folder)}, out)
    msg = str(err.value)
    assert msg.startswith(
        f"{len(BAD)} of {len(IMAGES) + 12} images are missing or cannot be decoded"
    )
    for name in BAD:
        line = next(ln for ln in msg.splitlines() if name in ln)
        assert re.search(IMAGES[name][1], line), line
    assert "dataset.on_bad_image: skip" in msg
    assert not out.exists()


def test_skip_drops_bad_images_and_numbers_the_rest(folder, tmp_path):
    out, bad_out = tmp_path / "manifest.parquet", tmp_path / "bad_images.parquet"
    dataset = {"kind": "imagefolder", "path": str(folder), "on_bad_image": "skip"}
    m = build_manifest(dataset, out, bad_images=bad_out, threads=2)
    assert pd.read_parquet(out).equals(m)
    full = manifest_from_imagefolder(folder)
    assert len(m) == len(full) - len(BAD)
    assert m["image_id"].tolist() == list(range(len(m)))
    assert m["path"].tolist() == sorted(m["path"])
    assert not any(p.endswith(tuple(BAD)) for p in m["path"])
    bad = pd.read_parquet(bad_out)
    assert bad.columns.tolist() == ["path", "label", "label_name", "reason"]
    assert sorted(p.rsplit("/", 1)[1] for p in bad["path"]) == BAD
    assert set(bad["label_name"]) == {"mixed"}
    for path, reason in zip(bad["path"], bad["reason"], strict=True):
        assert re.search(IMAGES[path.rsplit("/", 1)[1]][1], reason)
    # every class folder stays a class, even the empty ones, in sorted folder order
    classes = json.loads(read_parquet_meta(out)["cnnatlas.classes"])
    assert classes == sorted([*AWKWARD_CLASSES, "empty", "mixed", "no_images"])
    assert set(m["label_name"]) == {*AWKWARD_CLASSES, "mixed"}
    assert (m["label"] == [classes.index(n) for n in m["label_name"]]).all()


def test_skip_with_no_bad_images_writes_an_empty_table(imagefolder, tmp_path):
    bad_out = tmp_path / "bad.parquet"
    build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder), "on_bad_image": "skip"},
        tmp_path / "m.parquet",
        bad_images=bad_out,
    )
    bad = pd.read_parquet(bad_out)
    assert len(bad) == 0 and bad.columns.tolist()[-1] == "reason"


def test_skip_refuses_to_drop_every_image(tmp_path):
    df = pd.DataFrame(
        {"image_id": [0], "path": ["x.png"], "label": [0], "label_name": ["a"]}
    )
    with pytest.raises(DatasetError, match="none of the 1 images"):
        apply_bad_image_policy(df, {0: "file does not exist"}, "skip")


def test_awkward_class_names_round_trip_through_the_manifest(folder, tmp_path):
    out = tmp_path / "m.parquet"
    build_manifest(
        {"kind": "imagefolder", "path": str(folder), "on_bad_image": "skip"}, out
    )
    m = pd.read_parquet(out)
    for name in AWKWARD_CLASSES:
        paths = m.loc[m["label_name"] == name, "path"]
        assert len(paths) == 4, name
        assert all(f"/{name}/img " in p and p.endswith(" <&>.png") for p in paths)
    assert "tab\tand\nnewline" in json.loads(read_parquet_meta(out)["cnnatlas.classes"])


def test_folder_warnings_name_the_ignored_files(folder, caplog):
    manifest_from_imagefolder(folder)
    text = caplog.text
    assert "class 'empty' has no images" in text
    assert "class 'no_images': 2 files without an image suffix" in text


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    return write_manifests(tmp_path_factory.mktemp("manifests"))


@pytest.mark.parametrize(
    "case,classes,message",
    [
        (
            "duplicate_path",
            None,
            r"duplicate_path.csv: 1 paths are listed more than once: \['.*/a\.png'\]",
        ),
        (
            "label_outside_classes",
            ["x", "y"],
            r"labels \['zebra'\] are not in dataset.classes \['x', 'y'\]",
        ),
        ("integer_label_outside", ["x", "y"], r"labels \[7\] are outside 0\.\.1"),
        ("empty_rows", None, "the manifest has no rows"),
        (
            "missing_label",
            None,
            r"1 rows have no label \(column 'label'\), e.g. data rows \[2\]",
        ),
        ("no_label_column", None, r"no column 'label' \(dataset.label_column\)"),
        ("zero_bytes", None, "is not a readable CSV or Parquet manifest"),
    ],
)
def test_broken_manifests_name_the_file_and_the_problem(
    manifests, case, classes, message
):
    with pytest.raises(DatasetError, match=message) as err:
        manifest_from_table(manifests[case], "path", "label", classes)
    assert str(manifests[case]) in str(err.value)


def test_missing_manifest_paths_are_bad_images(manifests, tmp_path):
    dataset = {"kind": "manifest", "path": str(manifests["missing_path"])}
    with pytest.raises(DatasetError, match=r"gone\.png: file does not exist"):
        build_manifest(dataset, tmp_path / "m.parquet")
    dataset["on_bad_image"] = "skip"
    m = build_manifest(dataset, tmp_path / "m.parquet", tmp_path / "bad.parquet")
    assert m["path"].str.endswith("a.png").tolist() == [True]
    bad = pd.read_parquet(tmp_path / "bad.parquet")
    assert bad[["label_name", "reason"]].values.tolist() == [
        ["y", "file does not exist"]
    ]
    # the class list still holds the label of the skipped image
    assert json.loads(
        read_parquet_meta(tmp_path / "m.parquet")["cnnatlas.classes"]
    ) == [
        "x",
        "y",
    ]


def test_image_between_the_bomb_limit_and_twice_it_is_decoded_and_named(
    corpus, monkeypatch, caplog
):
    # 24 x 24 = 576 px: above a limit of 400, below twice it -> PIL only warns
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)
    path = corpus["gray.png"]
    with pytest.warns(Image.DecompressionBombWarning):
        assert check_image(path) is None
    assert (
        f"image {str(path)!r} has 576 pixels, above PIL's decompression-bomb"
        in caplog.text
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # twice the limit is exceeded
    assert check_image(path).startswith(
        "DecompressionBombError: Image size (576 pixels)"
    )
