"""What the maps stage (one rule reduce_<method> per configured method, from the
registry cnnatlas.maps) makes: every configured map of every layer, swept over the
method's axes. A method's maps of one checkpoint's layers are one job (or of one layer:
config layer_jobs); a `batched` method makes every layer's maps in one job."""

from typing import Any, ClassVar

from cnnatlas.maps import get_method, map_values
from cnnatlas.plan.names import Wildcards, map_name
from cnnatlas.plan.stage import Stage

__all__ = ["Maps"]

MapKey = tuple[str, str, str, str]  # (method, dim, perplexity, seed) as in file names


class Maps(Stage):
    """The maps plan of a run (`plan.maps`)."""

    PATHS: ClassVar[dict[str, str]] = {
        # {map}: map_name(method, dim, perplexity, seed)
        "embedding": "{model}/{ckpt}/embeddings/{layer}/{map}.parquet",
    }

    SECTION = "maps"

    def params(self) -> list[MapKey]:
        """(method, dim, perplexity, seed) of every configured map, as path strings.

        A method's sweep axes (its registry entry) take the config's lists
        (maps.perplexities, maps.seeds); file names spell an axis it lacks 0.
        """
        return [
            (name, *map_values(spec))
            for name in self.config["methods"]
            for spec in get_method(name).sweep(self.config)
        ]

    def embedding(
        self,
        model: str,
        ckpt: str,
        layer: str,
        method: str,
        dim: str,
        perplexity: str,
        seed: str,
    ) -> str:
        """The output contract's embedding file."""
        name = map_name(method, dim, perplexity, seed)
        return self.out("embedding", model=model, ckpt=ckpt, layer=layer, map=name)

    def layer_paths(self, model: str, ckpt: str, layer: str) -> list[str]:
        """Every configured embedding of one layer of one checkpoint."""
        return [self.embedding(model, ckpt, layer, *p) for p in self.params()]

    def layer_embeddings(self, wildcards: Wildcards) -> list[str]:
        w = wildcards
        return self.layer_paths(w.model, w.ckpt, w.layer)

    def job_embeddings(self, wildcards: Wildcards) -> list[str]:
        """Every embedding of the layers of one per-layer job (see Plan.layer_jobs)."""
        plan = self.plan
        return [
            p for w in plan.layer_wildcards(wildcards) for p in self.layer_embeddings(w)
        ]

    def method_maps(self, method: str) -> list[tuple[str, str, str]]:
        """(dim, perplexity, seed) strings of the configured maps of one method."""
        return [p[1:] for p in self.params() if p[0] == method]

    def method_outputs(self, method: str, batched: bool = False) -> list[str]:
        """One method's embedding paths: of one job of a per-layer stage (wildcards
        {model}, {ckpt} and {layer} or every layer), or (batched) of every layer of
        every checkpoint."""
        if not batched:
            return [
                self.embedding("{model}", "{ckpt}", layer, method, *p)
                for layer in self.plan.job_layer_names()
                for p in self.method_maps(method)
            ]
        return [path for job in self.jobs(method) for *_, path in job["maps"]]

    def _job(self, model: str, ckpt: str, layer: str, method: str) -> dict:
        extract = self.plan.extract
        return {
            "features": extract.features_file(model, ckpt, layer),
            "predictions": extract.predictions(model, ckpt),
            "maps": [
                [*p, self.embedding(model, ckpt, layer, method, *p)]
                for p in self.method_maps(method)
            ],
        }

    def jobs(self, method: str) -> list[dict[str, Any]]:
        """Every layer's maps of one method: [{features, maps: [[dim, p, seed, path]]}]."""
        return [
            self._job(m, c, layer, method)
            for m, c in self.plan.model_ckpts()
            for layer in self.plan.model_layer_list(m)
        ]

    def layer_jobs(self, method: str):
        """The params function of a reduce rule that is not batched: the maps of its
        job's layers (one layer, or every layer of the checkpoint; see layer_jobs)."""

        def jobs(wildcards: Wildcards) -> list[dict[str, Any]]:
            w = wildcards
            return [
                self._job(w.model, w.ckpt, layer, method)
                for layer in self.plan.job_layers(w)
            ]

        return jobs

    def rule_name(self, method: str) -> str:
        return f"reduce_{method}"

    def where(self, rule: str) -> str:
        """A batched method's rule is one job; the others' are per-layer jobs."""
        return "" if get_method(rule.removeprefix("reduce_")).batched else "{job}"

    def rule(self, method: str) -> dict[str, Any]:
        """What the reduce rule of one method reads, writes, logs and is given: per layer
        or per checkpoint (layer_jobs), or one job for every layer (batched)."""
        name, extract = self.rule_name(method), self.plan.extract
        common = {"log": self.log(name), "benchmark": self.benchmark(name)}
        if get_method(method).batched:
            return common | {
                "features": extract.all_features_dirs(),
                "predictions": extract.all_predictions(),
                "maps": self.method_outputs(method, batched=True),
                "jobs": self.jobs(method),
                # every layer's metrics wait for this one long job: start it first
                "priority": 1,
            }
        return common | {
            "features": extract.features_dir("{model}", "{ckpt}"),
            "predictions": extract.predictions("{model}", "{ckpt}"),
            "maps": self.method_outputs(method),
            "jobs": self.layer_jobs(method),
            "priority": 0,
        }

    def all_paths(self) -> list[str]:
        """Every embedding of the run."""
        plan = self.plan
        return [
            path
            for m, c in plan.model_ckpts()
            for layer in plan.model_layer_list(m)
            for path in self.layer_paths(m, c, layer)
        ]

    def targets(self) -> list[str]:
        return self.all_paths()

    def outputs(self) -> list[str]:
        return [p for m in self.config["methods"] for p in self.rule(m)["maps"]]

    def rule_logs(self) -> list[str]:
        names = [self.rule_name(m) for m in self.config["methods"]]
        return [p for r in names for p in (self.log(r), self.benchmark(r))]
