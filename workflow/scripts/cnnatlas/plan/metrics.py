"""What the metrics stage (rules measure_maps, gather_metrics, summarize_layers)
writes: per layer the faithfulness of its maps and each image's feature-space
neighbours, the run's metrics table, and per model a summary of its layers."""

from typing import Any, ClassVar

from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage

__all__ = ["Metrics", "SUMMARY_EXTS"]

SUMMARY_EXTS = ("parquet", "csv", "png", "pdf")


class Metrics(Stage):
    """The metrics plan of a run (`plan.metrics`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "layer": "{model}/{ckpt}/metrics/{layer}.parquet",
        "neighbors": "{model}/{ckpt}/metrics/{layer}.neighbors.npy",
        "distances": "{model}/{ckpt}/metrics/{layer}.neighbor_distances.npy",
        "metrics": "metrics.parquet",
        "summary": "{model}/layer_summary.{ext}",
    }
    RULES: ClassVar[dict[str, str]] = {
        "measure_maps": "{job}",
        "gather_metrics": "",
        "summarize_layers": "{model}",
    }
    # measure_maps' outputs, one per layer of its job
    PER_LAYER = ("layer", "neighbors", "distances")

    def layer_path(self, model: str, ckpt: str, layer: str) -> str:
        return self.out("layer", model=model, ckpt=ckpt, layer=layer)

    def neighbors(self, model: str, ckpt: str, layer: str) -> str:
        return self.out("neighbors", model=model, ckpt=ckpt, layer=layer)

    def distances(self, model: str, ckpt: str, layer: str) -> str:
        """The feature-space distances to the neighbours of `neighbors`."""
        return self.out("distances", model=model, ckpt=ckpt, layer=layer)

    def summary(self, model: str, ext: str) -> str:
        return self.out("summary", model=model, ext=ext)

    def jobs(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """What one measure_maps job measures: per layer its features, embeddings and
        the files it writes."""
        plan = self.plan
        return [
            {
                "layer": w.layer,
                "features": plan.extract.layer_features(w),
                "embeddings": plan.maps.layer_embeddings(w),
                "metrics": self.layer_path(w.model, w.ckpt, w.layer),
                "neighbors": self.neighbors(w.model, w.ckpt, w.layer),
                "distances": self.distances(w.model, w.ckpt, w.layer),
            }
            for w in plan.layer_wildcards(wildcards)
        ]

    def job_outputs(self, name: str) -> list[str]:
        """measure_maps' output `name` (of PER_LAYER), as patterns of its job's
        wildcards: {layer}, or every layer (see Plan.layer_jobs)."""
        return [self.out(name, layer=layer) for layer in self.plan.job_layer_names()]

    def all_layer_paths(self) -> list[str]:
        return [
            self.layer_path(m, c, layer)
            for m, c in self.plan.model_ckpts()
            for layer in self.plan.model_layer_list(m)
        ]

    def targets(self) -> list[str]:
        """The run's metrics table and each model's layer summaries."""
        summaries = [self.summary(m, e) for m in self.plan.models for e in SUMMARY_EXTS]
        return [self.out("metrics"), *summaries]

    def outputs(self) -> list[str]:
        per_layer = [p for name in self.PER_LAYER for p in self.job_outputs(name)]
        summaries = [self.out("summary", ext=e) for e in SUMMARY_EXTS]
        return [*per_layer, self.out("metrics"), *summaries]
