"""What the landing page (rule write_index) summarises and how it captions its
figures: the dataset, each checkpoint's predictions, the saliency checks, the log of
every job of the default target before it, and what each figure shows."""

from typing import TYPE_CHECKING, Any

from cnnatlas.maps import get_method
from cnnatlas.plan.figures import map_words

if TYPE_CHECKING:
    from cnnatlas.plan.core import Plan

__all__ = ["Index"]


class Index:
    """The landing page's plan of a run (`plan.index`)."""

    def __init__(self, plan: "Plan") -> None:
        self.plan = plan
        self.path = f"{plan.results}/index.html"

    def _log(self, rule: str, where: str = "") -> tuple[str, str]:
        path = f"{self.plan.results}/logs/{rule}{'/' + where if where else ''}.log"
        return rule, path

    def _per_job(self, rule: str, pattern: str) -> list[tuple[str, str]]:
        """The logs of a per-layer stage's jobs from its log pattern (see layer_jobs)."""
        plan = self.plan
        jobs = [(m, c, layer) for m, c in plan.model_ckpts()
                for layer in plan.model_layer_list(m)]  # fmt: skip
        paths = [
            pattern.replace("{model}", m).replace("{ckpt}", c).replace("{layer}", layer)
            for m, c, layer in jobs
        ]
        return [(rule, p) for p in dict.fromkeys(paths)]

    def logs(self) -> list[tuple[str, str]]:
        """(rule, log file) of every job the landing page comes after: the default
        target's jobs but write_provenance (which comes after the page) and the demo's
        (which run only when the config analyses the demo)."""
        plan, figures = self.plan, self.plan.figures
        runs = [f"{m}/{c}" for m, c in plan.model_ckpts()]
        out = [self._log("build_manifest")]
        out += [self._log("extract_features", r) for r in runs]
        if plan.shards > 1:
            out += [
                self._log("extract_shard", f"{r}/{i}-of-{plan.shards}")
                for r in runs
                for i in range(plan.shards)
            ]
        for method in plan.maps["methods"]:
            out += self._per_job(f"reduce_{method}", plan.reduce_rule(method)["log"])
        out += self._per_job("measure_maps", plan.metrics_rule()["log"])
        out += [self._log("gather_metrics")]
        out += [self._log("summarize_layers", m) for m in plan.models]
        out += [self._log("make_thumbnail_sheets"), self._log("write_atlas")]
        if figures.layer_templates():
            out += self._per_job("plot_embeddings", figures.job_log("logs"))
        out += [
            self._log("plot_checkpoint_layer_grids", m) for m in figures.grid_models()
        ]
        explain = ["select_explain_images", "render_feature_maps", "visualize_filters"]
        explain += ["render_saliency"]
        if plan.explain["trust"]["enabled"]:
            explain.append("check_saliency")
        out += [
            self._log(rule, f"{m}/{c}") for m, c in plan.explained() for rule in explain
        ]
        if plan.projector["enabled"]:
            out += [self._log("export_projector", r) for r in runs]
        for m, layer, method in plan.evolution_jobs():
            out += [self._log(rule, f"{m}/{layer}/{method}")
                    for rule in ("align_evolution", "plot_evolution")]  # fmt: skip
        sim = plan.similarity
        if sim.enabled:
            out += [self._log("measure_similarity", m) for m in plan.models]
            out += [self._log("compare_models", f"{a}/{b}") for a, b in sim.pairs()]
            out += [self._log("gather_similarity")]
        return out

    def summary(self) -> dict[str, Any]:
        """What write_index's summary reads: the manifest and its left-out images, each
        checkpoint's predictions and saliency checks, each model's layers in network
        order, and the logs as [rule, file]."""
        plan = self.plan
        checked = plan.explain["trust"]["enabled"]
        return {
            "manifest": f"{plan.results}/manifest.parquet",
            "bad_images": f"{plan.results}/bad_images.parquet",
            "predictions": [
                [m, c, plan.predictions_path(m, c)] for m, c in plan.model_ckpts()
            ],
            "saliency": [
                [m, c, plan.trust_file(m, c, "summary")]
                for m, c in plan.explained()
                if checked
            ],
            "layers": {m: plan.model_layer_list(m) for m in plan.models},
            "logs": [list(x) for x in self.logs()],
        }

    def summary_files(self) -> list[str]:
        """The files of `summary`, as rule inputs."""
        s = self.summary()
        files = [s["manifest"], s["bad_images"]]
        files += [p for *_, p in s["predictions"] + s["saliency"] + s["logs"]]
        return files

    def captions(self) -> dict[str, str]:
        """Each figure the page shows -> what it shows."""
        plan, figures = self.plan, self.plan.figures
        knn = "kNN accuracy per layer in feature space and in the best map"
        out = {
            plan.summary_path(m, "png"): f"{m}: {knn}, one colour per checkpoint"
            for m in plan.models
        }
        grids = list(zip(figures.grid_maps(), figures.grid_files("png"), strict=True))
        for m in figures.grid_models():
            for p, png in grids:
                out[png.replace("{model}", m)] = (
                    f"{m}: {map_words(*p)}, checkpoints (rows) x layers (columns)"
                )
        for m, layer, method in plan.evolution_jobs():
            ckpts = " → ".join(plan.models[m]["checkpoints"])
            # the perplexity of evolution.*, for a method with that axis
            words = get_method(method).spec(2, plan.evolution["perplexity"]).label()
            out[f"{plan.results}/{m}/evolution/{layer}/{method}/strip.png"] = ", ".join(
                [f"{m} {layer}: {method} maps aligned across checkpoints ({ckpts})"]
                + ([words] if words else [])
            )
        return out | plan.similarity.captions() | plan.paper.captions()
