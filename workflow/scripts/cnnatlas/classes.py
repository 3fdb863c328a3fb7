"""The model's class space: which output of the model is which class of the dataset.

Without `class_index`, dataset class i (in the manifest's class order) is output i; a model
may have more outputs than the dataset has classes, never fewer. With `class_index` (a
mapping in the config, or a JSON or CSV file such as ImageNet's class index) every dataset
class names its output: `correct`, `in_topk`, `loss` and Grad-CAM's true class then compare
the model's outputs with the mapped outputs. An output that is no dataset class is named by
the file where it names the model's classes, else `output k`.
"""

import csv
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from cnnatlas.errors import ConfigError

__all__ = [
    "imagefolder_classes",
    "label_names",
    "dataset_classes",
    "OTHER",
    "ClassSpace",
    "read_class_file",
    "resolve_targets",
    "class_space",
    "read_class_space",
    "check_class_spaces",
]

# The colour category of a prediction that is none of the dataset's classes.
OTHER = "other outputs"
META_KEYS = ("cnnatlas.classes", "cnnatlas.class_index", "cnnatlas.output_names")


@dataclass(frozen=True)
class ClassSpace:
    """Dataset classes, the model output of each (`targets`) and a name for every output."""

    classes: tuple[str, ...]
    targets: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def of(cls, classes: "ClassSpace | Sequence[str]") -> "ClassSpace":
        """`classes` itself if a ClassSpace, else the identity space of a class list."""
        if isinstance(classes, ClassSpace):
            return classes
        return cls(tuple(classes), tuple(range(len(classes))), tuple(classes))

    def target(self, labels: np.ndarray) -> np.ndarray:
        """The model output of each dataset label."""
        return np.asarray(self.targets, dtype=np.int64)[np.asarray(labels, np.int64)]

    def name(self, output: int) -> str:
        """The name of model output `output` (a dataset class name where one maps to it)."""
        output = int(output)
        return (
            self.names[output] if 0 <= output < len(self.names) else f"output {output}"
        )

    def dataset_codes(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs as dataset labels; len(classes) (OTHER) for outputs of no class."""
        lookup = {t: k for k, t in enumerate(self.targets)}
        other = len(self.classes)
        return np.array([lookup.get(int(o), other) for o in outputs], dtype=np.int64)

    def meta(self) -> dict[str, str]:
        """Parquet metadata that `read_class_space` reads back."""
        values = (list(self.classes), list(self.targets), list(self.names))
        return {k: json.dumps(v) for k, v in zip(META_KEYS, values, strict=True)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> "ClassSpace":
        """The space recorded by `meta()`; without a mapping, the identity on the classes."""
        classes = json.loads(meta.get(META_KEYS[0], "[]"))
        targets = json.loads(meta.get(META_KEYS[1], "null"))
        names = json.loads(meta.get(META_KEYS[2], "null"))
        targets = list(range(len(classes))) if targets is None else targets
        return cls(tuple(classes), tuple(targets), tuple(names or classes))


def imagefolder_classes(root: str | Path) -> list[str]:
    """The class folders of an ImageFolder root, sorted: its default class list."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir())


def label_names(raw: "pd.Series") -> list[str]:
    """The class list of a label column: 0..max for integer labels, else the sorted names."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(raw):
        return [str(i) for i in range(int(raw.max()) + 1)]
    return sorted(raw.astype(str).unique())


def dataset_classes(dataset: Mapping[str, Any]) -> list[str] | None:
    """The class list `build_manifest` writes for the config's `dataset`, read cheaply
    (folder names or the label column); None while the dataset does not exist yet."""
    if dataset.get("classes"):
        return list(dataset["classes"])
    path = Path(dataset["path"])
    if dataset["kind"] == "imagefolder":
        return imagefolder_classes(path) if path.is_dir() else None
    if not path.is_file():
        return None
    import pandas as pd

    label = dataset.get("label_column", "label")
    try:
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path, columns=[label])[label]
        else:
            raw = pd.read_csv(path, usecols=[label])[label]
    except (ValueError, OSError, KeyError, pd.errors.ParserError):
        return None  # build_manifest names the problem
    return label_names(raw) if len(raw) and raw.notna().all() else None


def _fail(key: str, text: str) -> None:
    raise ConfigError(f"{key}: {text}")


def read_class_file(
    path: str | Path, key: str = "class_index"
) -> tuple[dict[str, list[int]], dict[int, str]]:
    """({class name or id: [outputs]}, {output: display name}) of a class-index file.

    JSON: `{"0": ["n01440764", "tench"], ...}` (torchvision's and Keras's ImageNet index:
    any entry names the output, the last one is shown), `{"tench": 0, ...}`, or a list
    of names in output order. CSV: a header with an `index` column; every other column
    names the output (the last one is shown).
    """
    path = Path(path)
    if not path.is_file():
        _fail(key, f"the class-index file {str(path)!r} does not exist")
    try:
        entries = _csv_entries(path) if path.suffix == ".csv" else _json_entries(path)
    except (ValueError, TypeError, KeyError, OSError, csv.Error) as err:
        _fail(
            key,
            f"{str(path)!r} is not a class index ({err}); give JSON "
            '{"0": ["n01440764", "tench"], ...}, {"tench": 0, ...} or a list of names, '
            "or a CSV with an index column",
        )
    aliases: dict[str, list[int]] = {}
    shown: dict[int, str] = {}
    for index, names in entries:
        if not names:
            continue
        shown.setdefault(index, names[-1])
        for name in names:
            outputs = aliases.setdefault(name, [])
            if index not in outputs:
                outputs.append(index)
    return aliases, shown


def _json_entries(path: Path) -> list[tuple[int, list[str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return [(i, [str(n)]) for i, n in enumerate(data)]
    if not isinstance(data, dict):
        raise ValueError("neither an object nor a list")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
        return [(v, [str(k)]) for k, v in data.items()]
    return [
        (int(k), [str(n) for n in (v if isinstance(v, list) else [v])])
        for k, v in data.items()
    ]


def _csv_entries(path: Path) -> list[tuple[int, list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "index" not in rows[0]:
        raise ValueError("no header with an 'index' column")
    return [
        (int(r["index"]), [str(v) for k, v in r.items() if k != "index" and v])
        for r in rows
    ]


def resolve_targets(
    class_index: Mapping[str, int] | str | None,
    classes: Sequence[str],
    num_classes: int,
    key: str = "class_index",
) -> tuple[list[int], dict[int, str]]:
    """(output of each dataset class, {output: name from the file}) for a `class_index` value.

    Raises ConfigError naming `key` and the class for a class the mapping does not know,
    an unknown class in an inline mapping, two classes on one output, an output that is
    not below `num_classes`, or (without a mapping) more classes than outputs.
    """
    if class_index is None:
        if len(classes) > num_classes:
            _fail(
                key.rsplit(".", 1)[0] + ".num_classes",
                f"the dataset has {len(classes)} classes but the model {num_classes} "
                f"outputs. If the model's classes include the dataset's, add {key}: "
                "a mapping from each dataset class to its output, or a JSON/CSV file "
                "naming the model's outputs (docs: Your data and models, docs/your-data.md)",
            )
        return list(range(len(classes))), {}
    if isinstance(class_index, Mapping):
        unknown = sorted(set(class_index) - set(classes))
        if unknown:
            close = {u: difflib.get_close_matches(u, classes, n=2) for u in unknown}
            _fail(key, f"{unknown} are not classes of the dataset (close: {close})")
        aliases = {str(k): [int(v)] for k, v in class_index.items()}
        shown: dict[int, str] = {}
        source = "the mapping"
    else:
        aliases, shown = read_class_file(class_index, key)
        source = repr(str(class_index))
    targets = [_target(c, aliases, source, key) for c in classes]
    _check_targets(targets, classes, num_classes, key)
    return targets, shown


def _target(name: str, aliases: Mapping[str, list[int]], source: str, key: str) -> int:
    outputs = aliases.get(name)
    if not outputs:
        close = difflib.get_close_matches(name, list(aliases), n=3)
        _fail(
            key,
            f"dataset class {name!r} is not in {source} (close: {close}); every class "
            "needs its output",
        )
    if len(outputs) > 1:
        _fail(
            key,
            f"dataset class {name!r} names outputs {outputs} of {source}; name the class "
            "by an unambiguous id (e.g. its WordNet id) or give a mapping",
        )
    return outputs[0]


def _check_targets(
    targets: Sequence[int], classes: Sequence[str], num_classes: int, key: str
) -> None:
    for name, t in zip(classes, targets, strict=True):
        if not 0 <= t < num_classes:
            _fail(
                key,
                f"class {name!r} maps to output {t}, but the model has {num_classes} "
                f"outputs (0..{num_classes - 1}); check num_classes and the mapping",
            )
    seen: dict[int, str] = {}
    for name, t in zip(classes, targets, strict=True):
        if t in seen:
            _fail(
                key,
                f"classes {seen[t]!r} and {name!r} both map to output {t}; "
                "each class needs its own output",
            )
        seen[t] = name


def class_space(
    class_index: Mapping[str, int] | str | None,
    classes: Sequence[str],
    num_classes: int,
    key: str = "class_index",
) -> ClassSpace:
    """The validated ClassSpace of a model with `num_classes` outputs on `classes`."""
    targets, shown = resolve_targets(class_index, classes, num_classes, key)
    names = [shown.get(k, f"output {k}") for k in range(num_classes)]
    for name, t in zip(classes, targets, strict=True):
        names[t] = name
    return ClassSpace(tuple(classes), tuple(targets), tuple(names))


def read_class_space(path: str | Path) -> ClassSpace:
    """The ClassSpace recorded in a predictions (or selection) Parquet's metadata."""
    from cnnatlas.io import read_parquet_meta

    return ClassSpace.from_meta(read_parquet_meta(path))


def check_class_spaces(
    config: Mapping[str, Any], classes: Sequence[str] | None
) -> None:
    """Validate every model's `class_index` against the dataset's `classes` (config time).

    `classes` None (the dataset does not exist yet, e.g. the demo's) checks only that
    class-index files exist; the extraction job validates again once the manifest exists.
    """
    for name, spec in config["models"].items():
        key = f"models.{name}.class_index"
        value = spec.get("class_index")
        if classes is None:
            if isinstance(value, str):
                read_class_file(value, key)
            continue
        class_space(value, classes, spec["num_classes"], key)
