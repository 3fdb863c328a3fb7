"""What the similarity stage (rules measure_similarity, compare_models,
gather_similarity) reads and writes: per model, its features in every checkpoint; per
pair of models, their last checkpoints' features; the gathered table, its summary and
the heat maps."""

from itertools import combinations
from typing import Any, ClassVar

from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage

__all__ = ["Similarity"]


class Similarity(Stage):
    """The similarity plan of a run (`plan.similarity`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "model_part": "similarity/parts/{model}.parquet",
        "pair_part": "similarity/parts/pairs/{model}/{other}.parquet",
        "table": "similarity/cka.parquet",
        "summary": "similarity/summary.json",
        "figures": "similarity/figures",
    }
    RULES: ClassVar[dict[str, str]] = {
        "measure_similarity": "{model}",
        "compare_models": "{model}/{other}",
        "gather_similarity": "",
    }

    SECTION = "similarity"

    @property
    def options(self) -> dict[str, Any]:
        """The similarity section of the config, as the rules' params."""
        return dict(self.config)

    @property
    def enabled(self) -> bool:
        return bool(self.config["enabled"])

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair of models, in config order."""
        return list(combinations(self.plan.models, 2))

    def parts(self) -> list[str]:
        """The tables gather_similarity joins: one per model, one per pair."""
        models = [self.out("model_part", model=m) for m in self.plan.models]
        pairs = [self.out("pair_part", model=a, other=b) for a, b in self.pairs()]
        return models + pairs

    def targets(self) -> list[str]:
        outputs = ("table", "summary", "figures")
        return [self.out(name) for name in outputs] if self.enabled else []

    def _dirs(self, model: str, ckpts: list[str]) -> list[str]:
        return [self.plan.extract.features_dir(model, c) for c in ckpts]

    def _files(self, model: str, ckpt: str) -> dict[str, str]:
        return {
            layer: self.plan.extract.features_file(model, ckpt, layer)
            for layer in self.plan.model_layer_list(model)
        }

    def _last(self, model: str) -> str:
        return list(self.plan.models[model]["checkpoints"])[-1]

    def model_feature_dirs(self, wildcards: Wildcards) -> list[str]:
        m = wildcards.model
        return self._dirs(m, list(self.plan.models[m]["checkpoints"]))

    def model_features(self, wildcards: Wildcards) -> dict[str, dict[str, str]]:
        """{ckpt: {layer: features file}} in the order of training and of the network."""
        m = wildcards.model
        return {c: self._files(m, c) for c in self.plan.models[m]["checkpoints"]}

    def pair_feature_dirs(self, wildcards: Wildcards) -> list[str]:
        a, b = wildcards.model, wildcards.other
        return self._dirs(a, [self._last(a)]) + self._dirs(b, [self._last(b)])

    def pair_features(self, wildcards: Wildcards) -> list[list[Any]]:
        """[[model, last ckpt, {layer: file}]] of the two models."""
        return [
            [m, self._last(m), self._files(m, self._last(m))]
            for m in (wildcards.model, wildcards.other)
        ]

    def captions(self) -> dict[str, str]:
        """Each heat map's PNG (gather_similarity's figures) -> what it shows."""
        out, figures = {}, self.out("figures")
        for m in self.plan.models:
            out[f"{figures}/{m}-layers.png"] = (
                f"{m}: linear CKA between layers, per checkpoint"
            )
            out[f"{figures}/{m}-checkpoints.png"] = (
                f"{m}: linear CKA of each layer between checkpoints"
            )
        for a, b in self.pairs():
            out[f"{figures}/{a}-vs-{b}.png"] = (
                f"linear CKA between the layers of {a} and {b} (last checkpoints)"
            )
        return out

    def index_inputs(self, wildcards: Wildcards | None = None) -> dict[str, str]:
        """The landing page's similarity input (none when the stage is off)."""
        return {"similarity": self.out("summary")} if self.enabled else {}
