"""Which figures the config asks for (`figures:`), and what each plotting job draws
(rules make_thumbnail_sheets, plot_embeddings, plot_checkpoint_layer_grids)."""

from typing import Any, ClassVar

from cnnatlas.maps import get_method
from cnnatlas.plan.maps import MapKey
from cnnatlas.plan.names import Wildcards, map_name, map_spec
from cnnatlas.plan.stage import Stage, fill

__all__ = ["Figures", "map_title", "map_words"]

_LAYER = "{model}/{ckpt}/figures/{layer}"


class Figures(Stage):
    """The figure plan of a run (`plan.figures`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "sheets": "thumbnails",
        # {map}: map_name(method, dim, perplexity, seed); {colour}: figures.colour_by
        "static": f"{_LAYER}/{{map}}.{{colour}}.{{ext}}",
        "html": f"{_LAYER}/{{map}}.html",
        # {sweep}: {method}-{dim}d
        "sweep": f"{_LAYER}/sweep-{{sweep}}.{{ext}}",
        "grid": "{model}/figures/grid-{map}.{ext}",
    }
    RULES: ClassVar[dict[str, str]] = {
        "make_thumbnail_sheets": "",
        "plot_embeddings": "{job}",
        "plot_checkpoint_layer_grids": "{model}",
    }

    SECTION = "figures"

    @property
    def sheets(self) -> str:
        """The thumbnail sheets' folder (make_thumbnail_sheets)."""
        return self.out("sheets")

    def selected_maps(self, section: str) -> list[MapKey]:
        """The configured maps that figures.<section> selects.

        sweep: first keeps the first perplexity and seed of each (method, dim) only.
        """
        sel = self.config[section]
        seen, out = set(), []
        for method, dim, perp, seed in self.plan.maps.params():
            if method not in sel["methods"] or int(dim) not in sel["dims"]:
                continue
            if sel.get("sweep", "first") == "first" and (method, dim) in seen:
                continue
            seen.add((method, dim))
            out.append((method, dim, perp, seed))
        return out

    def swept(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(method, dim) -> [(perplexity, seed)] of the methods figures.sweep_grids
        selects that have more than one map."""
        sel = self.config["sweep_grids"]
        sweeps: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for method, dim, perp, seed in self.plan.maps.params():
            if method in sel["methods"] and int(dim) in sel["dims"]:
                sweeps.setdefault((method, dim), []).append((perp, seed))
        return {k: v for k, v in sweeps.items() if len(v) > 1}

    # --- per-layer figures (plot_embeddings), as {model}/{ckpt}/{layer} templates ---

    def static_files(self, ext: str) -> list[str]:
        return [
            self.out("static", map=map_name(*p), colour=colour, ext=ext)
            for p in self.selected_maps("maps")
            for colour in self.config["colour_by"]
        ]

    def static_report(self) -> list[tuple[str, dict[str, str]]]:
        """The static PNGs with their labels in Snakemake's report."""
        return [
            (
                self.out("static", map=map_name(*p), colour=colour, ext="png"),
                {"layer": "{layer}", "map": map_name(*p), "colour by": colour},
            )
            for p in self.selected_maps("maps")
            for colour in self.config["colour_by"]
        ]

    def html_files(self) -> list[str]:
        return [self.out("html", map=map_name(*p)) for p in self.selected_maps("html")]

    def sweep_files(self, ext: str) -> list[str]:
        return [self.out("sweep", sweep=f"{m}-{d}d", ext=ext) for m, d in self.swept()]

    def sweep_report(self) -> list[tuple[str, dict[str, str]]]:
        """The sweep grids' PNGs with their labels in Snakemake's report."""
        return [
            (
                self.out("sweep", sweep=f"{method}-{dim}d", ext="png"),
                {"layer": "{layer}", "map": f"{method} {dim}-D"},
            )
            for method, dim in self.swept()
        ]

    def layer_maps(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """What one layer's job draws: per selected map its embedding, title and files."""
        w, maps = wildcards, self.plan.maps
        at = {"model": w.model, "ckpt": w.ckpt, "layer": w.layer}
        static, html = self.selected_maps("maps"), self.selected_maps("html")
        out = []
        for p in dict.fromkeys([*static, *html]):
            name = map_name(*p)
            colours = self.config["colour_by"] if p in static else []
            out.append(
                {
                    "embedding": maps.embedding(w.model, w.ckpt, w.layer, *p),
                    "title": map_title(w.model, w.ckpt, w.layer, *p),
                    "png": [
                        self.out("static", **at, map=name, colour=c, ext="png")
                        for c in colours
                    ],
                    "pdf": [
                        self.out("static", **at, map=name, colour=c, ext="pdf")
                        for c in colours
                    ],
                    "html": self.out("html", **at, map=name) if p in html else None,
                }
            )
        return out

    def layer_sweeps(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """Sweep grids of one layer: rows are perplexities, columns seeds."""
        w, embedding = wildcards, self.plan.maps.embedding
        at = {"model": w.model, "ckpt": w.ckpt, "layer": w.layer}
        pred = self.plan.extract.predictions(w.model, w.ckpt)
        out = []
        for (method, dim), maps in self.swept().items():
            perps = list(dict.fromkeys(p for p, _ in maps))
            seeds = list(dict.fromkeys(s for _, s in maps))
            path = {
                (p, s): embedding(w.model, w.ckpt, w.layer, method, dim, p, s)
                for p, s in maps
            }
            spec = get_method(method).spec
            out.append(
                {
                    "png": self.out("sweep", **at, sweep=f"{method}-{dim}d", ext="png"),
                    "pdf": self.out("sweep", **at, sweep=f"{method}-{dim}d", ext="pdf"),
                    "cells": [
                        [
                            (spec(dim, p, s).label(short=True), path[(p, s)], pred)
                            if (p, s) in path
                            else None
                            for s in seeds
                        ]
                        for p in perps
                    ],
                    "rows": [spec(dim, perplexity=p).label() for p in perps],
                    "cols": [spec(dim, seed=s).label() for s in seeds],
                }
            )
        return out

    def layer_embeddings_needed(self, wildcards: Wildcards) -> list[str]:
        paths = [m["embedding"] for m in self.layer_maps(wildcards)]
        for g in self.layer_sweeps(wildcards):
            paths += [c[1] for row in g["cells"] for c in row if c]
        return list(dict.fromkeys(paths))

    def job_outputs(self, items: list) -> list:
        """Per-layer templates (paths, or report items (path, labels)) as the outputs of
        one plot_embeddings job: its {layer}, or every layer (see Plan.layer_jobs)."""
        layers = self.plan.job_layer_names()
        if not items or isinstance(items[0], str):
            return [t.replace("{layer}", layer) for layer in layers for t in items]
        return [
            (
                path.replace("{layer}", layer),
                {k: v.replace("{layer}", layer) for k, v in labels.items()},
            )
            for layer in layers
            for path, labels in items
        ]

    def job_layers(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """What one plot_embeddings job draws: per layer its maps and sweep grids."""
        return [
            {"maps": self.layer_maps(w), "sweeps": self.layer_sweeps(w)}
            for w in self.plan.layer_wildcards(wildcards)
        ]

    def job_embeddings_needed(self, wildcards: Wildcards) -> list[str]:
        """Every embedding one plot_embeddings job reads."""
        paths = [
            p
            for w in self.plan.layer_wildcards(wildcards)
            for p in self.layer_embeddings_needed(w)
        ]
        return list(dict.fromkeys(paths))

    def layer_sheets(self, wildcards: Wildcards) -> list[str]:
        return [self.sheets] if self.html_files() else []

    # --- per-model checkpoint x layer grids ---

    def grid_maps(self) -> list[MapKey]:
        """The map of each model's grids: the first of each selected (method, dim)."""
        return self.selected_maps("checkpoint_layer_grids")

    def grid_files(self, ext: str) -> list[str]:
        return [self.out("grid", map=map_name(*p), ext=ext) for p in self.grid_maps()]

    def grid_report(self) -> list[tuple[str, dict[str, str]]]:
        """The grids' PNGs with their labels in Snakemake's report."""
        return [
            (path, {"model": "{model}", "map": map_name(*p)})
            for path, p in zip(self.grid_files("png"), self.grid_maps(), strict=True)
        ]

    def model_grids(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """Checkpoint x layer grids of one model: rows are checkpoints, columns layers."""
        plan, m = self.plan, wildcards.model
        ckpts, layers = plan.model_ckpt_names(wildcards), plan.model_layer_list(m)
        return [
            {
                "png": self.out("grid", model=m, map=map_name(*p), ext="png"),
                "pdf": self.out("grid", model=m, map=map_name(*p), ext="pdf"),
                "cells": [
                    [
                        (
                            "",
                            plan.maps.embedding(m, c, layer, *p),
                            plan.extract.predictions(m, c),
                        )
                        for layer in layers
                    ]
                    for c in ckpts
                ],
                "rows": ckpts,
                "cols": layers,
            }
            for p in self.grid_maps()
        ]

    def model_grid_inputs(self, wildcards: Wildcards) -> list[str]:
        return list(
            dict.fromkeys(
                f
                for g in self.model_grids(wildcards)
                for row in g["cells"]
                for c in row
                for f in c[1:]
            )
        )

    def layer_templates(self) -> list[str]:
        """Every per-layer figure (plot_embeddings), as {model}/{ckpt}/{layer} templates."""
        per_layer = [*self.static_files("png"), *self.static_files("pdf")]
        per_layer += [*self.html_files(), *self.sweep_files("png")]
        return per_layer + self.sweep_files("pdf")

    def grid_models(self) -> list[str]:
        """The models that get checkpoint x layer grids: more than one panel, and a
        map selected for the grids."""
        if not self.grid_maps():
            return []
        return [
            m
            for m, spec in self.plan.models.items()
            if len(spec["checkpoints"]) * len(spec["layers"]) > 1
        ]

    def targets(self) -> list[str]:
        """Every figure and interactive map of the run."""
        plan = self.plan
        out = [
            fill(t, model=m, ckpt=c, layer=layer)
            for m, c in plan.model_ckpts()
            for layer in plan.model_layer_list(m)
            for t in self.layer_templates()
        ]
        for m in self.grid_models():
            for p in self.grid_maps():
                out += [
                    self.out("grid", model=m, map=map_name(*p), ext=e)
                    for e in ("png", "pdf")
                ]
        return out

    def outputs(self) -> list[str]:
        layer_figures = self.job_outputs(self.layer_templates())
        return [
            self.sheets,
            *layer_figures,
            *self.grid_files("png"),
            *self.grid_files("pdf"),
        ]


def map_words(method: str, dim: str, perp: str, seed: str) -> str:
    """A map in words: its method, dimension and method's sweep axes with their values
    ('tsne 2-D, perplexity 30, seed 0'; 'pca 2-D')."""
    label = map_spec(method, dim, perp, seed).label()
    return f"{method} {dim}-D" + (f", {label}" if label else "")


def map_title(
    model: str, ckpt: str, layer: str, method: str, dim: str, perp: str, seed: str
) -> str:
    """A map's title: which layer, and the map in words (`map_words`)."""
    return f"{model} {ckpt} {layer}: {map_words(method, dim, perp, seed)}"
