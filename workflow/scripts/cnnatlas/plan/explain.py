"""What the explain stage (rules select_explain_images, render_feature_maps,
visualize_filters, render_saliency, check_saliency) writes for each explained
checkpoint: the chosen images, feature-map grids, filter visualizations, saliency
overlays with their faithfulness, and the saliency checks."""

from typing import ClassVar

from cnnatlas.plan.names import Wildcards
from cnnatlas.plan.stage import Stage
from cnnatlas.precomputed import imported
from cnnatlas.saliency_names import check_saliency_methods

__all__ = ["Explain", "TRUST_FILES"]

_DIR = "{model}/{ckpt}/explain"
# The saliency checks of one checkpoint (rule check_saliency): output name -> file.
TRUST_FILES = {
    "summary": "saliency_checks.parquet",
    "curves": "saliency_curves.parquet",
    "randomisation": "saliency_randomisation.parquet",
    "cascade": "saliency_cascade.npz",
    "curves_figure": "saliency_curves.png",
    "cascade_figure": "saliency_randomisation.png",
}


class Explain(Stage):
    """The explain plan of a run (`plan.explain`)."""

    PATHS: ClassVar[dict[str, str]] = {
        "selection": f"{_DIR}/images.parquet",
        "feature_maps": f"{_DIR}/feature_maps",
        "filters": f"{_DIR}/filters",
        "filters_table": f"{_DIR}/filters.parquet",
        "saliency": f"{_DIR}/saliency",
        "saliency_faithfulness": f"{_DIR}/saliency_faithfulness.parquet",
        "saliency_summary": f"{_DIR}/saliency_summary.parquet",
        "saliency_figure": f"{_DIR}/saliency_faithfulness.png",
    } | {name: f"{_DIR}/{file}" for name, file in TRUST_FILES.items()}
    RULES: ClassVar[dict[str, str]] = {
        "select_explain_images": "{model}/{ckpt}",
        "render_feature_maps": "{model}/{ckpt}",
        "visualize_filters": "{model}/{ckpt}",
        "render_saliency": "{model}/{ckpt}",
        "check_saliency": "{model}/{ckpt}",
    }
    # the explanations of each explained checkpoint, in this order
    TARGETS = (
        "feature_maps",
        "filters",
        "filters_table",
        "saliency",
        "saliency_faithfulness",
        "saliency_summary",
        "saliency_figure",
    )

    SECTION = "explain"

    def check(self) -> None:
        models = self.plan.models
        ckpts = {c for m in models.values() for c in m["checkpoints"]}
        unknown = sorted(set(self.config["checkpoints"]) - ckpts)
        if unknown:
            raise ValueError(
                f"explain.checkpoints: {unknown} are not checkpoints of any model "
                f"({sorted(ckpts)}); fix the names or leave the list empty for all"
            )
        unknown = sorted(set(self.config["layers"]) - set(models))
        if unknown:
            raise ValueError(
                f"explain.layers: {unknown} are not models of the config "
                f"({sorted(models)})"
            )
        saliency, trust = self.config["saliency"], self.config["trust"]
        check_saliency_methods(saliency["methods"], "explain.saliency.methods")
        check_saliency_methods(trust["methods"], "explain.trust.methods")

    @property
    def checked(self) -> bool:
        """Whether the saliency checks run (explain.trust.enabled)."""
        return bool(self.config["trust"]["enabled"])

    def layers(self, wildcards: Wildcards) -> list[str] | None:
        """The model's layers under explain.layers, or None (its spatial configured layers)."""
        return self.config["layers"].get(wildcards.model)

    def explained(self) -> list[tuple[str, str]]:
        """The (model, ckpt) pairs the explain stage explains: those whose checkpoint
        explain.checkpoints names (all if empty), but for models with features_from
        (no network to explain); none when the stage is off."""
        if not self.config["enabled"]:
            return []
        wanted = set(self.config["checkpoints"])
        return [
            (m, c)
            for m, c in self.plan.model_ckpts()
            if (not wanted or c in wanted) and not imported(self.plan.models[m])
        ]

    def targets(self) -> list[str]:
        """Every explanation of the explained checkpoints (`explained`), with their
        saliency checks unless explain.trust.enabled is false."""
        names = list(self.TARGETS) + (list(TRUST_FILES) if self.checked else [])
        return [
            self.out(name, model=m, ckpt=c)
            for m, c in self.explained()
            for name in names
        ]

    def trust_file(self, model: str, ckpt: str, name: str) -> str:
        """One output of a checkpoint's saliency checks (a key of TRUST_FILES)."""
        return self.out(name, model=model, ckpt=ckpt)

    def trust_methods(self, wildcards: Wildcards) -> list[str]:
        """explain.trust.methods, or if empty the methods drawn
        (explain.saliency.methods): the maps a user looks at are the ones checked."""
        trust, drawn = (
            self.config["trust"]["methods"],
            self.config["saliency"]["methods"],
        )
        return list(trust) or list(drawn)
