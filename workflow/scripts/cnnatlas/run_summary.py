"""The summary a run's landing page opens with: the dataset, each checkpoint's accuracy,
the most faithful map of each layer, the saliency checks' verdicts and every warning of
the run (maps the diagnosis does not call faithful, and the WARNING records of the jobs'
logs, each once with the rules that logged it).

`run_summary` reads the run's files into plain numbers and words; `summary_html` writes
them as HTML, every string from the run escaped.
"""

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cnnatlas.io import read_parquet_meta
from cnnatlas.metrics import diagnosis_notes
from cnnatlas.viewer.atlas import map_variant
from cnnatlas.viewer.compare import atlas_href

__all__ = [
    "RunSummary",
    "accuracies",
    "best_maps",
    "unfaithful_maps",
    "saliency_verdicts",
    "logged_warnings",
    "run_summary",
    "summary_html",
]

MAX_CLASS_NAMES = 20  # more classes are counted, not named
# A record of cnnatlas.logs.to_log's format: "2026-01-31 12:00:00,123 LEVEL name: message"
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ([^:]+): (.*)$")
_WARNING_LEVELS = ("WARNING", "ERROR", "CRITICAL")


@dataclass
class RunSummary:
    """What the landing page opens with (see the module docstring)."""

    n_images: int
    classes: list[str]
    n_left_out: int
    accuracy: pd.DataFrame  # model, ckpt, correct, n, accuracy
    best_maps: pd.DataFrame  # model, ckpt, layer, method, perplexity, seed, ...
    layers: dict[str, list[str]]
    unfaithful: list[str]
    verdicts: list[tuple[str, str, str, list[str]]]  # model, ckpt, images, verdicts
    warnings: list[tuple[str, list[str]]]  # message, the rules that logged it


def accuracies(predictions: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per [model, ckpt, predictions.parquet]: correct predictions, images, accuracy."""
    rows = []
    for model, ckpt, path in predictions:
        correct = pd.read_parquet(path, columns=["correct"])["correct"]
        n, k = len(correct), int(correct.sum())
        rows.append({"model": model, "ckpt": ckpt, "correct": k, "n": n,
                     "accuracy": k / n if n else float("nan")})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "ckpt", "correct", "n", "accuracy"])


def best_maps(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (model, ckpt, layer) the most faithful 2-D map (the atlas shows 2-D maps):
    the highest trustworthiness among the maps `diagnose` calls faithful, or among all
    of the layer's maps when none is (`faithful` False); ties go to the higher kNN
    accuracy in the map, then to the first in metrics.parquet's order."""
    two_d = metrics[metrics["dim"] == 2].assign(
        faithful=lambda d: d["diagnosis"] == "faithful"
    )
    ranked = two_d.sort_values(
        ["faithful", "trustworthiness", "knn_map"], ascending=False, kind="stable"
    )
    keys = ["model", "ckpt", "layer"]
    return ranked.drop_duplicates(keys).sort_index().reset_index(drop=True)


def unfaithful_maps(metrics: pd.DataFrame) -> list[str]:
    """One sentence per kind of problem the diagnosis finds: how many maps it finds it
    in, out of how many, by method."""
    notes = [(m, n) for m, d in zip(metrics["method"], metrics["diagnosis"],
                                    strict=True) for n in diagnosis_notes(d)]  # fmt: skip
    out = []
    for note in dict.fromkeys(n for _, n in notes):
        by = pd.Series([m for m, n in notes if n == note]).value_counts(sort=False)
        methods = ", ".join(f"{m} {k}" for m, k in by.items())
        out.append(f"{by.sum()} of {len(metrics)} maps: {note} ({methods})")
    return out


def saliency_verdicts(
    checks: Sequence[Sequence[str]],
) -> list[tuple[str, str, str, list[str]]]:
    """Per [model, ckpt, saliency_checks.parquet]: which images were checked and each
    method's verdict over all of them."""
    out = []
    for model, ckpt, path in checks:
        df = pd.read_parquet(path)
        every = df[df["group"] == "all"]
        images = read_parquet_meta(path).get("cnnatlas.images")
        if images is None:
            images = f"{int(every['n'].max())} images" if len(every) else "no images"
        out.append((model, ckpt, images, every["verdict"].tolist()))
    return out


def _records(path: Path):
    """(level, message) of each record of a job's log; a record's indented lines (a
    list of files, a warning's source line) belong to it."""
    level, lines = None, []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _RECORD.match(line)
        if m or not line[:1].isspace():
            if level is not None:
                yield level, "\n".join(lines)
            level, lines = (m.group(1), [m.group(3)]) if m else (None, [])
        elif level is not None:
            lines.append(line.rstrip())
    if level is not None:
        yield level, "\n".join(lines)


def logged_warnings(logs: Sequence[Sequence[str]]) -> list[tuple[str, list[str]]]:
    """Every WARNING (or worse) record of the [rule, log file]s, once per message in
    the order first logged, with the rules that logged it."""
    seen: dict[str, list[str]] = {}
    for rule, path in logs:
        if not Path(path).is_file():
            continue
        for level, message in _records(Path(path)):
            if level in _WARNING_LEVELS:
                text = message if level == "WARNING" else f"{level}: {message}"
                rules = seen.setdefault(text, [])
                if rule not in rules:
                    rules.append(rule)
    return list(seen.items())


def run_summary(
    manifest: str | Path,
    metrics: str | Path,
    predictions: Sequence[Sequence[str]] = (),
    saliency: Sequence[Sequence[str]] = (),
    logs: Sequence[Sequence[str]] = (),
    layers: Mapping[str, Sequence[str]] | None = None,
    bad_images: str | Path | None = None,
) -> RunSummary:
    """The summary of the run whose manifest, metrics.parquet, [model, ckpt, file] of
    predictions and saliency checks, and [rule, file] of logs are given; `layers`: each
    model's layers in network order (else metrics.parquet's order); `bad_images`: the
    images left out."""
    classes = [str(c) for c in _classes(manifest)]
    left_out = 0
    if bad_images is not None and Path(bad_images).is_file():
        left_out = len(pd.read_parquet(bad_images, columns=["path"]))
    table = pd.read_parquet(metrics)
    order = {m: list(ls) for m, ls in (layers or {}).items()}
    for m, layer in zip(table["model"], table["layer"], strict=True):
        if layer not in order.setdefault(m, []):
            order[m].append(layer)
    return RunSummary(
        n_images=len(pd.read_parquet(manifest, columns=["image_id"])),
        classes=classes,
        n_left_out=left_out,
        accuracy=accuracies(predictions),
        best_maps=best_maps(table),
        layers=order,
        unfaithful=unfaithful_maps(table),
        verdicts=saliency_verdicts(saliency),
        warnings=logged_warnings(logs),
    )


def _classes(manifest: str | Path) -> list:
    meta = read_parquet_meta(manifest).get("cnnatlas.classes")
    if meta is not None:
        return json.loads(meta)
    names = pd.read_parquet(manifest, columns=["label", "label_name"])
    return names.drop_duplicates("label").sort_values("label")["label_name"].tolist()


def _e(v) -> str:
    return html.escape(str(v))


def _dataset(s: RunSummary) -> str:
    text = f"{s.n_images:,} images in {len(s.classes)} classes"
    if len(s.classes) <= MAX_CLASS_NAMES:
        text += ": " + ", ".join(s.classes)
    if s.n_left_out:
        text += (
            f"; {s.n_left_out:,} images that cannot be decoded are left out "
            "(bad_images.parquet lists them)"
        )
    return f'<p class="dataset">Dataset: {_e(text)}.</p>'


def _accuracy(s: RunSummary) -> list[str]:
    out = [
        '<table class="summary accuracy"><tr><th>model</th><th>checkpoint</th>'
        "<th>accuracy</th><th>correct</th></tr>"
    ]
    for r in s.accuracy.itertuples(index=False):
        out.append(
            f"<tr><td>{_e(r.model)}</td><td>{_e(r.ckpt)}</td>"
            f'<td class="num">{100 * r.accuracy:.1f}%</td>'
            f'<td class="num">{r.correct:,} of {r.n:,}</td></tr>'
        )
    return [*out, "</table>"]


def _map_cell(r, atlas: str | None) -> str:
    variant = map_variant(r.method, r.perplexity, r.seed)
    view = {"model": r.model, "ckpt": r.ckpt, "layer": r.layer, "method": r.method,
            "variant": variant}  # fmt: skip
    words = r.method if variant == r.method else f"{r.method} ({variant})"
    link = _e(words)
    if atlas is not None:
        link = f'<a href="{_e(atlas_href(atlas, view))}">{link}</a>'
    text = f"{link} trustworthiness {r.trustworthiness:.3f}"
    if r.faithful:
        return f"<td>{text}</td>"
    return (
        f'<td class="unfaithful" title="{_e(r.diagnosis)}">⚠ none faithful: {text}</td>'
    )


def _best_maps(s: RunSummary, atlas: str | None) -> list[str]:
    out = [
        "<h3>The most faithful map of each layer</h3>",
        "<p>Per layer and checkpoint, the 2-D map with the highest trustworthiness "
        "among those the diagnosis calls faithful (⚠ where it calls none faithful: "
        "then the most trustworthy of all)."
        + (" A link opens that map in the atlas." if atlas is not None else "")
        + "</p>",
    ]
    for model, g in s.best_maps.groupby("model", sort=False):
        ckpts = list(dict.fromkeys(g["ckpt"]))
        cells = {(r.layer, r.ckpt): r for r in g.itertuples(index=False)}
        out.append(f'<table class="summary maps"><caption>{_e(model)}</caption><tr>'
                   "<th>layer</th>" + "".join(f"<th>{_e(c)}</th>" for c in ckpts)
                   + "</tr>")  # fmt: skip
        for layer in s.layers.get(model, []):
            row = [
                _map_cell(cells[(layer, c)], atlas)
                if (layer, c) in cells
                else "<td></td>"
                for c in ckpts
            ]
            out.append(f"<tr><th>{_e(layer)}</th>{''.join(row)}</tr>")
        out.append("</table>")
    return out


def _verdicts(s: RunSummary) -> list[str]:
    if not s.verdicts:
        return []
    out = ["<h3>Saliency checks</h3>"]
    for model, ckpt, images, verdicts in s.verdicts:
        out.append(f"<p>{_e(model)} {_e(ckpt)}, on {_e(images)}:</p><ul>")
        out += [f"<li>{_e(v)}</li>" for v in verdicts]
        out.append("</ul>")
    return out


def _warnings(s: RunSummary) -> list[str]:
    n = len(s.unfaithful) + len(s.warnings)
    if not n:
        return ["<h3>Warnings</h3><p>None: every map is faithful and no job logged a "
                "warning.</p>"]  # fmt: skip
    out = [f"<h3>Warnings ({n})</h3>", '<ul class="warnings">']
    out += [
        f'<li>{_e(u)} <span class="kind">(the maps\' diagnosis, metrics.parquet)'
        "</span></li>"
        for u in s.unfaithful
    ]
    out += [
        f'<li>{_e(message)} <span class="kind">({_e(", ".join(rules))})</span></li>'
        for message, rules in s.warnings
    ]
    return [*out, "</ul>"]


def summary_html(s: RunSummary, atlas: str | None) -> list[str]:
    """The summary as HTML elements; `atlas`: the atlas page's address relative to the
    page (None: the maps are named, not linked)."""
    out = ["<h2>Summary</h2>", _dataset(s), *_accuracy(s)]
    if len(s.best_maps):
        out += _best_maps(s, atlas)
    return out + _verdicts(s) + _warnings(s)
