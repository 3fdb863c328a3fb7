"""The run a validated config describes: its models, checkpoints and layers, the
wildcards every stage shares, and the stage planners (`plan/<stage>.py`, one per rule
file `workflow/rules/<stage>.smk`), each owning every path of its stage's rules.

`Plan(config)` is built once when Snakemake parses the workflow (after `validate` has
filled the schema's defaults). Its methods that take `wildcards` are the rules' input
and params functions: they read only the wildcards' attributes (model, ckpt, layer,
method, name), so tests call them with a SimpleNamespace.
"""

from collections.abc import Mapping
from typing import Any

from cnnatlas.maps import methods
from cnnatlas.plan.atlas import Atlas
from cnnatlas.plan.demo import Demo
from cnnatlas.plan.evolution import Evolution
from cnnatlas.plan.explain import Explain
from cnnatlas.plan.extract import Extract
from cnnatlas.plan.figures import Figures
from cnnatlas.plan.index import Index
from cnnatlas.plan.maps import Maps
from cnnatlas.plan.metrics import Metrics
from cnnatlas.plan.names import Wildcards, alternatives
from cnnatlas.plan.paper import Paper
from cnnatlas.plan.projector import Projector
from cnnatlas.plan.provenance import Provenance
from cnnatlas.plan.similarity import Similarity
from cnnatlas.plan.stage import Stage
from cnnatlas.precomputed import complete_models, imported
from cnnatlas.project import model_files

__all__ = ["Plan"]


class Plan:
    """The run a validated config describes (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        # an imported model's checkpoints are its folders' names unless given
        complete_models(config["models"])
        self.results: str = config["results"]
        self.models: Mapping[str, Any] = config["models"]
        self.layer_jobs: str = self._layer_jobs(config["layer_jobs"])
        # in the order data flows; each checks its part of the config when made
        self.demo = Demo(self)
        self.extract = Extract(self)
        self.maps = Maps(self)
        self.metrics = Metrics(self)
        self.explain = Explain(self)
        self.projector = Projector(self)
        self.evolution = Evolution(self)
        self.similarity = Similarity(self)
        self.figures = Figures(self)
        self.atlas = Atlas(self)
        self.index = Index(self)
        self.paper = Paper(self)
        self.provenance = Provenance(self)

    def stages(self) -> dict[str, Stage]:
        """Every stage planner by its name (that of its rule file)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, Stage)}

    # --- per-layer stages: what one job covers ---

    def _layer_jobs(self, mode: str) -> str:
        """'checkpoint' or 'layer': what one job of a per-layer stage (maps, metrics,
        figures) covers. A checkpoint's job lists every layer among its outputs, so it
        needs every model to have the same layers (auto: checkpoint when they do)."""
        same = len({tuple(m["layers"]) for m in self.models.values()}) == 1
        if mode == "auto":
            return "checkpoint" if same else "layer"
        if mode == "checkpoint" and not same:
            raise ValueError(
                "layer_jobs: checkpoint needs every model to have the same layers; "
                "set layer_jobs: layer (or auto) for models with different layers"
            )
        return mode

    @property
    def job_where(self) -> str:
        """The wildcards of a per-layer stage's job, as a path ({model}/{ckpt}[/{layer}])."""
        return "{model}/{ckpt}" + ("/{layer}" if self.layer_jobs == "layer" else "")

    def job_layer_names(self) -> list[str]:
        """The layers in a per-layer stage's output patterns: '{layer}' (one job per
        layer), or every layer (one job per checkpoint; the models share them)."""
        if self.layer_jobs == "layer":
            return ["{layer}"]
        return self.model_layer_list(next(iter(self.models)))

    def job_layers(self, wildcards: Wildcards) -> list[str]:
        """The layers one job of a per-layer stage handles, in config order."""
        if self.layer_jobs == "layer":
            return [wildcards.layer]
        return self.model_layer_list(wildcards.model)

    def layer_wildcards(self, wildcards: Wildcards) -> list[Wildcards]:
        """One (model, ckpt, layer) namespace per layer of a per-layer stage's job."""
        w = wildcards
        return [
            _Layer(model=w.model, ckpt=w.ckpt, layer=layer)
            for layer in self.job_layers(w)
        ]

    # --- names and wildcards ---

    def wildcard_constraints(self) -> dict[str, str]:
        """model, ckpt, layer and method, each matching exactly the configured names."""
        models = self.models.values()
        return {
            "model": alternatives(self.models),
            "other": alternatives(self.models),
            "ckpt": alternatives(c for m in models for c in m["checkpoints"]),
            "layer": alternatives(lyr for m in models for lyr in m["layers"]),
            "method": alternatives(methods()),
        }

    def model_ckpts(self) -> list[tuple[str, str]]:
        """(model, ckpt) pairs of the config, in config order."""
        return [(m, c) for m, spec in self.models.items() for c in spec["checkpoints"]]

    def model_layer_list(self, model: str) -> list[str]:
        return list(self.models[model]["layers"])

    def checkpoint_file(self, wildcards: Wildcards) -> str:
        return self.models[wildcards.model]["checkpoints"][wildcards.ckpt]

    def model_spec(self, wildcards: Wildcards) -> Mapping[str, Any]:
        return self.models[wildcards.model]

    def model_sources(self, wildcards: Wildcards) -> list[str]:
        """The model's files in the project folder: its module, its class-index file."""
        return model_files(self.models[wildcards.model])

    def model_layers(self, wildcards: Wildcards) -> Mapping[str, str]:
        return self.models[wildcards.model]["layers"]

    def model_ckpt_names(self, wildcards: Wildcards) -> list[str]:
        """The model's checkpoints in config order (the order of training)."""
        return list(self.models[wildcards.model]["checkpoints"])

    def checkpoint_files(self) -> dict[str, str]:
        """{model/ckpt: checkpoint file} of the config; for an imported checkpoint the
        record of its folder's hashes (import_features), so hashing it is cheap."""
        return {
            f"{m}/{c}": self.extract.record(m, c)
            if imported(self.models[m])
            else self.models[m]["checkpoints"][c]
            for m, c in self.model_ckpts()
        }


class _Layer:
    """The wildcards of one layer of a job (attribute access, as Snakemake's)."""

    def __init__(self, model: str, ckpt: str, layer: str) -> None:
        self.model, self.ckpt, self.layer = model, ckpt, layer
