"""Human class names (titles) from a class index, as every display shows them.

An ImageNet-style subset: folders named by WordNet id, a model with more outputs than the
subset has classes, and `imagenet_class_index.json`. Legends show `tench`, hovers
`tench (n01440764)`, the files keep both; without the class index nothing changes.
"""

import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.classes import class_space, read_class_space
from cnnatlas.data import write_manifest
from cnnatlas.evolution_plots import _hover
from cnnatlas.extract import predictions_table
from cnnatlas.interactive import map_payload
from cnnatlas.io import write_parquet
from cnnatlas.plots import load_points, plot_embedding, save_figure
from cnnatlas.projector import metadata_table
from cnnatlas.viewer.atlas import atlas_payload
from pypdf import PdfReader

from tests.synthetic_atlas import atlas_block

INDEX = {
    "0": ["n01440764", "tench"],
    "1": ["n01443537", "goldfish"],
    "2": ["n01484850", "great_white_shark"],
    "3": ["n02012849", "crane"],
}
WNIDS = ["n01440764", "n01443537"]  # the subset's folders
THUMBS = {"prefix": "t/", "size": 8, "columns": 1, "per_sheet": 1, "sheets": 1}


def write_subset(root, class_index):
    """manifest, predictions (image 5 predicts the shark, no class of the subset) and
    a 2-D map of six images; returns their paths."""
    labels = np.array([0, 0, 0, 1, 1, 1])
    man = pd.DataFrame(
        {"image_id": range(6), "path": [f"{WNIDS[k]}/{i}.JPEG" for i, k in
                                        enumerate(labels)],
         "label": labels, "label_name": [WNIDS[k] for k in labels]}
    )  # fmt: skip
    write_manifest(man, root / "manifest.parquet", WNIDS)
    logits = np.full((6, 4), -2.0, dtype=np.float32)
    logits[np.arange(6), [0, 0, 1, 1, 1, 2]] = 3.0  # image 2 wrong, image 5 outside
    space = class_space(class_index, WNIDS, 4, "models.net.class_index")
    pred = predictions_table(man, logits, WNIDS, topk=2, space=space)
    write_parquet(pred, root / "predictions.parquet", meta=space.meta())
    xy = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
    emb = pd.DataFrame({"image_id": range(6), "x": xy[:, 0], "y": xy[:, 1]})
    write_parquet(emb, root / "map.parquet")
    return root / "manifest.parquet", root / "predictions.parquet", root / "map.parquet"


@pytest.fixture
def titled(tmp_path):
    (tmp_path / "imagenet_class_index.json").write_text(json.dumps(INDEX))
    return write_subset(tmp_path, str(tmp_path / "imagenet_class_index.json"))


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_predictions_keep_ids_and_titles(titled):
    p = pd.read_parquet(titled[1])
    assert p["label_name"].tolist() == [WNIDS[k] for k in p["label"]]
    assert p["label_title"].tolist() == ["tench"] * 3 + ["goldfish"] * 3
    assert p["pred_name"].tolist()[4:] == ["n01443537", "n01484850"]
    assert p["pred_title"].tolist()[4:] == ["goldfish", "great_white_shark"]


def test_figure_legends_show_titles_and_hovers_title_and_id(titled, tmp_path):
    _, predictions, embedding = titled
    df, classes = load_points(embedding, predictions)
    assert classes == ["tench", "goldfish", "other outputs"]
    for mode in ("label", "pred"):
        fig = plot_embedding(df, classes, mode, "layer4", width=4.0)
        assert legend_texts(fig)[:2] == ["tench", "goldfish"]
        save_figure(fig, pdf=tmp_path / f"{mode}.pdf", dpi=300)
    text = PdfReader(tmp_path / "pred.pdf").pages[0].extract_text()
    assert "tench" in text and "goldfish" in text and "other outputs" in text
    assert "n01440764" not in text  # the legend is short; the id is in the hover
    info = map_payload(df, classes, "layer4", THUMBS)["info"]
    assert "true: tench (n01440764)\npred: tench (n01440764)\n" in info[0]
    assert "pred: goldfish (n01443537)  (misclassified)" in info[2]
    assert "pred: great_white_shark (n01484850)  (misclassified)" in info[5]
    assert "top-k: great_white_shark 0.9" in info[5]


def test_the_atlas_shows_title_and_id(titled, tmp_path):
    manifest, predictions, embedding = titled
    map_ = {"model": "net", "ckpt": "c", "layer": "l", "method": "pca",
            "perplexity": 0, "seed": 0, "embedding": embedding}  # fmt: skip
    header = atlas_payload(
        tmp_path / "atlas.html", manifest, {"net/c": predictions}, [map_]
    )
    assert atlas_block(header, header["classes"]) == [
        "tench (n01440764)", "goldfish (n01443537)", "other outputs"
    ]  # fmt: skip
    run = header["runs"]["net/c"]
    shown = [run["names"][j] for j in atlas_block(header, run["pred_out"])]
    assert shown[4:] == ["goldfish (n01443537)", "great_white_shark (n01484850)"]


def test_projector_and_evolution_hovers(titled):
    manifest, predictions, _ = titled
    p, man = pd.read_parquet(predictions), pd.read_parquet(manifest)
    meta = metadata_table(p, man)
    assert meta["label"].tolist()[:4] == ["tench"] * 3 + ["goldfish"]
    assert meta["pred"].tolist()[5] == "great_white_shark"
    assert meta["label_id"].tolist()[0] == "n01440764"
    assert meta["pred_id"].tolist()[5] == "n01484850"
    hover = _hover(man, p, read_class_space(predictions))
    assert hover[5] == (
        "image 5<br>label goldfish (n01443537)<br>pred great_white_shark "
        "(n01484850) (0.98)"
    )


def test_without_a_class_index_the_ids_show_as_before(tmp_path):
    # WordNet-id folders and no class_index: no names are invented
    manifest, predictions, embedding = write_subset(tmp_path, None)
    p = pd.read_parquet(predictions)
    assert (p["label_title"] == p["label_name"]).all()
    assert (p["pred_title"] == p["pred_name"]).all()
    assert p["pred_name"].tolist()[5] == "output 2"
    df, classes = load_points(embedding, predictions)
    assert classes == [*WNIDS, "other outputs"]
    assert legend_texts(plot_embedding(df, classes, "label", width=4.0))[:2] == WNIDS
    info = map_payload(df, classes, "layer4", THUMBS)["info"]
    assert "true: n01440764\npred: n01440764\n" in info[0]
    assert list(metadata_table(p, pd.read_parquet(manifest)).columns[:6]) == [
        "label", "pred", "correct", "confidence", "path", "image_id"
    ]  # fmt: skip


def test_gradcam_captions_name_the_class_by_title(
    imagefolder, tmp_path, monkeypatch, one_torch_thread
):
    """The render_saliency adapter passes `space.shown()`: captions say `tench`, the
    true-class maps are those of the same outputs as with the ids."""
    import torch
    from cnnatlas.data import build_manifest
    from cnnatlas.demo import DigitNet
    from cnnatlas.explain import gradcam

    wnids = ["n01440764", "n01443537", "n01484850"]  # circle, square, stripes folders
    (tmp_path / "index.json").write_text(json.dumps(INDEX))
    manifest = build_manifest(
        {"kind": "imagefolder", "path": str(imagefolder)}, tmp_path / "m.pq"
    )
    manifest["label_name"] = [wnids[k] for k in manifest["label"]]
    space = class_space(str(tmp_path / "index.json"), wnids, 4)
    selection = manifest.iloc[[0, 12]]
    torch.manual_seed(0)
    model = DigitNet(num_classes=4, in_channels=3, width=4).eval()
    tf = {"resize": 32, "crop": 32, "mean": [0.5] * 3, "std": [0.25] * 3}
    titles = []
    draw = gradcam.overlay_figure
    monkeypatch.setattr(
        gradcam,
        "overlay_figure",
        lambda image, panels, title: (
            titles.append((title, list(panels))) or draw(image, panels, title)
        ),
    )

    def per_image(s, name):
        out = tmp_path / name
        gradcam.render_saliency(
            manifest.assign(correct=False), selection, model, tf, s, out / "o",
            out / "p.pq", out / "s.pq", out / "f.png", methods=["gradcam"],
            layer="features", fraction=0.2, blur=4.0, seed=0, batch_size=8,
            device="cpu",
        )  # fmt: skip
        return pd.read_parquet(out / "p.pq")

    shown = per_image(space.shown(), "shown")
    title, panels = titles[0]
    assert title.startswith("image 0: true tench, predicted "), title
    assert "gradcam true=tench" in panels and "n01440764" not in title
    assert titles[1][0].startswith("image 12: true goldfish, predicted ")
    pd.testing.assert_frame_equal(shown, per_image(space, "ids"))
