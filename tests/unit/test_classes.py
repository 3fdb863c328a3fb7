"""Class spaces: which model output is which dataset class (`class_index`)."""

import json

import numpy as np
import pandas as pd
import pytest
from cnnatlas.classes import (
    ClassSpace,
    OutputName,
    check_class_spaces,
    class_space,
    dataset_classes,
    display_name,
    read_class_file,
    read_class_space,
    titled_names,
    titles_as_names,
)
from cnnatlas.errors import ConfigError
from cnnatlas.extract import predictions_table
from cnnatlas.io import write_parquet

CLASSES = ["circle", "square", "stripes"]
KEY = "models.net.class_index"


def test_without_a_mapping_class_i_is_output_i_and_other_outputs_are_numbered():
    space = class_space(None, CLASSES, 5, KEY)
    assert space.targets == (0, 1, 2)
    assert space.names == ("circle", "square", "stripes", "output 3", "output 4")
    assert space.dataset_codes(np.array([4, 2, 0])).tolist() == [3, 2, 0]


def test_more_classes_than_outputs_asks_for_a_mapping():
    with pytest.raises(ConfigError) as err:
        class_space(None, CLASSES, 2, KEY)
    msg = str(err.value)
    assert msg.startswith("models.net.num_classes: the dataset has 3 classes but the")
    assert "add models.net.class_index" in msg


def test_an_inline_mapping_names_outputs_by_dataset_class():
    space = class_space({"square": 0, "circle": 4, "stripes": 2}, CLASSES, 5, KEY)
    assert space.targets == (4, 0, 2)
    assert space.names == ("square", "output 1", "stripes", "output 3", "circle")
    assert space.target(np.array([0, 1, 2, 0])).tolist() == [4, 0, 2, 4]
    assert space.dataset_codes(np.array([0, 4, 1])).tolist() == [1, 0, 3]
    assert ClassSpace.from_meta(space.meta()) == space


@pytest.mark.parametrize(
    "mapping, message",
    [
        (
            {"circle": 0, "square": 1, "stripes": 2, "stars": 3},
            "['stars'] are not classes of the dataset",
        ),
        ({"circle": 0, "square": 1}, "dataset class 'stripes' is not in the mapping"),
        (
            {"circle": 0, "square": 1, "stripes": 1},
            "classes 'square' and 'stripes' both map to output 1",
        ),
        (
            {"circle": 0, "square": 1, "stripes": 5},
            "class 'stripes' maps to output 5, but the model has 5 outputs (0..4)",
        ),
    ],
)
def test_bad_mappings_name_the_class_and_the_key(mapping, message):
    with pytest.raises(ConfigError) as err:
        class_space(mapping, CLASSES, 5, KEY)
    assert str(err.value).startswith(f"{KEY}: {message}")


def imagenet_style(tmp_path):
    index = {str(i): [f"n{i:08d}", f"thing {i}"] for i in range(10)}
    index["7"] = ["n02123045", "tabby"]
    index["3"] = ["n01440764", "tench"]
    index["8"] = ["n07747607", "orange"]
    index["9"] = ["n99999999", "tabby"]  # a name twice, as ImageNet's 'crane'
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index))
    return path


def test_an_imagenet_class_index_maps_by_wordnet_id_or_by_name(tmp_path):
    path = imagenet_style(tmp_path)
    space = class_space(str(path), ["n07747607", "n01440764", "n02123045"], 10, KEY)
    assert space.targets == (8, 3, 7)
    # an output of no dataset class: named by its id, titled by its human name
    assert space.names[0] == "n00000000" and space.titles[0] == "thing 0"
    assert space.names[9] == "n99999999" and space.titles[9] == "tabby"
    assert space.names[8] == "n07747607"  # a dataset class keeps its own name
    assert space.titles[8] == "orange"  # and is titled by the file
    by_name = class_space(str(path), ["orange", "tench"], 10, KEY)
    assert by_name.targets == (8, 3)
    assert by_name.class_titles() == ["orange", "tench"]
    assert by_name.class_hovers() == ["orange", "tench"]  # the name is the title
    with pytest.raises(ConfigError, match=r"'tabby' names outputs \[7, 9\]"):
        class_space(str(path), ["tabby"], 10, KEY)
    with pytest.raises(ConfigError, match="dataset class 'goldfish' is not in"):
        class_space(str(path), ["goldfish"], 10, KEY)
    with pytest.raises(ConfigError, match="maps to output 8, but the model has 5"):
        class_space(str(path), ["orange"], 5, KEY)


def test_other_file_forms(tmp_path):
    (tmp_path / "names.json").write_text(json.dumps(["a", "b", "c", "d"]))
    assert class_space(str(tmp_path / "names.json"), ["d", "b"], 4).targets == (3, 1)
    (tmp_path / "map.json").write_text(json.dumps({"d": 0, "b": 2}))
    assert class_space(str(tmp_path / "map.json"), ["d", "b"], 4).targets == (0, 2)
    (tmp_path / "index.csv").write_text("index,wnid,name\n0,n1,dog\n1,n2,cat\n")
    aliases, named = read_class_file(tmp_path / "index.csv")
    assert aliases == {"n1": [0], "dog": [0], "n2": [1], "cat": [1]}
    assert named == {0: OutputName("n1", "dog"), 1: OutputName("n2", "cat")}
    assert class_space(str(tmp_path / "index.csv"), ["cat", "n1"], 2).targets == (1, 0)


def test_missing_or_malformed_files_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=f"{KEY}: the class-index file .* does not"):
        class_space(str(tmp_path / "nope.json"), CLASSES, 3, KEY)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=f"{KEY}: .*bad.json' is not a class index"):
        class_space(str(tmp_path / "bad.json"), CLASSES, 3, KEY)
    (tmp_path / "bad.csv").write_text("n01440764,tench\nn01443537,goldfish\n")
    with pytest.raises(ConfigError) as err:
        class_space(str(tmp_path / "bad.csv"), CLASSES, 3, KEY)
    assert "bad.csv' is not a class index (the first row" in str(err.value)
    assert "looks like data, not a header; add a header row such as 'id,name'" in str(
        err.value
    )
    (tmp_path / "gap.txt").write_text("tench\n\ngoldfish\n")
    with pytest.raises(ConfigError, match=r"gap.txt' is not a class index \(line 2"):
        class_space(str(tmp_path / "gap.txt"), CLASSES, 3, KEY)
    (tmp_path / "empty.tsv").write_text("\n")
    with pytest.raises(ConfigError, match=r"empty.tsv' is not a class index .*TSV"):
        class_space(str(tmp_path / "empty.tsv"), CLASSES, 3, KEY)


def test_predictions_compare_outputs_with_the_mapped_class():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 6)).astype(np.float32)
    logits[:20, 5] += 4  # the first half predicts output 5
    labels = np.repeat([0, 1], 20)
    manifest = pd.DataFrame(
        {
            "image_id": range(40),
            "path": [f"{i}.png" for i in range(40)],
            "label": labels,
            "label_name": np.array(["cat", "dog"])[labels],
        }
    )
    space = class_space({"cat": 5, "dog": 2}, ["cat", "dog"], 6, KEY)
    p = predictions_table(manifest, logits, ["cat", "dog"], topk=2, space=space)
    pred = logits.argmax(1)
    target = np.array([5, 2])[labels]  # by hand
    assert (p["correct"] == (pred == target)).all()
    assert p["correct"][:20].mean() > 0.9  # a non-identity mapping: cat is output 5
    assert not (p["correct"] == (pred == labels)).all()
    top2 = np.argsort(-logits, 1)[:, :2]
    assert (p["in_topk"] == (top2 == target[:, None]).any(1)).all()
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(p["loss"], -logp[np.arange(40), target], rtol=1e-5)
    names = {5: "cat", 2: "dog", 0: "output 0", 1: "output 1", 3: "output 3"}
    assert p["pred_name"].tolist() == [names.get(i, f"output {i}") for i in pred]


def test_dataset_classes_at_config_time(tmp_path):
    (tmp_path / "img" / "b").mkdir(parents=True)
    (tmp_path / "img" / "a").mkdir()
    folder = {"kind": "imagefolder", "path": str(tmp_path / "img")}
    assert dataset_classes(folder) == ["a", "b"]
    assert dataset_classes({**folder, "classes": ["b", "a"]}) == ["b", "a"]
    assert dataset_classes({**folder, "path": str(tmp_path / "later")}) is None
    (tmp_path / "m.csv").write_text("path,label\nx.png,dog\ny.png,cat\n")
    table = {"kind": "manifest", "path": str(tmp_path / "m.csv")}
    assert dataset_classes(table) == ["cat", "dog"]
    (tmp_path / "i.csv").write_text("path,y\nx.png,2\ny.png,0\n")
    assert dataset_classes(
        {**table, "path": str(tmp_path / "i.csv"), "label_column": "y"}
    ) == ["0", "1", "2"]
    assert dataset_classes({**table, "label_column": "nope"}) is None


def test_check_class_spaces_validates_every_model(tmp_path):
    models = {
        "ok": {"num_classes": 5},
        "bad": {"num_classes": 5, "class_index": {"a": 1, "b": 1}},
    }
    with pytest.raises(
        ConfigError, match="models.bad.class_index: classes 'a' and 'b'"
    ):
        check_class_spaces({"models": models}, ["a", "b"])
    check_class_spaces({"models": models}, None)  # no dataset yet: nothing to compare
    missing = {"m": {"num_classes": 5, "class_index": str(tmp_path / "x.json")}}
    with pytest.raises(ConfigError, match="models.m.class_index: the class-index file"):
        check_class_spaces({"models": missing}, None)


# ---- names and titles: what legends and hovers show -------------------------------

WORDNET = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white"}


def test_display_strings():
    assert display_name("n01440764", "tench") == "tench (n01440764)"
    assert display_name("7", "7") == "7"  # no human name: the id, as before
    # two classes with one title (ImageNet's two 'crane's) keep distinct legend strings
    assert titled_names(["n02012849", "n03126707", "n01440764"], [
        "crane", "crane", "tench"
    ]) == ["crane (n02012849)", "crane (n03126707)", "tench"]  # fmt: skip


@pytest.mark.parametrize(
    "name, text",
    [
        ("imagenet_class_index.json", json.dumps(
            {str(i): [w, t] for i, (w, t) in enumerate(WORDNET.items())}
        )),
        ("ids.csv", "id,name\n" + "".join(f"{w},{t}\n" for w, t in WORDNET.items())),
        ("ids.tsv", "wnid\tname\n" + "".join(f"{w}\t{t}\n" for w, t in WORDNET.items())),
        ("indexed.csv", "index,wnid,name\n" + "".join(
            f"{i},{w},{t}\n" for i, (w, t) in reversed(list(enumerate(WORDNET.items())))
        )),
        ("LOC_synset_mapping.txt", "".join(
            f"{w} {t}, Latin name\n" for w, t in WORDNET.items()
        )),
    ],
)  # fmt: skip
def test_every_file_form_titles_wordnet_folders(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    folders = ["n01443537", "n01440764"]  # an ImageFolder's sorted WordNet ids
    space = class_space(str(tmp_path / name), folders, 3, KEY)
    assert space.targets == (1, 0)
    assert space.names == ("n01440764", "n01443537", "n01484850")
    assert space.titles == ("tench", "goldfish", "great white")
    assert space.class_titles() == ["goldfish", "tench"]
    assert space.class_hovers() == ["goldfish (n01443537)", "tench (n01440764)"]
    assert (
        space.hover(2) == "great white (n01484850)" and space.title(2) == "great white"
    )
    assert space.hover(7) == "output 7"
    assert ClassSpace.from_meta(space.meta()) == space  # titles travel in the metadata


def test_a_names_only_txt_titles_nothing(tmp_path):
    (tmp_path / "imagenet_classes.txt").write_text("tench\ngoldfish\ngreat white\n")
    space = class_space(str(tmp_path / "imagenet_classes.txt"), ["goldfish"], 3, KEY)
    assert space.targets == (1,) and space.titles == () and not space.has_titles()
    assert space.names == ("tench", "goldfish", "great white")


def test_no_class_index_invents_no_names():
    # WordNet-id folders without a class_index: ids everywhere, no titles written
    space = class_space(None, ["n01440764", "n01443537"], 2, KEY)
    assert space.titles == () and space.class_titles() == ["n01440764", "n01443537"]
    assert space.class_hovers() == ["n01440764", "n01443537"]
    assert "cnnatlas.output_titles" not in space.meta()
    inline = class_space(
        {"n01440764": 1, "n01443537": 0}, ["n01440764", "n01443537"], 2
    )
    assert inline.titles == () and inline.hover(0) == "n01443537"


def test_predictions_keep_the_id_and_add_the_title(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps(
        {str(i): [w, t] for i, (w, t) in enumerate(WORDNET.items())}
    ))  # fmt: skip
    classes = ["n01440764", "n01443537"]
    space = class_space(str(tmp_path / "index.json"), classes, 3, KEY)
    logits = np.array([[5, 0, 0], [0, 0, 5], [0, 5, 0]], dtype=np.float32)
    manifest = pd.DataFrame(
        {"image_id": range(3), "path": ["a", "b", "c"], "label": [0, 1, 1],
         "label_name": [classes[k] for k in (0, 1, 1)]}
    )  # fmt: skip
    p = predictions_table(manifest, logits, classes, topk=2, space=space)
    assert p["label_name"].tolist() == ["n01440764", "n01443537", "n01443537"]
    assert p["label_title"].tolist() == ["tench", "goldfish", "goldfish"]
    assert p["pred_name"].tolist() == ["n01440764", "n01484850", "n01443537"]
    assert p["pred_title"].tolist() == ["tench", "great white", "goldfish"]
    assert list(p.columns[:7]) == [
        "image_id", "path", "label", "label_name", "label_title", "pred", "pred_name"
    ]  # fmt: skip
    write_parquet(p, tmp_path / "p.parquet", meta=space.meta())
    assert read_class_space(tmp_path / "p.parquet") == space
    shown = space.shown()  # what captions draw with: titles as names, same outputs
    assert shown.classes == ("tench", "goldfish") and shown.targets == space.targets
    assert shown.name(2) == "great white"
    captions = titles_as_names(p)
    assert captions["label_name"].tolist() == p["label_title"].tolist()
    assert p["label_name"][0] == "n01440764"  # the table itself is untouched


def test_the_demo_class_space_is_unchanged():
    digits = [str(i) for i in range(10)]
    space = class_space(None, digits, 10)
    assert space == ClassSpace.of(digits) and space.shown() is space
    assert space.meta().keys() == {
        "cnnatlas.classes", "cnnatlas.class_index", "cnnatlas.output_names"
    }  # fmt: skip
    assert space.class_titles() == digits == space.class_hovers()


def test_a_short_indexed_row_is_a_bad_file_not_a_crash(tmp_path):
    (tmp_path / "short.csv").write_text("name,index\ntench,0\ngoldfish\n")
    with pytest.raises(ConfigError, match=r"short.csv' is not a class index"):
        class_space(str(tmp_path / "short.csv"), ["tench"], 3, KEY)
    # a tab after the WordNet id reads like a space
    (tmp_path / "tabs.txt").write_text("n01440764\ttench, Tinca tinca\n")
    space = class_space(str(tmp_path / "tabs.txt"), ["n01440764"], 1, KEY)
    assert space.class_hovers() == ["tench (n01440764)"]
    # and the full name of the line matches a class too
    assert class_space(
        str(tmp_path / "tabs.txt"), ["tench, Tinca tinca"], 1
    ).targets == (0,)
