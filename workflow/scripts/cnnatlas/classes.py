"""The model's class space: which output of the model is which class of the dataset.

Without `class_index`, dataset class i (in the manifest's class order) is output i; a model
may have more outputs than the dataset has classes, never fewer. With `class_index` (a
mapping in the config, or a JSON or CSV file such as ImageNet's class index) every dataset
class names its output: `correct`, `in_topk`, `loss` and Grad-CAM's true class then compare
the model's outputs with the mapped outputs. An output that is no dataset class is named by
the file where it names the model's classes, else `output k`.

Names and titles: an output's *name* is the identifier the files use (the dataset's class
name, e.g. the WordNet id `n01440764` of an ImageNet folder, or a file's first name for
an output of no dataset class); its *title* is the human name a class-index file gives
(`tench`), else the name. Legends show the title, hovers `tench (n01440764)`
(`display_name`); without a class-index file naming the outputs both are the name.
"""

import csv
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from cnnatlas.errors import ConfigError

__all__ = [
    "imagefolder_classes",
    "label_names",
    "dataset_classes",
    "OTHER",
    "display_name",
    "titled_names",
    "titles_as_names",
    "ClassSpace",
    "OutputName",
    "read_class_file",
    "resolve_targets",
    "class_space",
    "read_class_space",
    "check_class_spaces",
]

# The colour category of a prediction that is none of the dataset's classes.
OTHER = "other outputs"
META_KEYS = ("cnnatlas.classes", "cnnatlas.class_index", "cnnatlas.output_names")
TITLES_KEY = "cnnatlas.output_titles"
# ImageNet's WordNet ids: n + 8 digits (a line of LOC_synset_mapping.txt starts with one)
WNID = re.compile(r"n\d{8}")


def display_name(name: str, title: str) -> str:
    """`tench (n01440764)` for an output whose title differs from its name, else the name."""
    return name if title == name else f"{title} ({name})"


def titled_names(names: Sequence[str], titles: Sequence[str]) -> list[str]:
    """Short legend strings: each title, or `display_name` where two share one title
    (ImageNet's two `crane`s), so a legend never shows one string for two classes."""
    counts: dict[str, int] = {}
    for t in titles:
        counts[t] = counts.get(t, 0) + 1
    return [
        t if counts[t] == 1 else display_name(n, t)
        for n, t in zip(names, titles, strict=True)
    ]


def titles_as_names(table: "pd.DataFrame") -> "pd.DataFrame":
    """A copy of a predictions (or selection) table whose label_name and pred_name are
    the titles (label_title, pred_title, where present): for code that captions with
    the names."""
    out = table.copy()
    for kind in ("label", "pred"):
        if f"{kind}_title" in out:
            out[f"{kind}_name"] = out[f"{kind}_title"]
    return out


@dataclass(frozen=True)
class ClassSpace:
    """Dataset classes, the model output of each (`targets`), a name for every output
    and, where a class-index file gives them, human titles (`titles`, else empty)."""

    classes: tuple[str, ...]
    targets: tuple[int, ...]
    names: tuple[str, ...]
    titles: tuple[str, ...] = ()

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

    def title(self, output: int) -> str:
        """The human name of model output `output` (`tench`); its name where none is known."""
        output = int(output)
        if 0 <= output < len(self.titles):
            return self.titles[output]
        return self.name(output)

    def hover(self, output: int) -> str:
        """Title and name of model output `output` for hovers: `tench (n01440764)`."""
        return display_name(self.name(output), self.title(output))

    def class_titles(self) -> list[str]:
        """Legend strings of the dataset classes, in label order (`titled_names`)."""
        return titled_names(list(self.classes), [self.title(t) for t in self.targets])

    def class_hovers(self) -> list[str]:
        """Hover strings of the dataset classes, in label order."""
        return [
            display_name(c, self.title(t))
            for c, t in zip(self.classes, self.targets, strict=True)
        ]

    def has_titles(self) -> bool:
        """Whether any output's title differs from its name."""
        return any(t != n for t, n in zip(self.titles, self.names, strict=False))

    def shown(self) -> "ClassSpace":
        """This space with every class and output named by its legend string: for
        drawing code that labels with `classes` and `name` (targets unchanged)."""
        if not self.has_titles():
            return self
        titles = [self.title(k) for k in range(len(self.names))]
        legend = self.class_titles()
        for k, t in enumerate(self.targets):
            titles[t] = legend[k]
        return ClassSpace(tuple(legend), self.targets, tuple(titles))

    def meta(self) -> dict[str, str]:
        """Parquet metadata that `read_class_space` reads back (titles only if any differ)."""
        values = (list(self.classes), list(self.targets), list(self.names))
        meta = {k: json.dumps(v) for k, v in zip(META_KEYS, values, strict=True)}
        if self.has_titles():
            meta[TITLES_KEY] = json.dumps(list(self.titles))
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, str]) -> "ClassSpace":
        """The space recorded by `meta()`; without a mapping, the identity on the classes."""
        classes = json.loads(meta.get(META_KEYS[0], "[]"))
        targets = json.loads(meta.get(META_KEYS[1], "null"))
        names = json.loads(meta.get(META_KEYS[2], "null"))
        titles = json.loads(meta.get(TITLES_KEY, "[]"))
        targets = list(range(len(classes))) if targets is None else targets
        return cls(
            tuple(classes), tuple(targets), tuple(names or classes), tuple(titles)
        )


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


class OutputName(NamedTuple):
    """What a class-index file says of one output: its id (the first name of its entry)
    and its title (the last: the human name)."""

    id: str
    title: str


FORMATS = (
    'JSON {"0": ["n01440764", "tench"], ...} (torchvision\'s and Keras\'s '
    'imagenet_class_index.json), {"tench": 0, ...} or a list of names in output order; '
    "a CSV or TSV with a header row (an 'index' column, else the rows in output order; "
    "the first other column is the id, the last the name, e.g. 'id,name'); or a .txt "
    "file with one output per line ('n01440764 tench, Tinca tinca' or 'tench')"
)


def read_class_file(
    path: str | Path, key: str = "class_index"
) -> tuple[dict[str, list[int]], dict[int, OutputName]]:
    """({class name or id: [outputs]}, {output: OutputName}) of a class-index file.

    Every name of an output's entry names it (a dataset class matches any). The forms
    are listed in `FORMATS`; the suffix picks the reader (.csv, .tsv, .txt, else JSON).
    """
    path = Path(path)
    if not path.is_file():
        _fail(key, f"the class-index file {str(path)!r} does not exist")
    readers = {".csv": _csv_entries, ".tsv": _csv_entries, ".txt": _txt_entries}
    try:
        entries = readers.get(path.suffix.lower(), _json_entries)(path)
    except (ValueError, TypeError, KeyError, IndexError, OSError, csv.Error) as err:
        _fail(key, f"{str(path)!r} is not a class index ({err}); give {FORMATS}")
    aliases: dict[str, list[int]] = {}
    named: dict[int, OutputName] = {}
    for index, names in entries:
        if not names:
            continue
        named.setdefault(index, OutputName(names[0], names[-1]))
        for name in names:
            outputs = aliases.setdefault(name, [])
            if index not in outputs:
                outputs.append(index)
    return aliases, named


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
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValueError("the file is empty")
    header = [c.strip() for c in rows[0]]
    if any(WNID.fullmatch(c) or c.isdigit() for c in header):
        raise ValueError(
            f"the first row {rows[0]} looks like data, not a header; add a header row "
            "such as 'id,name' (or 'index,id,name')"
        )
    at = header.index("index") if "index" in header else None
    out = []
    for i, row in enumerate(rows[1:]):
        cells = [c.strip() for c in row]
        index = int(cells[at]) if at is not None else i
        names = [c for j, c in enumerate(cells) if j != at and c]
        out.append((index, _unique(names)))
    return out


def _txt_entries(path: Path) -> list[tuple[int, list[str]]]:
    lines = path.read_text(encoding="utf-8-sig").rstrip("\n").split("\n")
    out = []
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            raise ValueError(
                f"line {i + 1} is empty; a line per output, in output order"
            )
        wnid, *rest = line.split(None, 1)
        if WNID.fullmatch(wnid) and rest:
            # LOC_synset_mapping.txt: 'n01440764 tench, Tinca tinca'; its first name shows
            out.append((i, _unique([wnid, rest[0], rest[0].split(",")[0].strip()])))
        else:
            out.append((i, [line]))
    return out


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def resolve_targets(
    class_index: Mapping[str, int] | str | None,
    classes: Sequence[str],
    num_classes: int,
    key: str = "class_index",
) -> tuple[list[int], dict[int, OutputName]]:
    """(output of each dataset class, {output: its id and title in the file}) for a
    `class_index` value (no names for an inline mapping).

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
        named: dict[int, OutputName] = {}
        source = "the mapping"
    else:
        aliases, named = read_class_file(class_index, key)
        source = repr(str(class_index))
    targets = [_target(c, aliases, source, key) for c in classes]
    _check_targets(targets, classes, num_classes, key)
    return targets, named


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
    """The validated ClassSpace of a model with `num_classes` outputs on `classes`.

    A dataset class's output is named by the class; another output by its id in the
    class-index file, else `output k`. Titles are the file's human names (a class the
    file does not title keeps its name); none without a file.
    """
    targets, named = resolve_targets(class_index, classes, num_classes, key)
    names = [named[k].id if k in named else f"output {k}" for k in range(num_classes)]
    titles = [named[k].title if k in named else names[k] for k in range(num_classes)]
    for name, t in zip(classes, targets, strict=True):
        names[t] = name
        titles[t] = named[t].title if t in named else name
    titled = titles != names
    return ClassSpace(
        tuple(classes), tuple(targets), tuple(names), tuple(titles) if titled else ()
    )


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
        if "num_classes" in spec:  # else (features_from) the import job checks it
            class_space(value, classes, spec["num_classes"], key)
