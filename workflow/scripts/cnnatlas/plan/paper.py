"""The paper figures of the config's `paper:` section: the one table of figure kinds.

Each kind (`KINDS`) says how an entry of `paper.figures` is resolved against the run
(which checkpoints, layers and files it shows; names checked, so a bad one fails when
the workflow is parsed), which files its job reads (only those), and which function
draws it, by its dotted path (`cnnatlas.paper:draw_grid`): the drawing job imports it
(`cnnatlas.paper.draw_figure`), the planner never does, so matplotlib, pandas and torch
stay out of it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cnnatlas.maps import AXES, get_method, map_values
from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage
from cnnatlas.precomputed import FEATURES_FROM, imported

__all__ = ["PaperKind", "KINDS", "Paper"]

FONT_KEYS = ("font_size", "title_size", "letter_size")


@dataclass(frozen=True)
class PaperKind:
    """resolve(paper, name, entry, model spec) -> the kind's fields of the resolved
    figure; inputs(figure) -> the files its job reads; draw: `module:function` of the
    function that draws it, draw(figure, fonts) -> a matplotlib Figure; shows: what the
    figure shows, a template of the entry's fields (its caption)."""

    resolve: Callable[["Paper", str, dict[str, Any], Mapping[str, Any]], dict]
    inputs: Callable[[Mapping[str, Any]], list[str]]
    draw: str
    shows: str


def _error(name: str, key: str, value: Any, known: Any) -> ValueError:
    return ValueError(
        f"paper.figures.{name}.{key}: {value!r} is not one of {list(known)}; fix the config"
    )


def _pick(name: str, key: str, values: Any, known: Any) -> list:
    for v in values:
        if v not in known:
            raise _error(name, key, v, known)
    return list(values)


class Paper(Stage):
    """The paper-figure plan of a run (`plan.paper`; rule draw_paper_figure)."""

    PATHS: ClassVar[dict[str, str]] = {
        "pdf": "paper/{name}.pdf",
        "png": "paper/{name}.png",
    }
    RULES: ClassVar[dict[str, str]] = {"draw_paper_figure": "{name}"}

    SECTION = "paper"

    def check(self) -> None:
        for name in self.config["figures"]:
            self.figure(name)  # bad names fail when the workflow is parsed

    @property
    def fonts(self) -> dict[str, Any]:
        return {k: self.config[k] for k in FONT_KEYS}

    def map_path(
        self, model: str, ckpt: str, layer: str, method: str, perplexity: Any, seed: Any
    ) -> str:
        """The embedding of a 2-D map; the values of axes the method lacks are ignored."""
        spec = get_method(method).spec(2, perplexity, seed)
        return self.plan.maps.embedding(model, ckpt, layer, method, *map_values(spec))

    def check_axes(self, name: str, method: str, values: Mapping[str, list]) -> None:
        """Each value of an axis the method sweeps must be one the maps stage makes."""
        maps = self.plan.maps.config
        for axis in get_method(method).axes:
            _pick(name, axis, values[axis], maps[AXES[axis]])

    def _entry(self, name: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
        """A `paper.figures` entry with its checkpoint and layer filled in, and its
        model's spec; names checked."""
        figures = self.config["figures"]
        if name not in figures:
            raise ValueError(f"paper.figures has no figure {name!r}")
        f = dict(figures[name])
        models = self.plan.models
        if f["model"] not in models:
            raise _error(name, "model", f["model"], models)
        m = models[f["model"]]
        f["checkpoint"] = f["checkpoint"] or list(m["checkpoints"])[-1]
        f["layer"] = f["layer"] or list(m["layers"])[-1]
        _pick(name, "checkpoint", [f["checkpoint"]], m["checkpoints"])
        _pick(name, "layer", [f["layer"]], m["layers"])
        return f, m

    def figure(self, name: str) -> dict[str, Any]:
        """A `paper.figures` entry resolved: names checked, files listed."""
        f, m = self._entry(name)
        out = {"kind": f["kind"], "width": f["width"], "colour_by": f["colour_by"]}
        out.update(KINDS[f["kind"]].resolve(self, name, f, m))
        return out

    def inputs(self, wildcards: Wildcards) -> list[str]:
        """The files one paper figure is drawn from (only those)."""
        f = self.figure(wildcards.name)
        return sorted(set(KINDS[f["kind"]].inputs(f)))

    def params(self, wildcards: Wildcards) -> dict[str, Any]:
        return self.figure(wildcards.name)

    def captions(self) -> dict[str, str]:
        """Each figure's PNG -> what it shows (its kind's words, filled from its entry)."""
        out = {}
        for name in self.config["figures"]:
            f, _ = self._entry(name)
            out[self.out("png", name=name)] = KINDS[f["kind"]].shows.format(**f)
        return out

    def targets(self) -> list[str]:
        return [
            self.out(ext, name=name)
            for name in self.config["figures"]
            for ext in ("pdf", "png")
        ]


# --- embedding grids: layer_grid (checkpoints x layers), perplexity_sweep ---


def _checkpoints_layers(name: str, f: Mapping, m: Mapping) -> tuple[list, list]:
    ckpts = _pick(
        name, "checkpoints", f["checkpoints"] or m["checkpoints"], m["checkpoints"]
    )
    layers = _pick(name, "layers", f["layers"] or m["layers"], m["layers"])
    return ckpts, layers


def _grid(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    ckpts, layers = _checkpoints_layers(name, f, m)
    maps = paper.plan.maps.config
    method = _pick(name, "method", [f["method"]], maps["methods"])[0]
    perp = f["perplexity"] if f["perplexity"] is not None else maps["perplexities"][0]
    seed = f["seed"] if f["seed"] is not None else maps["seeds"][0]
    paper.check_axes(name, method, {"perplexity": [perp], "seed": [seed]})
    run = paper.plan
    panels = [
        {
            "row": c,
            "col": layer,
            "embedding": paper.map_path(f["model"], c, layer, method, perp, seed),
            "predictions": run.extract.predictions(f["model"], c),
        }
        for c in ckpts
        for layer in layers
    ]
    return {"rows": ckpts, "cols": layers, "panels": panels}


def _sweep(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    maps, method = paper.plan.maps.config, f["method"]
    perps = f["perplexities"] or maps["perplexities"]
    seeds = f["seeds"] or maps["seeds"]
    _pick(name, "perplexities", perps, maps["perplexities"])
    _pick(name, "seeds", seeds, maps["seeds"])
    if method not in maps["methods"] or "perplexity" not in get_method(method).axes:
        raise _error(
            name, "kind", f"perplexity_sweep (needs {method})", maps["methods"]
        )
    ckpt, layer, spec = f["checkpoint"], f["layer"], get_method(method).spec
    panels = [
        {
            "row": spec(2, seed=s).label(),
            "col": spec(2, perplexity=p).label(),
            "embedding": paper.map_path(f["model"], ckpt, layer, method, p, s),
            "predictions": paper.plan.extract.predictions(f["model"], ckpt),
        }
        for s in seeds
        for p in perps
    ]
    cols = [spec(2, perplexity=p).label() for p in perps]
    return {
        "rows": [spec(2, seed=s).label() for s in seeds],
        "cols": cols,
        "panels": panels,
    }


def _panel_files(figure: Mapping[str, Any]) -> list[str]:
    return [p[k] for p in figure["panels"] for k in ("embedding", "predictions")]


# --- separation: kNN accuracy per layer from the maps stage's metrics ---


def _separation(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    ckpts, layers = _checkpoints_layers(name, f, m)
    metrics = [
        paper.plan.metrics.layer_path(f["model"], c, layer)
        for c in ckpts
        for layer in layers
    ]
    return {"checkpoints": ckpts, "layers": layers, "metrics": metrics}


# --- saliency, filters: recomputed from the checkpoint ---


def _needs_network(name: str, f: Mapping, m: Mapping) -> None:
    """A kind drawn from the network (or the explain stage) has none to draw from for
    a model whose features were imported."""
    if imported(m):
        raise ValueError(
            f"paper.figures.{name}.kind: {f['kind']} needs the network, but "
            f"models.{f['model']}.{FEATURES_FROM} imports its features; remove the "
            "figure or use a kind drawn from the maps (layer_grid, perplexity_sweep, "
            "separation, similarity)"
        )


def _model(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    _needs_network(name, f, m)
    explain = paper.plan.explain.config
    return {
        "spec": m,
        "checkpoint": m["checkpoints"][f["checkpoint"]],
        "predictions": paper.plan.extract.predictions(f["model"], f["checkpoint"]),
        "device": paper.plan.config["extract"]["device"],
        "image_ids": f["image_ids"],
        "target_layer": f["target_layer"] or explain["saliency"]["target_layer"],
        "layer": f["layer"],
        "channels": f["channels"],
        "columns": f["columns"],
        "options": explain["filters"],
    }


def _model_files(figure: Mapping[str, Any]) -> list[str]:
    return [figure["checkpoint"], figure["predictions"]]


# --- saliency checks: drawn from the tables of the explain stage's check_saliency ---


def _saliency(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    _needs_network(name, f, m)
    model, ckpt = f["model"], f["checkpoint"]
    return {
        k: paper.plan.explain.trust_file(model, ckpt, k)
        for k in ("curves", "randomisation", "cascade")
    }


# --- similarity: CKA matrices from the similarity stage's table of the model ---


def _similarity(paper: Paper, name: str, f: dict, m: Mapping) -> dict[str, Any]:
    sim = paper.plan.similarity
    if not sim.enabled:
        raise ValueError(
            f"paper.figures.{name}: kind similarity needs the similarity stage; set "
            "similarity.enabled: true or remove the figure"
        )
    ckpts, layers = _checkpoints_layers(name, f, m)
    if f["comparison"] == "checkpoints" and len(m["checkpoints"]) < 2:
        raise ValueError(
            f"paper.figures.{name}: comparison checkpoints needs a model with 2 or "
            f"more checkpoints ({f['model']} has one); use comparison: layers"
        )
    return {
        "comparison": f["comparison"],
        "keys": ckpts if f["comparison"] == "layers" else layers,
        "table": sim.out("model_part", model=f["model"]),
    }


KINDS: dict[str, PaperKind] = {
    "layer_grid": PaperKind(
        _grid,
        _panel_files,
        "cnnatlas.paper:draw_grid",
        "{model}: {method} maps, checkpoints x layers",
    ),
    "perplexity_sweep": PaperKind(
        _sweep,
        _panel_files,
        "cnnatlas.paper:draw_grid",
        "{model} {checkpoint} {layer}: {method} maps, seeds x perplexities",
    ),
    "saliency": PaperKind(
        _model,
        _model_files,
        "cnnatlas.paper:draw_saliency",
        "{model} {checkpoint}: Grad-CAM of images",
    ),
    "filters": PaperKind(
        _model,
        _model_files,
        "cnnatlas.paper:draw_filters",
        "{model} {checkpoint} {layer}: images that activate each channel most",
    ),
    "separation": PaperKind(
        _separation,
        lambda f: list(f["metrics"]),
        "cnnatlas.paper:draw_separation",
        "{model}: kNN accuracy in feature space per layer, one line per checkpoint",
    ),
    "saliency_curves": PaperKind(
        _saliency,
        lambda f: [f["curves"]],
        "cnnatlas.paper:draw_saliency_curves",
        "{model} {checkpoint}: deletion and insertion curves of the saliency methods",
    ),
    "saliency_randomisation": PaperKind(
        _saliency,
        lambda f: [f["cascade"], f["randomisation"]],
        "cnnatlas.paper:draw_saliency_randomisation",
        "{model} {checkpoint}: saliency maps as the layers are randomised",
    ),
    "similarity": PaperKind(
        _similarity,
        lambda f: [f["table"]],
        "cnnatlas.paper:draw_similarity",
        "{model}: linear CKA between {comparison}",
    ),
}
