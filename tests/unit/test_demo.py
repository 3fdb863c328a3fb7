import hashlib

import numpy as np
import pytest
from cnnatlas.data import manifest_from_imagefolder
from cnnatlas.demo import demo_transform, train, write_digits
from PIL import Image


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits(root, size=32, test_size=0.2, seed=0)
    return root


def test_digits_are_a_stratified_split_of_all_1797_images(digits):
    train_m = manifest_from_imagefolder(digits / "train")
    test_m = manifest_from_imagefolder(digits / "test")
    assert len(train_m) + len(test_m) == 1797 and len(test_m) == 360
    names = {p.rsplit("/", 1)[1] for p in train_m["path"]}
    assert names.isdisjoint(p.rsplit("/", 1)[1] for p in test_m["path"])
    share = test_m["label"].value_counts() / train_m["label"].value_counts()
    assert share.between(0.2, 0.3).all()  # every class split ~ 20/80
    img = Image.open(test_m["path"][0])
    assert img.size == (32, 32) and img.mode == "L"
    assert np.asarray(img).max() > 128  # the digit's strokes, not a blank tile


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_the_same_checkpoint_bytes(digits, tmp_path):
    runs = []
    for run in ("a", "b", "c"):
        ckpts = [tmp_path / run / "s2.pt", tmp_path / run / "s4.pt"]
        train(
            digits / "train",
            ckpts,
            steps=[2, 4],
            transform=demo_transform(32),
            batch_size=32,
            lr=0.05,
            seed=1 if run == "c" else 0,
        )
        runs.append([_sha(p) for p in ckpts])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]  # a later step is a different checkpoint
    assert runs[2] != runs[0]  # the seed matters
