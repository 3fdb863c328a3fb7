"""What the landing page (rule write_index) summarises and how it captions its
figures: the dataset, each checkpoint's predictions, the saliency checks, the log of
every job of the default target before it, and what each figure shows."""

from typing import Any, ClassVar

from cnnatlas.maps import get_method
from cnnatlas.plan.figures import map_words
from cnnatlas.plan.stage import Stage

__all__ = ["Index"]

Log = tuple[str, str]  # (rule, log file)


class Index(Stage):
    """The landing page's plan of a run (`plan.index`)."""

    PATHS: ClassVar[dict[str, str]] = {"index": "index.html"}
    RULES: ClassVar[dict[str, str]] = {"write_index": ""}

    @property
    def path(self) -> str:
        return self.out("index")

    @staticmethod
    def _logs(stage: Stage, rule: str, jobs: list[dict[str, str]]) -> list[Log]:
        """The logs of a rule's jobs, one per job's wildcards (the same file once)."""
        paths = [stage.log(rule, **job) for job in jobs]
        return [(rule, p) for p in dict.fromkeys(paths)]

    def _per_layer(self, stage: Stage, rule: str) -> list[Log]:
        """The logs of a per-layer stage's jobs (see layer_jobs)."""
        plan = self.plan
        jobs = [{"model": m, "ckpt": c, "layer": layer} for m, c in plan.model_ckpts()
                for layer in plan.model_layer_list(m)]  # fmt: skip
        return self._logs(stage, rule, jobs)

    def logs(self) -> list[tuple[str, str]]:
        """(rule, log file) of every job the landing page comes after: the default
        target's jobs but write_provenance (which comes after the page) and the demo's
        (which run only when the config analyses the demo)."""
        plan, figures, extract = self.plan, self.plan.figures, self.plan.extract
        runs = [{"model": m, "ckpt": c} for m, c in plan.model_ckpts()]
        one = [{}]
        out = self._logs(extract, "build_manifest", one)
        # a model with features_from is imported, the others run the network
        forward = [r for r in runs if not extract.imported(r["model"])]
        imports = [r for r in runs if extract.imported(r["model"])]
        out += self._logs(extract, "extract_features", forward)
        out += self._logs(extract, "import_features", imports)
        if extract.shards > 1:
            shards = [
                {**r, "shard": str(i)} for r in forward for i in range(extract.shards)
            ]
            out += self._logs(extract, "extract_shard", shards)
        for method in plan.maps.config["methods"]:
            out += self._per_layer(plan.maps, plan.maps.rule_name(method))
        out += self._per_layer(plan.metrics, "measure_maps")
        out += self._logs(plan.metrics, "gather_metrics", one)
        models = [{"model": m} for m in plan.models]
        out += self._logs(plan.metrics, "summarize_layers", models)
        out += self._logs(figures, "make_thumbnail_sheets", one)
        out += self._logs(plan.atlas, "write_atlas", one)
        if figures.layer_templates():
            out += self._per_layer(figures, "plot_embeddings")
        grids = [{"model": m} for m in figures.grid_models()]
        out += self._logs(figures, "plot_checkpoint_layer_grids", grids)
        explain = plan.explain
        rules = [r for r in explain.RULES if r != "check_saliency" or explain.checked]
        out += [
            (rule, explain.log(rule, model=m, ckpt=c))
            for m, c in explain.explained()
            for rule in rules
        ]
        if plan.projector.config["enabled"]:
            out += self._logs(plan.projector, "export_projector", runs)
        for m, layer, method in plan.evolution.jobs():
            job = [{"model": m, "layer": layer, "method": method}]
            for rule in plan.evolution.RULES:
                out += self._logs(plan.evolution, rule, job)
        sim = plan.similarity
        if sim.enabled:
            out += self._logs(sim, "measure_similarity", models)
            pairs = [{"model": a, "other": b} for a, b in sim.pairs()]
            out += self._logs(sim, "compare_models", pairs)
            out += self._logs(sim, "gather_similarity", one)
        return out

    def files(self, wildcards: Any = None) -> list[str]:
        """What index.html links: figures, pages, predictions, the maps and metrics
        stages' outputs (embeddings, metrics tables, layer summaries), explanations,
        projector exports, training-evolution figures and the similarity stage's table
        and heat maps."""
        plan = self.plan
        files = plan.figures.targets() + plan.maps.targets() + plan.metrics.targets()
        files += plan.metrics.all_layer_paths()
        files += plan.explain.targets() + plan.projector.targets()
        files += plan.evolution.targets() + plan.similarity.targets()
        files += plan.extract.all_predictions()
        return list(dict.fromkeys(files))

    def summary(self) -> dict[str, Any]:
        """What write_index's summary reads: the manifest and its left-out images, each
        checkpoint's predictions and saliency checks, each model's layers in network
        order, and the logs as [rule, file]."""
        plan, extract, explain = self.plan, self.plan.extract, self.plan.explain
        return {
            "manifest": extract.out("manifest"),
            "bad_images": extract.out("bad_images"),
            "predictions": [
                [m, c, extract.predictions(m, c)] for m, c in plan.model_ckpts()
            ],
            "saliency": [
                [m, c, explain.trust_file(m, c, "summary")]
                for m, c in explain.explained()
                if explain.checked
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
            plan.metrics.summary(m, "png"): f"{m}: {knn}, one colour per checkpoint"
            for m in plan.models
        }
        grids = list(zip(figures.grid_maps(), figures.grid_files("png"), strict=True))
        for m in figures.grid_models():
            for p, png in grids:
                out[png.replace("{model}", m)] = (
                    f"{m}: {map_words(*p)}, checkpoints (rows) x layers (columns)"
                )
        evolution = plan.evolution
        for m, layer, method in evolution.jobs():
            ckpts = " → ".join(plan.models[m]["checkpoints"])
            # the perplexity of evolution.*, for a method with that axis
            words = get_method(method).spec(2, evolution.config["perplexity"]).label()
            out[evolution.path("strip_png", m, layer, method)] = ", ".join(
                [f"{m} {layer}: {method} maps aligned across checkpoints ({ckpts})"]
                + ([words] if words else [])
            )
        return out | plan.similarity.captions() | plan.paper.captions()
