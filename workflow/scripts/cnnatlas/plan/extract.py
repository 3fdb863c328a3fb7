"""What the extract stage (rules build_manifest, extract_features, extract_shard,
import_features) writes: the manifest, and per checkpoint its predictions and one
features file per layer, from one forward pass (or from shards of it, gathered), or
for a model with `features_from` imported from its folders, with the record of what
was read."""

from typing import Any, ClassVar

from cnnatlas.plan.names import Wildcards, alternatives
from cnnatlas.plan.stage import Stage
from cnnatlas.precomputed import (
    FEATURES_FROM,
    RECORD,
    dataset_root,
    folder_files,
    imported,
)

# a wildcard constraint no name matches (a rule that makes no file of this run)
_NOTHING = "(?!)"

__all__ = ["Extract"]


class Extract(Stage):
    """The extract plan of a run (`plan.extract`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "manifest": "manifest.parquet",
        "bad_images": "bad_images.parquet",
        "predictions": "{model}/{ckpt}/predictions.parquet",
        "features": "{model}/{ckpt}/features",
        "layer_features": "{model}/{ckpt}/features/{layer}.npy",
        "shard": "{model}/{ckpt}/shards/{shard}-of-{shards}",
        "imported": f"{{model}}/{{ckpt}}/{RECORD}",
    }
    INSIDE = ("layer_features",)
    RULES: ClassVar[dict[str, str]] = {
        "build_manifest": "",
        "extract_features": "{model}/{ckpt}",
        "extract_shard": "{model}/{ckpt}/{shard}-of-{shards}",
        "import_features": "{model}/{ckpt}",
    }

    SECTION = "extract"

    @property
    def shards(self) -> int:
        """How many jobs each checkpoint's forward pass is split into (1: not split)."""
        return int(self.config["shards"])

    def fields(self) -> dict[str, str]:
        return {"shards": str(self.shards)}

    def predictions(self, model: str, ckpt: str) -> str:
        return self.out("predictions", model=model, ckpt=ckpt)

    def features_dir(self, model: str, ckpt: str) -> str:
        return self.out("features", model=model, ckpt=ckpt)

    def features_file(self, model: str, ckpt: str, layer: str) -> str:
        """One layer's features, in the checkpoint's features folder."""
        return self.out("layer_features", model=model, ckpt=ckpt, layer=layer)

    def layer_features(self, wildcards: Wildcards) -> str:
        w = wildcards
        return self.features_file(w.model, w.ckpt, w.layer)

    def all_features_dirs(self) -> list[str]:
        return [self.features_dir(m, c) for m, c in self.plan.model_ckpts()]

    def all_predictions(self) -> list[str]:
        return [self.predictions(m, c) for m, c in self.plan.model_ckpts()]

    def shard_dir(self, model: str, ckpt: str, shard: str) -> str:
        """The outputs of one extraction shard (temporary; gathered by extract_features)."""
        return self.out("shard", model=model, ckpt=ckpt, shard=shard)

    def shard_dirs(self, wildcards: Wildcards) -> list[str]:
        """Every shard of a checkpoint in shard order; none when extraction is not sharded."""
        if self.shards == 1:
            return []
        w = wildcards
        return [self.shard_dir(w.model, w.ckpt, str(i)) for i in range(self.shards)]

    # --- models with features_from: import_features instead of the forward pass ---

    def imported(self, model: str) -> bool:
        """Whether the model's features are imported (`features_from`)."""
        return imported(self.plan.models[model])

    def models(self, imported: bool) -> str:
        """The `model` wildcard constraint of the rules that make a model's features:
        the imported models (import_features) or the others (extract_features)."""
        names = [m for m in self.plan.models if self.imported(m) == imported]
        return alternatives(names) or _NOTHING

    def folder(self, model: str, ckpt: str) -> str:
        """The folder a checkpoint's features are imported from."""
        return self.plan.models[model][FEATURES_FROM][ckpt]

    def import_key(self, wildcards: Wildcards) -> str:
        """The config key of a checkpoint's folder, for error messages."""
        return f"models.{wildcards.model}.{FEATURES_FROM}.{wildcards.ckpt}"

    def import_folder(self, wildcards: Wildcards) -> str:
        return self.folder(wildcards.model, wildcards.ckpt)

    def import_files(self, wildcards: Wildcards) -> list[str]:
        """The folder's files the import reads (present ones: the job names a missing
        one and its key)."""
        w = wildcards
        layers = self.plan.model_layer_list(w.model)
        return [str(f) for f in folder_files(self.folder(w.model, w.ckpt), layers)]

    def record(self, model: str, ckpt: str) -> str:
        """The sha256 of the files an imported checkpoint was read from."""
        return self.out("imported", model=model, ckpt=ckpt)

    def import_options(self, wildcards: Wildcards) -> dict[str, Any]:
        """The settings the import needs: the model's layers, outputs and class index,
        and the folder paths.txt is relative to."""
        spec = self.plan.models[wildcards.model]
        return {
            "root": dataset_root(self.plan.config["dataset"]),
            "layers": list(spec["layers"]),
            "class_index": spec.get("class_index"),
            "num_classes": spec.get("num_classes"),
        }

    def targets(self) -> list[str]:
        return [
            out
            for m, c in self.plan.model_ckpts()
            for out in (self.predictions(m, c), self.features_dir(m, c))
        ]
