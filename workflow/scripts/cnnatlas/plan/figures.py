"""Which figures the config asks for (`figures:`), and what each plotting job draws."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cnnatlas.maps import get_method
from cnnatlas.plan.names import Wildcards, map_name, map_spec

if TYPE_CHECKING:
    from cnnatlas.plan.core import Plan

__all__ = ["Figures", "map_title", "map_words"]

MapKey = tuple[str, str, str, str]  # (method, dim, perplexity, seed) as in file names


def _fill(template: str, model: str, ckpt: str, layer: str) -> str:
    return (
        template.replace("{model}", model)
        .replace("{ckpt}", ckpt)
        .replace("{layer}", layer)
    )


class Figures:
    """The figure plan of a run (`plan.figures`)."""

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self.config: Mapping[str, Any] = plan.config["figures"]
        self.layer_dir = f"{plan.results}/{{model}}/{{ckpt}}/figures/{{layer}}"
        self.sheets = f"{plan.results}/thumbnails"

    def selected_maps(self, section: str) -> list[MapKey]:
        """The configured maps that figures.<section> selects.

        sweep: first keeps the first perplexity and seed of each (method, dim) only.
        """
        sel = self.config[section]
        seen, out = set(), []
        for method, dim, perp, seed in self.plan.map_params():
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
        for method, dim, perp, seed in self.plan.map_params():
            if method in sel["methods"] and int(dim) in sel["dims"]:
                sweeps.setdefault((method, dim), []).append((perp, seed))
        return {k: v for k, v in sweeps.items() if len(v) > 1}

    # --- per-layer figures (plot_embeddings), as {model}/{ckpt}/{layer} templates ---

    def static_files(self, ext: str) -> list[str]:
        return [
            f"{self.layer_dir}/{map_name(*p)}.{colour}.{ext}"
            for p in self.selected_maps("maps")
            for colour in self.config["colour_by"]
        ]

    def static_report(self) -> list[tuple[str, dict[str, str]]]:
        """The static PNGs with their labels in Snakemake's report."""
        return [
            (
                f"{self.layer_dir}/{map_name(*p)}.{colour}.png",
                {"layer": "{layer}", "map": map_name(*p), "colour by": colour},
            )
            for p in self.selected_maps("maps")
            for colour in self.config["colour_by"]
        ]

    def html_files(self) -> list[str]:
        return [
            f"{self.layer_dir}/{map_name(*p)}.html" for p in self.selected_maps("html")
        ]

    def sweep_files(self, ext: str) -> list[str]:
        return [f"{self.layer_dir}/sweep-{m}-{d}d.{ext}" for m, d in self.swept()]

    def sweep_report(self) -> list[tuple[str, dict[str, str]]]:
        """The sweep grids' PNGs with their labels in Snakemake's report."""
        return [
            (
                f"{self.layer_dir}/sweep-{method}-{dim}d.png",
                {"layer": "{layer}", "map": f"{method} {dim}-D"},
            )
            for method, dim in self.swept()
        ]

    def layer_maps(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """What one layer's job draws: per selected map its embedding, title and files."""
        w, plan = wildcards, self.plan
        fig = f"{plan.run_dir(w.model, w.ckpt)}/figures/{w.layer}"
        static, html = self.selected_maps("maps"), self.selected_maps("html")
        out = []
        for p in dict.fromkeys([*static, *html]):
            name = f"{fig}/{map_name(*p)}"
            colours = self.config["colour_by"] if p in static else []
            out.append(
                {
                    "embedding": plan.embedding_path(w.model, w.ckpt, w.layer, *p),
                    "title": map_title(w.model, w.ckpt, w.layer, *p),
                    "png": [f"{name}.{c}.png" for c in colours],
                    "pdf": [f"{name}.{c}.pdf" for c in colours],
                    "html": f"{name}.html" if p in html else None,
                }
            )
        return out

    def layer_sweeps(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """Sweep grids of one layer: rows are perplexities, columns seeds."""
        w, plan = wildcards, self.plan
        fig = f"{plan.run_dir(w.model, w.ckpt)}/figures/{w.layer}"
        pred = plan.predictions_path(w.model, w.ckpt)
        out = []
        for (method, dim), maps in self.swept().items():
            perps = list(dict.fromkeys(p for p, _ in maps))
            seeds = list(dict.fromkeys(s for _, s in maps))
            path = {
                (p, s): plan.embedding_path(w.model, w.ckpt, w.layer, method, dim, p, s)
                for p, s in maps
            }
            spec = get_method(method).spec
            out.append(
                {
                    "png": f"{fig}/sweep-{method}-{dim}d.png",
                    "pdf": f"{fig}/sweep-{method}-{dim}d.pdf",
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

    def job_log(self, kind: str) -> str:
        """plot_embeddings' log (kind 'logs') or benchmark ('benchmarks') file."""
        ext = "log" if kind == "logs" else "tsv"
        return f"{self.plan.results}/{kind}/plot_embeddings/{self.plan.job_where}.{ext}"

    def layer_sheets(self, wildcards: Wildcards) -> list[str]:
        return [self.sheets] if self.html_files() else []

    # --- per-model checkpoint x layer grids ---

    def grid_maps(self) -> list[MapKey]:
        """The map of each model's grids: the first of each selected (method, dim)."""
        return self.selected_maps("checkpoint_layer_grids")

    def grid_files(self, ext: str) -> list[str]:
        return [
            f"{self.plan.results}/{{model}}/figures/grid-{map_name(*p)}.{ext}"
            for p in self.grid_maps()
        ]

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
                "png": f"{plan.results}/{m}/figures/grid-{map_name(*p)}.png",
                "pdf": f"{plan.results}/{m}/figures/grid-{map_name(*p)}.pdf",
                "cells": [
                    [
                        (
                            "",
                            plan.embedding_path(m, c, layer, *p),
                            plan.predictions_path(m, c),
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
            _fill(t, m, c, layer)
            for m, c in plan.model_ckpts()
            for layer in plan.model_layer_list(m)
            for t in self.layer_templates()
        ]
        for m in self.grid_models():
            for p in self.grid_maps():
                out += [
                    f"{plan.results}/{m}/figures/grid-{map_name(*p)}.{e}"
                    for e in ("png", "pdf")
                ]
        return out


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
