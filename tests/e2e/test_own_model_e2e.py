"""A researcher's own data and model, through the real snakemake: every route the docs'
"Your data and models" page documents, with the example files under examples/ (which that
page includes) run verbatim.

A test writes an example unchanged as the project's config.yaml (or mynets.py), adds
only top-level sections the example does not set (smaller maps, stages switched off
where the route does not need them), creates the files the example names, and runs
snakemake in that project folder.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from cnnatlas.explain.inputs import load_inputs
from cnnatlas.io import read_parquet_meta
from PIL import Image
from pypdf import PdfReader

from tests.conftest import REPO, SNAKEMAKE, draw
from tests.synthetic_atlas import atlas_block, atlas_header

pytestmark = pytest.mark.e2e

KINDS = ("circle", "square", "stripes")
SMALL = {
    "extract": {"batch_size": 8, "topk": 3},
    "maps": {"methods": ["pca"], "dims": [2], "metrics": {"k": 2, "folds": 2}},
    "explain": {"enabled": False},
    "projector": {"enabled": False},
    "evolution": {"enabled": False},
}


EXAMPLES = REPO / "examples"
# the example file of each route
FILES = {
    "more-outputs": "more-outputs.yaml",
    "class-index": "imagenet-subset.yaml",
    "class-index-inline": "class-index-inline.yaml",
    "own-module": "manifest-own-module.yaml",
    "mynets.py": "mynets.py",
    "timm": "timm.yaml",
}


def readme_block(name: str) -> str:
    """The example file of route `name` (examples/), verbatim."""
    return (EXAMPLES / FILES[name]).read_text(encoding="utf-8")


def write_project(root: Path, name: str, extra: dict) -> dict:
    """root/config.yaml: example `name` verbatim, then `extra`'s top-level sections."""
    snippet = readme_block(name)
    config = yaml.safe_load(snippet)
    assert not set(config) & set(extra), "the test must not override the snippet"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(snippet + yaml.safe_dump(extra), encoding="utf-8")
    return config


def write_images(folder: Path, classes, per_class: int = 2, size: int = 24) -> dict:
    """folder/<class>/img_XX.png; class k draws shape KINDS[k % 3]. {class: kind}."""
    rng = np.random.default_rng(0)
    kinds = {}
    for k, name in enumerate(classes):
        kinds[name] = KINDS[k % len(KINDS)]
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.fromarray(draw(kinds[name], size, rng))
            image.save(folder / name / f"img_{i:02d}.png")
    return kinds


def centroid_head(model, folder: Path, kinds: dict, transform: dict, wanted: dict):
    """Set model.fc so that an image of shape `kind` predicts output `wanted[kind]`.

    A random-init network's features still tell the three shapes apart; a
    nearest-centroid head on them puts the predictions on chosen outputs, inside
    and outside the dataset's classes.
    """
    paths = [p for name in kinds for p in sorted((folder / name).iterdir())]
    shapes = [kinds[p.parent.name] for p in paths]
    fc, model.fc = model.fc, torch.nn.Identity()
    with torch.no_grad():
        feats = model.eval()(load_inputs([str(p) for p in paths], transform))
    model.fc = fc
    f = feats.double()
    mu = f.mean(0)
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        for kind, output in wanted.items():
            c = f[[s == kind for s in shapes]].mean(0) - mu
            scale = 50.0 / float(c @ c)
            fc.weight[output] = (scale * c).float()
            fc.bias[output] = float(-scale * (c @ mu))
    return model


def snakemake(project: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    """`snakemake -s <cnnatlas>/Snakefile` run from the project folder, as the docs say."""
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--cores", "2", *args]
    proc = subprocess.run(
        cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---- more outputs than the dataset has classes, every stage on ---------------------

MORE_OUTPUTS = {
    **SMALL,
    "explain": {
        "checkpoints": ["final"],
        "images": {"correct_per_class": 1, "misclassified_per_class": 1},
        "feature_maps": {"per_row": 4},
        "filters": {"channels": 2, "steps": 4, "topk": 2},
        "saliency": {"batch_size": 8},
    },
    "projector": {"thumbnail": 16},
    "evolution": {"layers": ["layer4"], "methods": ["pca"], "frames": 1, "fps": 2},
    "paper": {
        "figures": {
            "grid": {"kind": "layer_grid", "model": "letters", "method": "pca"},
            "cam": {"kind": "saliency", "model": "letters", "image_ids": [0, 2, 4]},
        }
    },
}
# final: circles -> a (output 0), squares -> output 17, stripes -> f (output 5);
# early: circles -> d (3), squares -> b (1), stripes -> output 20
HEADS = {
    "final": {"circle": 0, "square": 17, "stripes": 5},
    "early": {"circle": 3, "square": 1, "stripes": 20},
}


@pytest.fixture(scope="module")
def more_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("letters")
    config = write_project(root, "more-outputs", MORE_OUTPUTS)
    spec = config["models"]["letters"]
    data = root / config["dataset"]["path"]
    kinds = write_images(data, "abcdef")
    for ckpt, path in spec["checkpoints"].items():
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=spec["num_classes"])
        centroid_head(model, data, kinds, spec["transform"], HEADS[ckpt])
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), root / path)
    snakemake(root)
    snakemake(root, "paper")
    return root / "results", kinds


def test_predictions_outside_the_dataset_classes_are_named_and_wrong(more_outputs):
    res, _ = more_outputs
    for ckpt, head in HEADS.items():
        p = pd.read_parquet(res / f"letters/{ckpt}/predictions.parquet")
        probs = np.stack(p["probs"])
        assert probs.shape == (12, 26)
        assert (p["pred"] == probs.argmax(1)).all()
        assert set(p["pred"]) <= set(head.values()) and (p["pred"] >= 6).any()
        names = [("abcdef"[k] if k < 6 else f"output {k}") for k in p["pred"]]
        assert p["pred_name"].tolist() == names
        assert (p["correct"] == (p["pred"] == p["label"])).all()
        meta = read_parquet_meta(res / f"letters/{ckpt}/predictions.parquet")
        assert json.loads(meta["cnnatlas.class_index"]) == [0, 1, 2, 3, 4, 5]
        assert json.loads(meta["cnnatlas.output_names"])[17] == "output 17"
    final = pd.read_parquet(res / "letters/final/predictions.parquet")
    assert final["correct"].any() and not final["correct"].all()


def test_every_stage_ran_with_outside_predictions(more_outputs):
    res, _ = more_outputs
    run = res / "letters/final"
    p = pd.read_parquet(run / "predictions.parquet")
    outside = sorted(p.loc[p["pred"] >= 6, "pred_name"].unique())
    assert outside == ["output 17"]
    gradcam = sorted((run / "explain/saliency").glob("*.png"))
    assert len(gradcam) >= 2 and (run / "explain/saliency/overview.png") in gradcam
    faith = pd.read_parquet(run / "explain/saliency_faithfulness.parquet")
    assert set(faith["pred"]) == set(p["pred"])
    assert (run / "explain/feature_maps").is_dir() and (
        run / "explain/filters"
    ).is_dir()
    header = atlas_header((res / "atlas.html").read_text(encoding="utf-8"))
    assert atlas_block(header, header["classes"])[-1] == "other outputs"
    r = header["runs"]["letters/final"]
    shown = [r["names"][j] for j in atlas_block(header, r["pred_out"])]
    assert shown == p.sort_values("image_id")["pred_name"].tolist()
    assert "output 17" in shown
    assert (run / "figures/layer4/pca-2d-p0-s0.label.png").stat().st_size > 1000
    tsv = (run / "projector/metadata.tsv").read_text(encoding="utf-8").splitlines()
    assert sum("\toutput 17\tfalse\t" in line for line in tsv) == len(
        p[p["pred"] == 17]
    )
    slider = (res / "letters/evolution/layer4/pca/slider.html").read_text()
    early = pd.read_parquet(res / "letters/early/predictions.parquet")
    for name in set(early["pred_name"]) | set(p["pred_name"]):
        assert f"pred {name} (" in slider
    for name in ("grid", "cam"):
        assert (res / f"paper/{name}.pdf").stat().st_size > 1000


# ---- a class index that is not the identity ----------------------------------------

WNIDS = {"n01440764": 0, "n02123045": 281, "n07747607": 950}  # tench, tabby, orange


def imagenet_index() -> dict:
    """An ImageNet-format class index, {"0": [wnid, name], ...}; three real entries."""
    index = {str(i): [f"n9{i:07d}", f"class {i}"] for i in range(1000)}
    names = {"n01440764": "tench", "n02123045": "tabby", "n07747607": "orange"}
    for wnid, i in WNIDS.items():
        index[str(i)] = [wnid, names[wnid]]
    return index


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    # the label and pred figures and the 2-D map's own page, to read their class names
    figures = {"colour_by": ["label", "pred"], "html": {"dims": [2]}}
    config = write_project(root, "class-index", {**SMALL, "figures": figures})
    spec = config["models"]["resnet18"]
    (root / spec["class_index"]).write_text(json.dumps(imagenet_index()))
    data = root / config["dataset"]["path"]
    kinds = write_images(data, sorted(WNIDS), per_class=3)
    # circles (class 0, tench) and squares (class 1, tabby) -> tabby's output 281,
    # stripes (class 2, orange) -> 950, orange's output
    head = {"circle": 281, "square": 281, "stripes": 950}
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=spec["num_classes"])
    centroid_head(model, data, kinds, spec["transform"], head)
    ckpt = root / spec["checkpoints"]["imagenet"]
    ckpt.parent.mkdir(parents=True)
    torch.save(model.state_dict(), ckpt)
    snakemake(root)
    return root / "results/resnet18/imagenet/predictions.parquet"


def test_correct_compares_with_the_mapped_output(mapped):
    p = pd.read_parquet(mapped)
    probs = np.stack(p["probs"]).astype(np.float64)
    target = np.array([WNIDS[w] for w in p["label_name"]])  # by hand, from the index
    pred = probs.argmax(1)
    assert (p["pred"] == pred).all() and set(pred) <= {281, 950}
    np.testing.assert_array_equal(p["correct"], pred == target)
    assert p["correct"].any() and not p["correct"].all()
    # the labels themselves (0, 1, 2) would make every prediction wrong
    assert not (p["pred"] == p["label"]).any()
    np.testing.assert_array_equal(
        p["in_topk"], [t in ids for t, ids in zip(target, p["topk_ids"], strict=True)]
    )
    loss = -np.log(probs[np.arange(len(p)), target])
    np.testing.assert_allclose(p["loss"], loss, rtol=1e-4, atol=1e-5)
    assert set(p["pred_name"]) <= {"n02123045", "n07747607"}
    meta = read_parquet_meta(mapped)
    assert json.loads(meta["cnnatlas.class_index"]) == [0, 281, 950]
    names = json.loads(meta["cnnatlas.output_names"])
    assert names[1] == "n90000001" and names[281] == "n02123045"  # the file's ids
    titles = json.loads(meta["cnnatlas.output_titles"])
    assert titles[1] == "class 1" and titles[281] == "tabby"  # and its names


TITLES = {"n01440764": "tench", "n02123045": "tabby", "n07747607": "orange"}


def test_class_names_show_beside_the_wordnet_ids(mapped):
    # the files keep both; figures show the name, hovers and the atlas name and id
    p = pd.read_parquet(mapped)
    assert p["label_title"].tolist() == [TITLES[w] for w in p["label_name"]]
    assert p["pred_title"].tolist() == [TITLES[w] for w in p["pred_name"]]
    figures = mapped.parent / "figures/layer4"
    legends = {"label": list(TITLES.values()), "pred": sorted(set(p["pred_title"]))}
    for mode, shown in legends.items():
        text = PdfReader(figures / f"pca-2d-p0-s0.{mode}.pdf").pages[0].extract_text()
        assert all(t in text for t in shown), text
        assert "n0" not in text, text  # legends are short: no WordNet id
    page = json.loads(
        re.search(
            r'id="cnnatlas-data">(.*?)</script>',
            (figures / "pca-2d-p0-s0.html").read_text(encoding="utf-8"),
            re.S,
        ).group(1)
    )
    assert page["modes"]["label"]["names"] == ["tench", "tabby", "orange"]
    first = p.set_index("image_id").loc[page["image_id"][0]]
    assert f"true: {first['label_title']} ({first['label_name']})\n" in page["info"][0]
    assert f"pred: {first['pred_title']} ({first['pred_name']})" in page["info"][0]
    header = atlas_header((mapped.parents[2] / "atlas.html").read_text("utf-8"))
    assert atlas_block(header, header["classes"]) == [
        "tench (n01440764)", "tabby (n02123045)", "orange (n07747607)"
    ]  # fmt: skip
    run = header["runs"]["resnet18/imagenet"]
    shown = [run["names"][j] for j in atlas_block(header, run["pred_out"])]
    assert shown == [
        f"{t} ({n})" for t, n in zip(p["pred_title"], p["pred_name"], strict=True)
    ]


def own_module_project(root: Path) -> dict:
    """The own-module example project: config.yaml, mynets.py, a CSV manifest with a
    metadata column and its images, a checkpoint."""
    config = write_project(root, "own-module", SMALL)
    (root / "mynets.py").write_text(readme_block("mynets.py"))
    spec = config["models"]["vggbn"]
    manifest = root / config["dataset"]["path"]
    images = manifest.parent / "shapes"
    write_images(images, ["circle", "square", "stripes"])
    rows = [
        {"file": str(p.relative_to(manifest.parent)), "shape": p.parent.name, "site": s}
        for s, p in zip("ABABAB", sorted(images.glob("*/*.png")), strict=True)
    ]
    pd.DataFrame(rows).to_csv(manifest, index=False)
    sys.path.insert(0, str(root))
    try:
        import mynets

        torch.manual_seed(0)
        model = mynets.vgg_bn(num_classes=spec["num_classes"], **spec["kwargs"])
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("mynets", None)
    ckpt = root / spec["checkpoints"]["best"]
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), ckpt)
    return config


def dry_run(project: Path) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-n", "--cores", "1"]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300)


def test_a_bad_class_index_stops_the_dry_run_naming_class_and_key(tmp_path):
    # the inline class_index example, added to the own-module example project
    own_module_project(tmp_path)
    line = readme_block("class-index-inline").rstrip("\n")
    good = "{circle: 2, square: 0, stripes: 1}"
    assert line.split("class_index: ")[1].startswith(good)
    text = (tmp_path / "config.yaml").read_text()
    assert "    num_classes: 3\n" in text
    text = text.replace("    num_classes: 3\n", f"    num_classes: 3\n{line}\n")
    (tmp_path / "config.yaml").write_text(text)
    proc = dry_run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cases = {
        "{circle: 2, square: 0, stripe: 1}": "['stripe'] are not classes of the dataset",
        "{circle: 2, square: 0}": "dataset class 'stripes' is not in the mapping",
        "{circle: 2, square: 0, stripes: 2}": "classes 'circle' and 'stripes' both map to output 2",
        "{circle: 2, square: 0, stripes: 3}": "class 'stripes' maps to output 3, but the model has 3 outputs",
    }
    for mapping, message in cases.items():
        (tmp_path / "config.yaml").write_text(text.replace(good, mapping))
        proc = dry_run(tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"cnnatlas: models.vggbn.class_index: {message}" in out, out[-2000:]
        assert "Job stats" not in out and 'File "' not in out  # one message


def test_more_classes_than_outputs_asks_for_a_class_index(tmp_path):
    own_module_project(tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    three = "classes: [circle, square, stripes]"
    assert three in text
    text = text.replace(three, "classes: [circle, square, stripes, triangle]")
    (tmp_path / "config.yaml").write_text(text)
    proc = dry_run(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "cnnatlas: models.vggbn.num_classes: the dataset has 4 classes but the model 3 outputs. "
        "If the model's classes include the dataset's, add models.vggbn.class_index"
    ) in out, out[-2000:]
    assert text == (tmp_path / "config.yaml").read_text()


def check_run(run: Path, spec: dict, shapes: dict) -> pd.DataFrame:
    """Every layer's features have `shapes`; probs are the softmax of the last layer."""
    assert {
        n: np.load(run / f"features/{n}.npy").shape for n in spec["layers"]
    } == shapes
    p = pd.read_parquet(run / "predictions.parquet")
    probs = softmax(np.load(run / "features/fc.npy").astype(np.float64))
    np.testing.assert_allclose(np.stack(p["probs"]), probs, rtol=1e-4, atol=1e-6)
    return p


# ---- an architecture beside the config, no PYTHONPATH ------------------------------


def test_own_module_beside_the_config_needs_no_pythonpath(tmp_path):
    config = own_module_project(tmp_path)
    spec = config["models"]["vggbn"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    snakemake(tmp_path, env=env)
    run = tmp_path / "results/vggbn/best"
    shapes = {"features.1": (6, 32), "features.2": (6, 64), "fc": (6, 3)}
    p = check_run(run, spec, shapes)
    assert (run / "embeddings/fc/pca-2d-p0-s0.parquet").is_file()
    # the manifest's metadata column reaches the predictions and colours the maps
    assert sorted(p["site"]) == list("AAABBB")
    assert (run / "figures/fc/pca-2d-p0-s0.site.png").is_file()
    # the module is an input of the extraction: editing it reruns it
    assert "extract_features" not in dry_run(tmp_path).stdout
    with open(tmp_path / "mynets.py", "a") as f:
        f.write("# edited\n")
    dry = dry_run(tmp_path)
    assert "extract_features" in dry.stdout


# ---- timm ---------------------------------------------------------------------------


def test_timm_model(tmp_path):
    timm = pytest.importorskip("timm")
    config = write_project(tmp_path, "timm", SMALL)
    spec = config["models"]["resnet10t"]
    write_images(tmp_path / config["dataset"]["path"], ["circle", "square", "stripes"])
    name = spec["arch"].removeprefix("timm:")
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=spec["num_classes"])
    ckpt = tmp_path / spec["checkpoints"]["final"]
    ckpt.parent.mkdir()
    torch.save(model.state_dict(), ckpt)
    snakemake(tmp_path)
    run = tmp_path / "results/resnet10t/final"
    p = check_run(run, spec, {"layer3": (6, 256), "layer4": (6, 512), "fc": (6, 3)})
    # the same model in this process gives the same outputs as the workflow's pass
    x = load_inputs([str(tmp_path / path) for path in p["path"]], spec["transform"])
    with torch.no_grad():
        logits = model.eval()(x).numpy()
    np.testing.assert_allclose(
        np.load(run / "features/fc.npy"), logits, rtol=1e-3, atol=1e-4
    )
