"""Every path, sweep and job list of a run, as pure functions of the validated config.

`Plan(config)` is built once when Snakemake parses the workflow (after `validate` has
filled the schema's defaults). Its methods that take `wildcards` are the rules' input
and params functions: they read only the wildcards' attributes (model, ckpt, layer,
method, name), so tests call them with a SimpleNamespace.
"""

from collections.abc import Mapping
from typing import Any

from cnnatlas.maps import get_method, map_values, methods
from cnnatlas.plan.atlas import Atlas
from cnnatlas.plan.figures import Figures
from cnnatlas.plan.index import Index
from cnnatlas.plan.names import Wildcards, alternatives, map_name
from cnnatlas.plan.paper import Paper
from cnnatlas.plan.similarity import Similarity
from cnnatlas.project import model_files
from cnnatlas.saliency_names import check_saliency_methods

__all__ = ["Plan", "TRUST_FILES"]

# The explanation outputs of one checkpoint (explain.smk's rules).
EXPLAIN_OUTPUTS = (
    "feature_maps",
    "filters",
    "filters.parquet",
    "saliency",
    "saliency_faithfulness.parquet",
    "saliency_summary.parquet",
    "saliency_faithfulness.png",
)
# The saliency checks of one checkpoint (rule check_saliency): output name -> file.
TRUST_FILES = {
    "summary": "saliency_checks.parquet",
    "curves": "saliency_curves.parquet",
    "randomisation": "saliency_randomisation.parquet",
    "cascade": "saliency_cascade.npz",
    "curves_figure": "saliency_curves.png",
    "cascade_figure": "saliency_randomisation.png",
}
EVOLUTION_OUTPUTS = ("strip.png", "animation.gif", "slider.html", "alignment.parquet")
SUMMARY_EXTS = ("parquet", "csv", "png", "pdf")


class Plan:
    """The run a validated config describes (see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.results: str = config["results"]
        self.models: Mapping[str, Any] = config["models"]
        self.maps: Mapping[str, Any] = config["maps"]
        self.explain: Mapping[str, Any] = config["explain"]
        self.evolution: Mapping[str, Any] = config["evolution"]
        self.projector: Mapping[str, Any] = config["projector"]
        self.shards: int = config["extract"]["shards"]
        self.provenance = f"{self.results}/provenance.json"
        self.layer_jobs: str = self._layer_jobs(config["layer_jobs"])
        self._check_explain()
        self._check_evolution_layers()
        self.figures = Figures(self)
        self.similarity = Similarity(self)
        self.paper = Paper(self)
        self.atlas = Atlas(self)
        self.index = Index(self)

    # --- names and wildcards ---

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
        """{model/ckpt: checkpoint file} of the config."""
        return {
            f"{m}/{c}": self.models[m]["checkpoints"][c] for m, c in self.model_ckpts()
        }

    # --- paths of the output contract ---

    def run_dir(self, model: str, ckpt: str) -> str:
        return f"{self.results}/{model}/{ckpt}"

    def predictions_path(self, model: str, ckpt: str) -> str:
        return f"{self.run_dir(model, ckpt)}/predictions.parquet"

    def features_file(self, model: str, ckpt: str, layer: str) -> str:
        return f"{self.run_dir(model, ckpt)}/features/{layer}.npy"

    def layer_features(self, wildcards: Wildcards) -> str:
        w = wildcards
        return self.features_file(w.model, w.ckpt, w.layer)

    def metrics_jobs(self, wildcards: Wildcards) -> list[dict[str, Any]]:
        """What one measure_maps job measures: per layer its features, embeddings and
        the two files it writes."""
        return [
            {
                "layer": w.layer,
                "features": self.layer_features(w),
                "embeddings": self.layer_embeddings(w),
                "metrics": self.layer_metrics_path(w.model, w.ckpt, w.layer),
                "neighbors": self.neighbors_path(w.model, w.ckpt, w.layer),
                "distances": self.distances_path(w.model, w.ckpt, w.layer),
            }
            for w in self.layer_wildcards(wildcards)
        ]

    def metrics_rule(self) -> dict[str, Any]:
        """measure_maps' outputs and log, as patterns of the job's wildcards."""
        layers = self.job_layer_names()
        run = self.run_dir("{model}", "{ckpt}")
        return {
            "metrics": [f"{run}/metrics/{layer}.parquet" for layer in layers],
            "neighbors": [self.neighbors_path("{model}", "{ckpt}", x) for x in layers],
            "distances": [self.distances_path("{model}", "{ckpt}", x) for x in layers],
            "log": f"{self.results}/logs/measure_maps/{self.job_where}.log",
            "benchmark": f"{self.results}/benchmarks/measure_maps/{self.job_where}.tsv",
        }

    def job_embeddings(self, wildcards: Wildcards) -> list[str]:
        """Every embedding of the layers of one measure_maps job."""
        return [
            p for w in self.layer_wildcards(wildcards) for p in self.layer_embeddings(w)
        ]

    def embedding_path(
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
        return f"{self.run_dir(model, ckpt)}/embeddings/{layer}/{name}.parquet"

    def layer_metrics_path(self, model: str, ckpt: str, layer: str) -> str:
        return f"{self.run_dir(model, ckpt)}/metrics/{layer}.parquet"

    def neighbors_path(self, model: str, ckpt: str, layer: str) -> str:
        return f"{self.run_dir(model, ckpt)}/metrics/{layer}.neighbors.npy"

    def distances_path(self, model: str, ckpt: str, layer: str) -> str:
        """The feature-space distances to the neighbours of `neighbors_path`."""
        return f"{self.run_dir(model, ckpt)}/metrics/{layer}.neighbor_distances.npy"

    def summary_path(self, model: str, ext: str) -> str:
        return f"{self.results}/{model}/layer_summary.{ext}"

    def extract_targets(self) -> list[str]:
        return [
            out
            for m, c in self.model_ckpts()
            for out in (self.predictions_path(m, c), f"{self.run_dir(m, c)}/features")
        ]

    # --- the maps sweep ---

    def map_params(self) -> list[tuple[str, str, str, str]]:
        """(method, dim, perplexity, seed) of every configured map, as path strings.

        A method's sweep axes (its registry entry) take the config's lists
        (maps.perplexities, maps.seeds); file names spell an axis it lacks 0.
        """
        return [
            (name, *map_values(spec))
            for name in self.maps["methods"]
            for spec in get_method(name).sweep(self.maps)
        ]

    def embedding_paths(self, model: str, ckpt: str, layer: str) -> list[str]:
        """Every configured embedding of one layer of one checkpoint."""
        return [self.embedding_path(model, ckpt, layer, *p) for p in self.map_params()]

    def layer_embeddings(self, wildcards: Wildcards) -> list[str]:
        w = wildcards
        return self.embedding_paths(w.model, w.ckpt, w.layer)

    def method_maps(self, method: str) -> list[tuple[str, str, str]]:
        """(dim, perplexity, seed) strings of the configured maps of one method."""
        return [p[1:] for p in self.map_params() if p[0] == method]

    def method_outputs(self, method: str, batched: bool = False) -> list[str]:
        """One method's embedding paths: of one job of a per-layer stage (wildcards
        {model}, {ckpt} and {layer} or every layer), or (batched) of every layer of
        every checkpoint."""
        if not batched:
            return [
                self.embedding_path("{model}", "{ckpt}", layer, method, *p)
                for layer in self.job_layer_names()
                for p in self.method_maps(method)
            ]
        return [path for job in self.reduce_jobs(method) for *_, path in job["maps"]]

    def _reduce_job(self, model: str, ckpt: str, layer: str, method: str) -> dict:
        return {
            "features": self.features_file(model, ckpt, layer),
            "predictions": self.predictions_path(model, ckpt),
            "maps": [
                [*p, self.embedding_path(model, ckpt, layer, method, *p)]
                for p in self.method_maps(method)
            ],
        }

    def reduce_jobs(self, method: str) -> list[dict[str, Any]]:
        """Every layer's maps of one method: [{features, maps: [[dim, p, seed, path]]}]."""
        return [
            self._reduce_job(m, c, layer, method)
            for m, c in self.model_ckpts()
            for layer in self.model_layer_list(m)
        ]

    def layer_reduce_jobs(self, method: str):
        """The params function of a reduce rule that is not batched: the maps of its
        job's layers (one layer, or every layer of the checkpoint; see layer_jobs)."""

        def jobs(wildcards: Wildcards) -> list[dict[str, Any]]:
            w = wildcards
            return [
                self._reduce_job(w.model, w.ckpt, layer, method)
                for layer in self.job_layers(w)
            ]

        return jobs

    def reduce_rule(self, method: str) -> dict[str, Any]:
        """What the reduce rule of one method reads, writes, logs and is given: per layer
        or per checkpoint (layer_jobs), or one job for every layer (batched)."""
        if get_method(method).batched:
            return {
                "features": self.all_features_dirs(),
                "predictions": [
                    self.predictions_path(*mc) for mc in self.model_ckpts()
                ],
                "maps": self.method_outputs(method, batched=True),
                "log": f"{self.results}/logs/reduce_{method}.log",
                "benchmark": f"{self.results}/benchmarks/reduce_{method}.tsv",
                "jobs": self.reduce_jobs(method),
                # every layer's metrics wait for this one long job: start it first
                "priority": 1,
            }
        where = self.job_where
        return {
            "features": f"{self.run_dir('{model}', '{ckpt}')}/features",
            "predictions": self.predictions_path("{model}", "{ckpt}"),
            "maps": self.method_outputs(method),
            "log": f"{self.results}/logs/reduce_{method}/{where}.log",
            "benchmark": f"{self.results}/benchmarks/reduce_{method}/{where}.tsv",
            "jobs": self.layer_reduce_jobs(method),
            "priority": 0,
        }

    def all_features_dirs(self) -> list[str]:
        return [f"{self.run_dir(m, c)}/features" for m, c in self.model_ckpts()]

    def all_layer_metrics(self) -> list[str]:
        return [
            self.layer_metrics_path(m, c, layer)
            for m, c in self.model_ckpts()
            for layer in self.model_layer_list(m)
        ]

    def maps_targets(self) -> list[str]:
        """The maps stage's outputs: every embedding, metrics.parquet, layer summaries."""
        embeddings = [
            path
            for m, c in self.model_ckpts()
            for layer in self.model_layer_list(m)
            for path in self.embedding_paths(m, c, layer)
        ]
        summaries = [self.summary_path(m, e) for m in self.models for e in SUMMARY_EXTS]
        return [*embeddings, f"{self.results}/metrics.parquet", *summaries]

    # --- explanations ---

    def _check_explain(self) -> None:
        ckpts = {c for m in self.models.values() for c in m["checkpoints"]}
        unknown = sorted(set(self.explain["checkpoints"]) - ckpts)
        if unknown:
            raise ValueError(
                f"explain.checkpoints: {unknown} are not checkpoints of any model "
                f"({sorted(ckpts)}); fix the names or leave the list empty for all"
            )
        unknown = sorted(set(self.explain["layers"]) - set(self.models))
        if unknown:
            raise ValueError(
                f"explain.layers: {unknown} are not models of the config "
                f"({sorted(self.models)})"
            )
        saliency, trust = self.explain["saliency"], self.explain["trust"]
        check_saliency_methods(saliency["methods"], "explain.saliency.methods")
        check_saliency_methods(trust["methods"], "explain.trust.methods")

    def explain_layers(self, wildcards: Wildcards) -> list[str] | None:
        """The model's layers under explain.layers, or None (its spatial configured layers)."""
        return self.explain["layers"].get(wildcards.model)

    def explained(self) -> list[tuple[str, str]]:
        """The (model, ckpt) pairs the explain stage explains: those whose checkpoint
        explain.checkpoints names (all if empty); none when the stage is off."""
        if not self.explain["enabled"]:
            return []
        wanted = set(self.explain["checkpoints"])
        return [(m, c) for m, c in self.model_ckpts() if not wanted or c in wanted]

    def explain_targets(self) -> list[str]:
        """Every explanation of the explained checkpoints (`explained`), with their
        saliency checks unless explain.trust.enabled is false."""
        outputs = list(EXPLAIN_OUTPUTS)
        if self.explain["trust"]["enabled"]:
            outputs += TRUST_FILES.values()
        return [
            f"{self.run_dir(m, c)}/explain/{out}"
            for m, c in self.explained()
            for out in outputs
        ]

    def trust_file(self, model: str, ckpt: str, name: str) -> str:
        """One output of a checkpoint's saliency checks (a key of TRUST_FILES)."""
        return f"{self.run_dir(model, ckpt)}/explain/{TRUST_FILES[name]}"

    def trust_methods(self, wildcards: Wildcards) -> list[str]:
        """explain.trust.methods, or if empty the methods drawn
        (explain.saliency.methods): the maps a user looks at are the ones checked."""
        trust, drawn = (
            self.explain["trust"]["methods"],
            self.explain["saliency"]["methods"],
        )
        return list(trust) or list(drawn)

    # --- projector ---

    def projector_features(self, wildcards: Wildcards) -> dict[str, str]:
        """layer -> features .npy of one checkpoint, for every configured layer."""
        w = wildcards
        return {
            layer: self.features_file(w.model, w.ckpt, layer)
            for layer in self.model_layers(w)
        }

    def projector_maps(self, wildcards: Wildcards) -> dict[str, list[str]]:
        """layer -> the checkpoint's embedding Parquets exported as extra tensors."""
        if not self.projector["maps"]:
            return {}
        w = wildcards
        return {
            layer: self.embedding_paths(w.model, w.ckpt, layer)
            for layer in self.model_layers(w)
        }

    def projector_map_files(self, wildcards: Wildcards) -> list[str]:
        return [p for paths in self.projector_maps(wildcards).values() for p in paths]

    def projector_targets(self) -> list[str]:
        if not self.projector["enabled"]:
            return []
        return [f"{self.run_dir(m, c)}/projector" for m, c in self.model_ckpts()]

    # --- training evolution ---

    def evolution_dir(self) -> str:
        return f"{self.results}/{{model}}/evolution/{{layer}}/{{method}}"

    def evolution_layers(self, model: str) -> list[str]:
        """The evolution layers of one model: evolution.layers that it has (all if null)."""
        layers = self.models[model]["layers"]
        wanted = self.evolution["layers"]
        return list(layers) if wanted is None else [x for x in wanted if x in layers]

    def _check_evolution_layers(self) -> None:
        known = {x for spec in self.models.values() for x in spec["layers"]}
        unknown = [x for x in self.evolution["layers"] or [] if x not in known]
        if unknown:
            raise ValueError(
                f"config evolution.layers {unknown} are not layers of any model "
                f"(configured layers: {sorted(known)}); fix evolution.layers"
            )

    def evolution_method_names(self) -> str:
        """A wildcard constraint: the methods with a training evolution."""
        return alternatives(m for m, x in methods().items() if x.evolve is not None)

    def evolution_feature_dirs(self, wildcards: Wildcards) -> list[str]:
        m = wildcards.model
        return [
            f"{self.run_dir(m, c)}/features" for c in self.model_ckpt_names(wildcards)
        ]

    def evolution_feature_files(self, wildcards: Wildcards) -> dict[str, str]:
        w = wildcards
        return {
            c: self.features_file(w.model, c, w.layer) for c in self.model_ckpt_names(w)
        }

    def evolution_prediction_files(self, wildcards: Wildcards) -> dict[str, str]:
        m = wildcards.model
        return {
            c: self.predictions_path(m, c) for c in self.model_ckpt_names(wildcards)
        }

    def evolution_predictions(self, wildcards: Wildcards) -> list[str]:
        return list(self.evolution_prediction_files(wildcards).values())

    def evolution_options(self, wildcards: Wildcards) -> dict[str, Any]:
        """The maps stage's options of the method, with the evolution's iteration count
        where the method has one."""
        opts = dict(self.maps[wildcards.method])
        if "n_iter" in opts:
            opts["n_iter"] = self.evolution["n_iter"]
        return opts

    def evolution_title(self, wildcards: Wildcards) -> str:
        w = wildcards
        return f"{w.model} {w.layer} ({w.method}, aligned)"

    def evolution_jobs(self) -> list[tuple[str, str, str]]:
        """(model, layer, method) of every evolution layer and method of each model with
        2+ checkpoints; none when the stage is off."""
        if not self.evolution["enabled"]:
            return []
        return [
            (m, layer, method)
            for m, spec in self.models.items()
            if len(spec["checkpoints"]) >= 2
            for layer in self.evolution_layers(m)
            for method in self.evolution["methods"]
        ]

    def evolution_targets(self) -> list[str]:
        """Figures of every evolution job (`evolution_jobs`)."""
        return [
            f"{self.results}/{m}/evolution/{layer}/{method}/{name}"
            for m, layer, method in self.evolution_jobs()
            for name in EVOLUTION_OUTPUTS
        ]

    # --- sharded extraction ---

    def shard_dir(self, model: str, ckpt: str, shard: str) -> str:
        """The outputs of one extraction shard (temporary; gathered by extract_features)."""
        return f"{self.run_dir(model, ckpt)}/shards/{shard}-of-{self.shards}"

    def extract_shard_dirs(self, wildcards: Wildcards) -> list[str]:
        """Every shard of a checkpoint in shard order; none when extraction is not sharded."""
        if self.shards == 1:
            return []
        w = wildcards
        return [self.shard_dir(w.model, w.ckpt, str(i)) for i in range(self.shards)]

    # --- the index page ---

    def index_files(self, wildcards: Wildcards | None = None) -> list[str]:
        """What index.html links: figures, pages, predictions, the maps stage's outputs
        (embeddings, metrics tables, layer summaries), explanations, projector exports,
        training-evolution figures and the similarity stage's table and heat maps."""
        files = self.figures.targets() + self.maps_targets() + self.all_layer_metrics()
        files += self.explain_targets() + self.projector_targets()
        files += self.evolution_targets() + self.similarity.targets()
        files += [self.predictions_path(m, c) for m, c in self.model_ckpts()]
        return list(dict.fromkeys(files))


class _Layer:
    """The wildcards of one layer of a job (attribute access, as Snakemake's)."""

    def __init__(self, model: str, ckpt: str, layer: str) -> None:
        self.model, self.ckpt, self.layer = model, ckpt, layer
