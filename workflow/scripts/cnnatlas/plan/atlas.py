"""What the atlas page (rule write_atlas) shows and reads: every 2-D map of the run, the
feature-space neighbours, the evolution stage's aligned maps, the Grad-CAM folders and
the plotly pages it links."""

import os
from typing import Any, ClassVar

from cnnatlas.plan.names import map_spec
from cnnatlas.plan.stage import Stage

__all__ = ["Atlas"]


class Atlas(Stage):
    """The atlas plan of a run (`plan.atlas`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "atlas": "atlas.html",
        # two maps of the atlas side by side (the landing page's CKA cells link to it)
        "compare": "compare.html",
        # the atlas's data blocks, read as the page needs them (empty for a page that
        # holds them all; viewer.atlas.sidecar_folder names it after the page)
        "atlas_files": "atlas_files",
    }
    RULES: ClassVar[dict[str, str]] = {"write_atlas": ""}

    @property
    def path(self) -> str:
        return self.out("atlas")

    def maps(self) -> list[dict[str, Any]]:
        """Every 2-D map: [{model, ckpt, layer, method, perplexity, seed, embedding}]
        (perplexity, seed: None for an axis the method lacks)."""
        plan = self.plan
        specs = {p: map_spec(*p) for p in plan.maps.params() if p[1] == "2"}
        return [
            {
                "model": m,
                "ckpt": c,
                "layer": layer,
                "method": p[0],
                "perplexity": spec.perplexity,
                "seed": spec.seed,
                "embedding": plan.maps.embedding(m, c, layer, *p),
            }
            for m, c in plan.model_ckpts()
            for layer in plan.model_layer_list(m)
            for p, spec in specs.items()
        ]

    def evolution(self) -> list[dict[str, Any]]:
        """The aligned maps of the evolution stage, one entry per (model, layer, method)."""
        plan, evo = self.plan, self.plan.evolution
        if not evo.config["enabled"]:
            return []
        return [
            {
                "model": m,
                "layer": layer,
                "method": method,
                "perplexity": evo.config["perplexity"],
                "seed": evo.config["seed"],
                "ckpts": list(plan.models[m]["checkpoints"]),
                "dir": evo.path("maps", m, layer, method),
            }
            for m, layer, method in evo.jobs()
        ]

    def explain(self) -> list[dict[str, str]]:
        """The explain stage's saliency overlay folders: [{model, ckpt, dir}]."""
        explain = self.plan.explain
        made, out = set(explain.targets()), []
        for m, c in self.plan.model_ckpts():
            folder = explain.out("saliency", model=m, ckpt=c)
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
        for f in plan.evolution.targets():
            if f.endswith("slider.html"):
                model, _, layer, method, _ = f.split("/")[-5:]
                pages.append((f, f"evolution {model} {layer} {method}"))
        return [
            {"label": label, "href": os.path.relpath(f, plan.results)}
            for f, label in pages
        ]

    def inputs(self) -> dict[str, Any]:
        """What write_atlas's `write_atlas` call takes besides manifest, metrics, sheets."""
        plan, metrics = self.plan, self.plan.metrics
        return {
            "predictions": {
                f"{m}/{c}": plan.extract.predictions(m, c)
                for m, c in plan.model_ckpts()
            },
            "maps": self.maps(),
            "neighbors": [
                {
                    "model": m,
                    "ckpt": c,
                    "layer": layer,
                    "path": metrics.neighbors(m, c, layer),
                    "distances": metrics.distances(m, c, layer),
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
