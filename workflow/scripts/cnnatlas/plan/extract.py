"""What the extract stage (rules build_manifest, extract_features, extract_shard)
writes: the manifest, and per checkpoint its predictions and one features file per
layer, from one forward pass (or from shards of it, gathered)."""

from typing import ClassVar

from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage

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
    }
    INSIDE = ("layer_features",)
    RULES: ClassVar[dict[str, str]] = {
        "build_manifest": "",
        "extract_features": "{model}/{ckpt}",
        "extract_shard": "{model}/{ckpt}/{shard}-of-{shards}",
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

    def targets(self) -> list[str]:
        return [
            out
            for m, c in self.plan.model_ckpts()
            for out in (self.predictions(m, c), self.features_dir(m, c))
        ]
