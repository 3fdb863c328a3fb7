"""What the projector stage (rule export_projector) reads and writes: per checkpoint a
TensorBoard Embedding Projector export of every layer's features, with its maps as
extra tensors."""

from typing import ClassVar

from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage

__all__ = ["Projector"]


class Projector(Stage):
    """The projector plan of a run (`plan.projector`)."""

    PATHS: ClassVar[dict[str, str]] = {"projector": "{model}/{ckpt}/projector"}
    RULES: ClassVar[dict[str, str]] = {"export_projector": "{model}/{ckpt}"}

    SECTION = "projector"

    def features(self, wildcards: Wildcards) -> dict[str, str]:
        """layer -> features .npy of one checkpoint, for every configured layer."""
        w = wildcards
        return {
            layer: self.plan.extract.features_file(w.model, w.ckpt, layer)
            for layer in self.plan.model_layers(w)
        }

    def maps(self, wildcards: Wildcards) -> dict[str, list[str]]:
        """layer -> the checkpoint's embedding Parquets exported as extra tensors."""
        if not self.config["maps"]:
            return {}
        w = wildcards
        return {
            layer: self.plan.maps.layer_paths(w.model, w.ckpt, layer)
            for layer in self.plan.model_layers(w)
        }

    def map_files(self, wildcards: Wildcards) -> list[str]:
        return [p for paths in self.maps(wildcards).values() for p in paths]

    def targets(self) -> list[str]:
        if not self.config["enabled"]:
            return []
        return [
            self.out("projector", model=m, ckpt=c) for m, c in self.plan.model_ckpts()
        ]
