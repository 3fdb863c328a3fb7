"""What the atlas page (rule write_atlas) shows and reads: every 2-D map of the run, the
feature-space neighbours, the evolution stage's aligned maps, the Grad-CAM folders and
the plotly pages it links."""

import os
from typing import TYPE_CHECKING, Any

from cnnatlas.plan.names import map_spec

if TYPE_CHECKING:
    from cnnatlas.plan.core import Plan

__all__ = ["Atlas"]


class Atlas:
    """The atlas plan of a run (`plan.atlas`)."""

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self.path = f"{plan.results}/atlas.html"
        # two maps of the atlas side by side (the landing page's CKA cells link to it)
        self.compare_path = f"{plan.results}/compare.html"

    def neighbors_path(self, model: str, ckpt: str, layer: str) -> str:
        """Each image's feature-space neighbours (written by measure_maps)."""
        return self.plan.neighbors_path(model, ckpt, layer)

    def maps(self) -> list[dict[str, Any]]:
        """Every 2-D map: [{model, ckpt, layer, method, perplexity, seed, embedding}]
        (perplexity, seed: None for an axis the method lacks)."""
        plan = self.plan
        specs = {p: map_spec(*p) for p in plan.map_params() if p[1] == "2"}
        return [
            {
                "model": m,
                "ckpt": c,
                "layer": layer,
                "method": p[0],
                "perplexity": spec.perplexity,
                "seed": spec.seed,
                "embedding": plan.embedding_path(m, c, layer, *p),
            }
            for m, c in plan.model_ckpts()
            for layer in plan.model_layer_list(m)
            for p, spec in specs.items()
        ]

    def evolution(self) -> list[dict[str, Any]]:
        """The aligned maps of the evolution stage, one entry per (model, layer, method)."""
        plan, evo = self.plan, self.plan.evolution
        if not evo["enabled"]:
            return []
        return [
            {
                "model": m,
                "layer": layer,
                "method": method,
                "perplexity": evo["perplexity"],
                "seed": evo["seed"],
                "ckpts": list(spec["checkpoints"]),
                "dir": f"{plan.results}/{m}/evolution/{layer}/{method}/maps",
            }
            for m, spec in plan.models.items()
            if len(spec["checkpoints"]) >= 2
            for layer in plan.evolution_layers(m)
            for method in evo["methods"]
        ]

    def explain(self) -> list[dict[str, str]]:
        """The explain stage's saliency overlay folders: [{model, ckpt, dir}]."""
        made = set(self.plan.explain_targets())
        out = []
        for m, c in self.plan.model_ckpts():
            folder = f"{self.plan.run_dir(m, c)}/explain/saliency"
            if folder in made:
                out.append({"model": m, "ckpt": c, "dir": folder})
        return out

    def links(self) -> list[dict[str, str]]:
        """The plotly pages (3-D maps) and evolution sliders, relative to the atlas."""
        plan, pages = self.plan, []
        for f in self.plan.figures.targets():
            if f.endswith(".html"):
                model, ckpt, _, layer, name = f.split("/")[-5:]
                pages.append((f, f"{model} {ckpt} {layer} {name[:-5]}"))
        for f in plan.evolution_targets():
            if f.endswith("slider.html"):
                model, _, layer, method, _ = f.split("/")[-5:]
                pages.append((f, f"evolution {model} {layer} {method}"))
        return [
            {"label": label, "href": os.path.relpath(f, plan.results)}
            for f, label in pages
        ]

    def inputs(self) -> dict[str, Any]:
        """What write_atlas's `write_atlas` call takes besides manifest, metrics, sheets."""
        plan = self.plan
        return {
            "predictions": {
                f"{m}/{c}": plan.predictions_path(m, c) for m, c in plan.model_ckpts()
            },
            "maps": self.maps(),
            "neighbors": [
                {
                    "model": m,
                    "ckpt": c,
                    "layer": layer,
                    "path": self.neighbors_path(m, c, layer),
                    "distances": plan.distances_path(m, c, layer),
                }
                for m, c in plan.model_ckpts()
                for layer in plan.model_layer_list(m)
            ],  # fmt: skip
            "evolution": self.evolution(),
            "explain": self.explain(),
            "links": self.links(),
        }

    def files(self) -> list[str]:
        """The files and folders of `inputs`, as rule inputs."""
        p = self.inputs()
        files = list(p["predictions"].values())
        files += [m["embedding"] for m in p["maps"]]
        files += [f for n in p["neighbors"] for f in (n["path"], n["distances"])]
        return files + [e["dir"] for e in p["evolution"] + p["explain"]]
