"""What the training-evolution stage (rules align_evolution, plot_evolution) reads and
writes: one layer's maps across a model's checkpoints (config order), aligned so that
points can be followed, and the figures that show them."""

from typing import Any, ClassVar

from cnnatlas.maps import methods
from cnnatlas.plan.names import Wildcards, alternatives
from cnnatlas.plan.stage import Stage

__all__ = ["Evolution"]

_DIR = "{model}/evolution/{layer}/{method}"


class Evolution(Stage):
    """The training-evolution plan of a run (`plan.evolution`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "maps": f"{_DIR}/maps",
        "alignment": f"{_DIR}/alignment.parquet",
        "strip_png": f"{_DIR}/strip.png",
        "strip_pdf": f"{_DIR}/strip.pdf",
        "animation": f"{_DIR}/animation.gif",
        "html": f"{_DIR}/slider.html",
    }
    RULES: ClassVar[dict[str, str]] = {
        "align_evolution": "{model}/{layer}/{method}",
        "plot_evolution": "{model}/{layer}/{method}",
    }
    # the targets of each evolution job, in this order
    TARGETS = ("strip_png", "animation", "html", "alignment")

    SECTION = "evolution"

    def layers(self, model: str) -> list[str]:
        """The evolution layers of one model: evolution.layers that it has (all if null)."""
        layers = self.plan.models[model]["layers"]
        wanted = self.config["layers"]
        return list(layers) if wanted is None else [x for x in wanted if x in layers]

    def check(self) -> None:
        known = {x for spec in self.plan.models.values() for x in spec["layers"]}
        unknown = [x for x in self.config["layers"] or [] if x not in known]
        if unknown:
            raise ValueError(
                f"config evolution.layers {unknown} are not layers of any model "
                f"(configured layers: {sorted(known)}); fix evolution.layers"
            )

    def method_names(self) -> str:
        """A wildcard constraint: the methods with a training evolution."""
        return alternatives(m for m, x in methods().items() if x.evolve is not None)

    def feature_dirs(self, wildcards: Wildcards) -> list[str]:
        m, extract = wildcards.model, self.plan.extract
        return [
            extract.features_dir(m, c) for c in self.plan.model_ckpt_names(wildcards)
        ]

    def feature_files(self, wildcards: Wildcards) -> dict[str, str]:
        w, extract = wildcards, self.plan.extract
        return {
            c: extract.features_file(w.model, c, w.layer)
            for c in self.plan.model_ckpt_names(w)
        }

    def prediction_files(self, wildcards: Wildcards) -> dict[str, str]:
        m, extract = wildcards.model, self.plan.extract
        return {
            c: extract.predictions(m, c) for c in self.plan.model_ckpt_names(wildcards)
        }

    def predictions(self, wildcards: Wildcards) -> list[str]:
        return list(self.prediction_files(wildcards).values())

    def options(self, wildcards: Wildcards) -> dict[str, Any]:
        """The maps stage's options of the method, with the evolution's iteration count
        where the method has one."""
        opts = dict(self.plan.maps.config[wildcards.method])
        if "n_iter" in opts:
            opts["n_iter"] = self.config["n_iter"]
        return opts

    def title(self, wildcards: Wildcards) -> str:
        w = wildcards
        return f"{w.model} {w.layer} ({w.method}, aligned)"

    def jobs(self) -> list[tuple[str, str, str]]:
        """(model, layer, method) of every evolution layer and method of each model with
        2+ checkpoints; none when the stage is off."""
        if not self.config["enabled"]:
            return []
        return [
            (m, layer, method)
            for m, spec in self.plan.models.items()
            if len(spec["checkpoints"]) >= 2
            for layer in self.layers(m)
            for method in self.config["methods"]
        ]

    def path(self, name: str, model: str, layer: str, method: str) -> str:
        """Output `name` of one evolution job."""
        return self.out(name, model=model, layer=layer, method=method)

    def targets(self) -> list[str]:
        """Figures of every evolution job (`jobs`)."""
        return [self.path(name, *job) for job in self.jobs() for name in self.TARGETS]
