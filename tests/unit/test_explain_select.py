import numpy as np
import pandas as pd
import pytest
from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.select import read_classes, select_images, write_selection
from cnnatlas.io import write_parquet

# the per-class counts (unused when ids are listed)
PER_CLASS = {"correct_per_class": 1, "wrong_per_class": 1, "seed": 0}


def _predictions(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    pred = np.where(rng.uniform(size=n) < 0.7, label, (label + 1) % 3)
    names = np.array(["a", "b", "c"])
    return pd.DataFrame(
        {
            "image_id": np.arange(n),
            "path": [f"{i}.png" for i in range(n)],
            "label": label,
            "label_name": names[label],
            "pred": pred,
            "pred_name": names[pred],
            "confidence": rng.uniform(0.3, 1, n).astype(np.float32),
            "correct": pred == label,
        }
    )


def test_auto_selection_per_class_and_outcome():
    p = _predictions()
    sel = select_images(p, correct_per_class=2, wrong_per_class=1, seed=3)
    assert sel["image_id"].is_monotonic_increasing
    for _, g in sel.groupby("label"):
        assert (g["reason"] == "correct").sum() == 2
        assert (g["reason"] == "misclassified").sum() == 1
        assert (g["correct"] == (g["reason"] == "correct")).all()
    again = select_images(p, correct_per_class=2, wrong_per_class=1, seed=3)
    pd.testing.assert_frame_equal(sel, again)
    other = select_images(p, correct_per_class=2, wrong_per_class=1, seed=4)
    assert other["image_id"].tolist() != sel["image_id"].tolist()


def test_fewer_misclassified_than_asked_takes_what_there_is():
    p = _predictions()
    p["pred"], p["correct"] = p["label"], True
    sel = select_images(p, correct_per_class=1, wrong_per_class=5, seed=0)
    assert len(sel) == 3 and (sel["reason"] == "correct").all()


def test_listed_ids(tmp_path):
    p = _predictions()
    sel = select_images(p, [7, 3], **PER_CLASS)
    assert sel["image_id"].tolist() == [3, 7] and (sel["reason"] == "listed").all()
    with pytest.raises(CnnatlasError, match="explain.images.ids"):
        select_images(p, [3, 600], **PER_CLASS)
    write_parquet(
        p, tmp_path / "p.parquet", meta={"cnnatlas.classes": '["a", "b", "c"]'}
    )
    write_selection(tmp_path / "p.parquet", tmp_path / "s.parquet", [3], **PER_CLASS)
    assert read_classes(tmp_path / "s.parquet") == ["a", "b", "c"]
    with pytest.raises(CnnatlasError, match="no image selected"):
        write_selection(
            tmp_path / "p.parquet",
            tmp_path / "x.parquet",
            correct_per_class=0,
            wrong_per_class=0,
            seed=0,
        )


def test_bound_images_samples_on_the_cpu_only_and_says_so(caplog):
    from cnnatlas.explain.select import bound_images

    p = _predictions(60)
    caplog.set_level("INFO")
    cpu, note = bound_images(p, 9, 4, on_cpu=True, key="explain.x.max_images")
    assert len(cpu) == 9 and sorted(cpu["label"].value_counts()) == [3, 3, 3]
    assert list(cpu["image_id"]) == sorted(cpu["image_id"])
    assert note == {
        "cnnatlas.images": "9 of 60 images (class-stratified sample, seed 4: "
        "explain.x.max_images on the CPU)"
    }
    # a sample is a warning (the landing page lists it); every image is not
    levels = {r.getMessage().split(" (")[0]: r.levelname for r in caplog.records}
    assert levels == {"running over 9 of 60 images": "WARNING"}
    gpu, note = bound_images(p, 9, 4, on_cpu=False, key="explain.x.max_images")
    assert len(gpu) == 60 and note == {"cnnatlas.images": "60 of 60 images"}
    assert caplog.records[-1].levelname == "INFO"
    same, _ = bound_images(p, 9, 4, on_cpu=True, key="k")
    pd.testing.assert_frame_equal(same, cpu)
