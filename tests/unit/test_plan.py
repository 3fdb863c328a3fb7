"""The planner: paths, sweeps, job lists and paper figures as functions of the config."""

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from cnnatlas import maps as registry
from cnnatlas.maps import FitJob, MapMethod, MapSpec
from cnnatlas.plan import Plan, alternatives, map_name
from cnnatlas.plan.paper import KINDS
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
DEMO = yaml.safe_load((REPO / "config.yaml").read_text())


def plan_of(config: dict) -> Plan:
    config = copy.deepcopy(config)
    validate(config, SCHEMA)  # fills the schema's defaults, as common.smk does
    return Plan(config)


def w(**kw) -> SimpleNamespace:
    return SimpleNamespace(**kw)


@pytest.fixture(scope="module")
def demo() -> Plan:
    return plan_of(DEMO)


@pytest.fixture(scope="module")
def per_layer() -> Plan:
    """The demo with one job per layer (layer_jobs: layer)."""
    return plan_of({**DEMO, "layer_jobs": "layer"})


def test_map_params_follow_each_methods_sweep_axes(demo):
    params = demo.maps.params()
    # t-SNE: dims x perplexities x seeds; PCA: one per dim; UMAP: dims x seeds
    assert [p for p in params if p[0] == "tsne"][:4] == [
        ("tsne", "2", "10", "0"),
        ("tsne", "2", "10", "1"),
        ("tsne", "2", "30", "0"),
        ("tsne", "2", "30", "1"),
    ]
    assert [p for p in params if p[0] == "pca"] == [
        ("pca", "2", "0", "0"),
        ("pca", "3", "0", "0"),
    ]
    assert [p for p in params if p[0] == "umap"] == [
        ("umap", "2", "0", "0"),
        ("umap", "2", "0", "1"),
        ("umap", "3", "0", "0"),
        ("umap", "3", "0", "1"),
    ]
    assert len(params) == 8 + 2 + 4
    assert map_name("tsne", "2", 7.5, "0") == "tsne-2d-p7.5-s0"
    assert map_name("tsne", "3", 30.0, 1) == "tsne-3d-p30-s1"
    assert map_name("pca", "2", 30, 1) == "pca-2d-p0-s0"  # PCA has no sweep axes


def test_embedding_paths_follow_the_output_contract(demo, per_layer):
    assert demo.maps.embedding(
        "digitnet", "step0005", "fc1", "tsne", "2", "10", "1"
    ) == ("results/digitnet/step0005/embeddings/fc1/tsne-2d-p10-s1.parquet")
    paths = demo.maps.layer_embeddings(
        w(model="digitnet", ckpt="step0600", layer="relu")
    )
    assert len(paths) == 14 and len(set(paths)) == 14
    assert all(
        p.startswith("results/digitnet/step0600/embeddings/relu/") for p in paths
    )
    assert per_layer.maps.method_outputs("pca") == [
        "results/{model}/{ckpt}/embeddings/{layer}/pca-2d-p0-s0.parquet",
        "results/{model}/{ckpt}/embeddings/{layer}/pca-3d-p0-s0.parquet",
    ]
    # one job per checkpoint (the demo's default): every layer's maps of {model}/{ckpt}
    outputs = demo.maps.method_outputs("pca")
    assert len(outputs) == 5 * 2 and outputs[1] == (
        "results/{model}/{ckpt}/embeddings/features.0.3/pca-3d-p0-s0.parquet"
    )


def test_batched_methods_get_one_job_for_every_layer(demo, per_layer):
    jobs = demo.maps.jobs("umap")
    assert len(jobs) == 3 * 5  # checkpoints x layers
    assert jobs[0]["features"] == "results/digitnet/step0005/features/features.0.3.npy"
    assert jobs[0]["maps"][1] == [
        "2",
        "0",
        "1",
        "results/digitnet/step0005/embeddings/features.0.3/umap-2d-p0-s1.parquet",
    ]
    outputs = demo.maps.method_outputs("umap", batched=True)
    assert len(outputs) == 15 * 4 and len(set(outputs)) == len(outputs)
    layer = per_layer.maps.layer_jobs("tsne")(
        w(model="digitnet", ckpt="step0060", layer="fc1")
    )
    assert len(layer) == 1 and [m[-1] for m in layer[0]["maps"]] == [
        demo.maps.embedding("digitnet", "step0060", "fc1", "tsne", *p)
        for p in demo.maps.method_maps("tsne")
    ]
    ckpt = demo.maps.layer_jobs("tsne")(w(model="digitnet", ckpt="step0060"))
    assert [j["features"].split("/")[-1] for j in ckpt] == [
        f"{layer}.npy" for layer in demo.model_layer_list("digitnet")
    ]
    assert ckpt[demo.model_layer_list("digitnet").index("fc1")] == layer[0]


def test_reduce_rule_per_layer_per_checkpoint_and_batched(demo, per_layer):
    tsne = per_layer.maps.rule("tsne")
    assert tsne["features"] == "results/{model}/{ckpt}/features"
    assert tsne["maps"] == per_layer.maps.method_outputs("tsne")
    assert tsne["log"] == "results/logs/reduce_tsne/{model}/{ckpt}/{layer}.log"
    assert tsne["benchmark"].endswith("reduce_tsne/{model}/{ckpt}/{layer}.tsv")
    tsne, umap = demo.maps.rule("tsne"), demo.maps.rule("umap")
    assert tsne["features"] == "results/{model}/{ckpt}/features"
    assert (
        tsne["maps"] == demo.maps.method_outputs("tsne") and len(tsne["maps"]) == 5 * 8
    )
    assert tsne["log"] == "results/logs/reduce_tsne/{model}/{ckpt}.log"
    assert tsne["benchmark"].endswith("reduce_tsne/{model}/{ckpt}.tsv")
    assert (
        umap["features"] == demo.extract.all_features_dirs()
        and len(umap["features"]) == 3
    )
    assert umap["maps"] == demo.maps.method_outputs("umap", batched=True)
    assert umap["log"] == "results/logs/reduce_umap.log"
    assert umap["jobs"] == demo.maps.jobs("umap")


def _files(plan: Plan, patterns: list[str]) -> set[str]:
    """The files that the jobs with these output patterns write, over the whole run."""
    out = set()
    for m, c in plan.model_ckpts():
        for layer in plan.model_layer_list(m) if plan.layer_jobs == "layer" else [""]:
            out |= {
                p.replace("{model}", m).replace("{ckpt}", c).replace("{layer}", layer)
                for p in patterns
            }
    return out


def test_layer_jobs_write_the_same_files_per_layer_or_per_checkpoint(demo, per_layer):
    assert (demo.layer_jobs, per_layer.layer_jobs) == ("checkpoint", "layer")
    for method in ("tsne", "pca"):
        assert _files(demo, demo.maps.rule(method)["maps"]) == _files(
            per_layer, per_layer.maps.rule(method)["maps"]
        )
    metrics, layer_metrics = demo.metrics, per_layer.metrics
    for name in ("layer", "neighbors", "distances"):
        files = _files(demo, metrics.job_outputs(name))
        assert files == _files(per_layer, layer_metrics.job_outputs(name))
        assert len(files) == 15
    assert _files(demo, metrics.job_outputs("layer")) == set(metrics.all_layer_paths())
    assert metrics.log("measure_maps") == "results/logs/measure_maps/{model}/{ckpt}.log"
    assert layer_metrics.benchmark("measure_maps") == (
        "results/benchmarks/measure_maps/{model}/{ckpt}/{layer}.tsv"
    )
    figs, layer_figs = demo.figures, per_layer.figures
    for name in ("static_files", "sweep_files"):
        for ext in ("png", "pdf"):
            templates = getattr(figs, name)(ext)
            assert _files(demo, figs.job_outputs(templates)) == _files(
                per_layer, layer_figs.job_outputs(templates)
            )
    (path, labels), *_ = figs.job_outputs(figs.static_report())
    assert "/figures/features.0.3/" in path and labels["layer"] == "features.0.3"
    assert figs.benchmark("plot_embeddings").endswith(
        "plot_embeddings/{model}/{ckpt}.tsv"
    )
    # a checkpoint's job does what its layers' jobs do, layer by layer in config order
    ckpt = w(model="digitnet", ckpt="step0060")
    layers = [w(**vars(ckpt), layer=x) for x in demo.model_layer_list("digitnet")]
    assert demo.metrics.jobs(ckpt) == [per_layer.metrics.jobs(x)[0] for x in layers]
    assert demo.maps.job_embeddings(ckpt) == [
        p for x in layers for p in per_layer.maps.job_embeddings(x)
    ]
    assert figs.job_layers(ckpt) == [layer_figs.job_layers(x)[0] for x in layers]
    assert len(figs.job_embeddings_needed(ckpt)) == 5 * len(
        layer_figs.job_embeddings_needed(layers[0])
    )


def test_layer_jobs_per_checkpoint_need_models_with_the_same_layers():
    config = copy.deepcopy(DEMO)
    other = copy.deepcopy(config["models"]["digitnet"])
    other["layers"] = dict(list(other["layers"].items())[:2])
    config["models"]["other"] = other
    assert plan_of(config).layer_jobs == "layer"  # auto
    config["layer_jobs"] = "checkpoint"
    with pytest.raises(ValueError, match="layer_jobs: checkpoint needs every model"):
        plan_of(config)


def test_targets_of_every_stage(demo):
    maps = demo.maps.targets() + demo.metrics.targets()
    assert len(maps) == 15 * 14 + 1 + 4
    assert "results/metrics.parquet" in maps
    assert len(demo.extract.targets()) == 6
    assert len(demo.explain.targets()) == 3 * (7 + 6)  # with the saliency checks
    assert demo.projector.targets()[0] == "results/digitnet/step0005/projector"
    evo = demo.evolution.targets()
    assert len(evo) == 2 * 2 * 4  # layers x methods x files
    assert "results/digitnet/evolution/relu/tsne/slider.html" in evo
    index = demo.index.files()
    assert len(index) == len(set(index)) and set(maps) <= set(index)


def test_wildcard_constraints_match_exactly_the_configured_names(demo):
    c = demo.wildcard_constraints()
    import re

    assert re.fullmatch(c["layer"], "features.0.3")
    assert not re.fullmatch(c["layer"], "featuresX0X3")
    assert re.fullmatch(c["method"], "umap") and not re.fullmatch(c["method"], "x")
    assert alternatives(["a", "ab"]) == "ab|a"


def test_evolution_options_override_only_what_the_method_has(demo):
    tsne = demo.evolution.options(w(method="tsne"))
    assert tsne["n_iter"] == DEMO["evolution"]["n_iter"]
    assert tsne["perplexity_too_large"] == "error"  # the rest is maps.tsne
    assert demo.evolution.options(w(method="pca")) == {"standardize": False}
    files = demo.evolution.feature_files(w(model="digitnet", layer="relu"))
    assert list(files) == ["step0005", "step0060", "step0600"]


def test_figure_selection_titles_and_sweep_grids(demo):
    figs = demo.figures
    assert figs.selected_maps("maps") == [
        ("tsne", "2", "10", "0"),
        ("pca", "2", "0", "0"),
        ("umap", "2", "0", "0"),
    ]
    assert list(figs.swept()) == [("tsne", "2")]
    maps = figs.layer_maps(w(model="digitnet", ckpt="step0600", layer="relu"))
    titles = [m["title"] for m in maps]
    assert "digitnet step0600 relu: tsne 2-D, perplexity 10, seed 0" in titles
    assert "digitnet step0600 relu: pca 2-D" in titles
    assert "digitnet step0600 relu: umap 2-D, seed 0" in titles
    (grid,) = figs.layer_sweeps(w(model="digitnet", ckpt="step0600", layer="relu"))
    assert grid["rows"] == ["perplexity 10", "perplexity 30"]
    assert grid["cols"] == ["seed 0", "seed 1"]
    assert grid["cells"][1][0][1].endswith("tsne-2d-p30-s0.parquet")
    path, labels = figs.static_report()[0]
    assert path.endswith("tsne-2d-p10-s0.label.png") and labels["colour by"] == "label"
    assert figs.grid_report()[0][0] == "results/{model}/figures/grid-tsne-2d-p10-s0.png"
    # per layer: 3 PNG + 3 PDF, 1 plotly page (3-D t-SNE; 2-D maps are in atlas.html),
    # 2 sweep files; per model 3 grids x (PNG, PDF)
    assert len(figs.targets()) == 15 * 9 + 3 * 2


def test_a_new_registered_method_is_planned_from_its_axes(monkeypatch):
    """No method name is written in the planner: a new module is enough."""

    def fit(job):
        for s in job.specs:
            yield s, np.zeros((len(job.x), s.dim), np.float32), {}

    fake = MapMethod(name="fake", title="Fake", axes=("seed",), packages={}, fit=fit)
    known = {**registry.methods(), "fake": fake}
    monkeypatch.setattr(registry, "methods", lambda: known)
    config = copy.deepcopy(DEMO)
    validate(config, SCHEMA)
    # after validation: the schema's enum does not know "fake"
    config["maps"]["methods"] = ["tsne", "fake"]
    config["maps"]["fake"] = {}
    plan = Plan(config)
    assert [p for p in plan.maps.params() if p[0] == "fake"] == [
        ("fake", "2", "0", "0"),
        ("fake", "2", "0", "1"),
        ("fake", "3", "0", "0"),
        ("fake", "3", "0", "1"),
    ]
    assert next(fake.fit(FitJob(np.ones((3, 2)), [MapSpec(2)], {})))[1].shape == (3, 2)


def test_paper_figures_resolve_to_the_files_they_show(demo):
    paper = demo.paper
    grid = paper.figure("layers")
    assert grid["rows"] == ["step0005", "step0060", "step0600"]
    assert grid["panels"][0]["embedding"].endswith(
        "step0005/embeddings/features.0.3/tsne-2d-p30-s0.parquet"
    )
    sweep = paper.figure("sweep")
    assert sweep["cols"] == ["perplexity 10", "perplexity 30"]
    assert sweep["rows"] == ["seed 0", "seed 1"]
    cam = paper.figure("gradcam")
    assert cam["checkpoint"] == "results/demo/checkpoints/step0600.pt"
    assert cam["device"] == "auto" and cam["image_ids"] == [36, 107, 253, 300]
    assert paper.inputs(w(name="separation")) == sorted(
        demo.metrics.layer_path("digitnet", c, layer)
        for c in ("step0005", "step0060", "step0600")
        for layer in DEMO["models"]["digitnet"]["layers"]
    )
    assert paper.inputs(w(name="gradcam")) == sorted(
        [
            "results/demo/checkpoints/step0600.pt",
            demo.extract.predictions("digitnet", "step0600"),
        ]
    )
    assert paper.fonts == {"font_size": 7, "title_size": 7, "letter_size": 9}
    cka = paper.figure("cka")
    assert cka["comparison"] == "checkpoints"
    assert cka["keys"] == list(DEMO["models"]["digitnet"]["layers"])
    assert paper.inputs(w(name="cka")) == ["results/similarity/parts/digitnet.parquet"]
    assert len(paper.targets()) == 2 * 8  # pdf and png of the demo's 8 figures
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    kinds = schema["properties"]["paper"]["properties"]["figures"]
    assert kinds["additionalProperties"]["properties"]["kind"]["enum"] == list(KINDS)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "layer_grid", "model": "nope"}, "paper.figures.bad.model: 'nope'"),
        (
            {"kind": "layer_grid", "model": "digitnet", "layers": ["x"]},
            "bad.layers: 'x'",
        ),
        ({"kind": "layer_grid", "model": "digitnet", "seed": 7}, "bad.seed: 7"),
        ({"kind": "layer_grid", "model": "digitnet", "method": "pca", "seed": 7}, None),
        ({"kind": "perplexity_sweep", "model": "digitnet", "perplexities": [5]}, "5"),
        ({"kind": "filters", "model": "digitnet", "checkpoint": "x"}, "bad.checkpoint"),
    ],
)
def test_bad_paper_figures_fail_when_the_plan_is_made(entry, message):
    config = copy.deepcopy(DEMO)
    config["paper"]["figures"] = {"bad": entry}
    if message is None:  # PCA has no seed axis: any seed is ignored
        assert plan_of(config).paper.figure("bad")["panels"]
        return
    with pytest.raises(ValueError, match=message):
        plan_of(config)


def test_cross_references_of_the_config_are_checked():
    config = copy.deepcopy(DEMO)
    config["explain"]["checkpoints"] = ["step9999"]
    with pytest.raises(ValueError, match="explain.checkpoints: \\['step9999'\\]"):
        plan_of(config)
    config = copy.deepcopy(DEMO)
    config["evolution"]["layers"] = ["nope"]
    with pytest.raises(ValueError, match="evolution.layers \\['nope'\\]"):
        plan_of(config)


def test_shards_are_planned_only_when_asked(demo):
    ckpt = w(model="digitnet", ckpt="step0600")
    assert demo.extract.shard_dirs(ckpt) == []
    config = copy.deepcopy(DEMO)
    config["extract"]["shards"] = 3
    assert plan_of(config).extract.shard_dirs(ckpt) == [
        f"results/digitnet/step0600/shards/{i}-of-3" for i in range(3)
    ]


def test_atlas_plan_holds_every_2d_map_and_its_neighbours(demo):
    atlas = demo.atlas
    maps = atlas.maps()
    assert len(maps) == 15 * 7  # 3 checkpoints x 5 layers x (4 t-SNE, 1 PCA, 2 UMAP)
    assert {m["method"] for m in maps} == {"tsne", "pca", "umap"}
    assert all("-2d-" in m["embedding"] for m in maps)
    inputs = atlas.inputs()
    assert len(inputs["neighbors"]) == 15
    assert inputs["neighbors"][0]["path"].endswith("metrics/features.0.3.neighbors.npy")
    assert [e["ckpts"] for e in inputs["evolution"]] == [
        ["step0005", "step0060", "step0600"]
    ] * 4
    assert [e["ckpt"] for e in inputs["explain"]] == [
        "step0005",
        "step0060",
        "step0600",
    ]
    hrefs = [link["href"] for link in inputs["links"]]
    assert "digitnet/step0600/figures/relu/tsne-3d-p10-s0.html" in hrefs
    assert "digitnet/evolution/relu/tsne/slider.html" in hrefs
    assert inputs["neighbors"][0]["distances"].endswith(
        "metrics/features.0.3.neighbor_distances.npy"
    )
    assert len(atlas.files()) == 3 + 105 + 2 * 15 + 4 + 3


def test_the_similarity_plan_compares_each_model_and_each_pair_of_models():
    config = copy.deepcopy(DEMO)
    twin = copy.deepcopy(config["models"]["digitnet"])
    twin["checkpoints"] = {"a": "x.pt", "b": "y.pt"}
    config["models"]["twin"] = twin
    plan = plan_of(config)
    sim, r = plan.similarity, plan.results
    assert sim.targets() == [
        f"{r}/similarity/cka.parquet",
        f"{r}/similarity/summary.json",
        f"{r}/similarity/figures",
    ]
    assert sim.parts() == [
        f"{r}/similarity/parts/digitnet.parquet",
        f"{r}/similarity/parts/twin.parquet",
        f"{r}/similarity/parts/pairs/digitnet/twin.parquet",
    ]
    features = sim.model_features(w(model="digitnet"))
    assert list(features) == list(DEMO["models"]["digitnet"]["checkpoints"])
    assert list(features["step0600"]) == list(DEMO["models"]["digitnet"]["layers"])
    assert features["step0600"]["fc1"] == f"{r}/digitnet/step0600/features/fc1.npy"
    pair = sim.pair_features(w(model="digitnet", other="twin"))
    assert [(m, c) for m, c, _ in pair] == [("digitnet", "step0600"), ("twin", "b")]
    assert sim.pair_feature_dirs(w(model="digitnet", other="twin")) == [
        f"{r}/digitnet/step0600/features",
        f"{r}/twin/b/features",
    ]
    assert set(sim.targets()) <= set(plan.index.files())
    off = {**config, "similarity": {"enabled": False}, "paper": {"figures": {}}}
    off = plan_of(off).similarity
    assert off.targets() == [] and off.index_inputs() == {}
    assert sim.index_inputs() == {"similarity": f"{r}/similarity/summary.json"}


def test_a_similarity_paper_figure_needs_the_stage_and_two_checkpoints():
    figure = {"kind": "similarity", "model": "digitnet"}
    config = {**DEMO, "paper": {"figures": {"cka": figure}}}
    off = {**config, "similarity": {"enabled": False}}
    with pytest.raises(ValueError, match="similarity.enabled: true"):
        plan_of(off)
    one = copy.deepcopy(config)
    one["models"]["digitnet"]["checkpoints"] = {"last": "x.pt"}
    with pytest.raises(ValueError, match="2 or more checkpoints"):
        plan_of(one)
    layers = {**figure, "comparison": "layers", "checkpoints": ["step0600"]}
    plan = plan_of(
        {**one, "paper": {"figures": {"cka": {**layers, "checkpoints": None}}}}
    )
    assert plan.paper.figure("cka")["keys"] == ["last"]


def test_the_landing_page_reads_the_log_of_every_job_before_it(demo, per_layer):
    logs = demo.index.logs()
    rules = [r for r, _ in logs]
    assert len(logs) == len({p for _, p in logs})
    assert ("reduce_umap", "results/logs/reduce_umap.log") in logs  # batched: one job
    assert ("reduce_tsne", "results/logs/reduce_tsne/digitnet/step0060.log") in logs
    assert rules.count("measure_maps") == 3 and rules.count("check_saliency") == 3
    assert (
        per_layer.index.logs().count(
            ("measure_maps", "results/logs/measure_maps/digitnet/step0060/fc1.log")
        )
        == 1
    )
    assert {"write_index", "write_provenance", "draw_paper_figure"}.isdisjoint(rules)
    bare = plan_of(
        {**DEMO, "explain": {"enabled": False}, "projector": {"enabled": False},
         "evolution": {"enabled": False}, "similarity": {"enabled": False},
         "paper": {"figures": {}}}
    )  # fmt: skip
    left = {r for r, _ in bare.index.logs()}
    gone = {"check_saliency", "render_saliency", "export_projector", "align_evolution",
            "measure_similarity", "gather_similarity"}  # fmt: skip
    assert gone <= set(rules) and gone.isdisjoint(left)
    assert bare.index.summary()["saliency"] == []
    files = set(demo.index.summary_files())
    assert {p for _, p in logs} <= files
    assert "results/digitnet/step0600/explain/saliency_checks.parquet" in files


def test_the_landing_pages_figures_are_captioned_with_what_they_show(demo):
    captions = demo.index.captions()
    grid = "results/digitnet/figures/grid-tsne-2d-p10-s0.png"
    assert captions[grid] == (
        "digitnet: tsne 2-D, perplexity 10, seed 0, checkpoints (rows) x layers (columns)"
    )
    assert captions["results/digitnet/evolution/relu/pca/strip.png"] == (
        "digitnet relu: pca maps aligned across checkpoints "
        "(step0005 → step0060 → step0600)"
    )
    assert captions["results/paper/filters.png"] == (
        "digitnet step0600 features.2.3: images that activate each channel most"
    )
    pictures = [f for f in demo.index.files() if f.endswith(".png")]
    shown = [f for f in pictures if f.endswith(("layer_summary.png", "strip.png"))
             or "/figures/grid-" in f]  # fmt: skip
    assert shown and set(shown) <= set(captions)
    assert all("/" not in c.split(": ", 1)[1] for c in captions.values())


def test_a_method_without_perplexity_is_never_labelled_with_one(demo):
    """Figures, sweep grids, paper figures, the atlas's maps and the landing page's
    captions word a map from its method's axes: PCA and UMAP get no 'perplexity 0'."""
    config = copy.deepcopy(DEMO)
    config["figures"]["sweep_grids"] = {"methods": ["tsne", "umap"], "dims": [2]}
    pca_grid = {"kind": "layer_grid", "model": "digitnet", "method": "pca"}
    config["paper"]["figures"] = {"pca": {**pca_grid, "perplexity": 30, "seed": 1}}
    plan = plan_of(config)
    tsne, umap = plan.figures.layer_sweeps(
        w(model="digitnet", ckpt="step0600", layer="relu")
    )
    assert [c[0] for row in tsne["cells"] for c in row] == [
        "p10 s0",
        "p10 s1",
        "p30 s0",
        "p30 s1",
    ]
    assert [c[0] for row in umap["cells"] for c in row] == ["s0", "s1"]
    assert umap["rows"] == [""] and umap["cols"] == ["seed 0", "seed 1"]
    # a paper grid of PCA ignores the perplexity and seed it was given
    panel = plan.paper.figure("pca")["panels"][0]
    assert panel["embedding"].endswith("embeddings/features.0.3/pca-2d-p0-s0.parquet")
    # the atlas's maps carry no value for an axis the method lacks
    maps = {(m["method"], m["perplexity"], m["seed"]) for m in demo.atlas.maps()}
    assert ("pca", None, None) in maps and ("umap", None, 1) in maps
    assert ("tsne", 30.0, 1) in maps
    captions = demo.index.captions()
    assert captions["results/digitnet/figures/grid-pca-2d-p0-s0.png"] == (
        "digitnet: pca 2-D, checkpoints (rows) x layers (columns)"
    )
    assert captions["results/digitnet/evolution/relu/tsne/strip.png"].endswith(
        "(step0005 → step0060 → step0600), perplexity 30"
    )
    words = [
        m["title"]
        for m in plan.figures.layer_maps(
            w(model="digitnet", ckpt="step0600", layer="relu")
        )
    ]
    assert not [t for t in [*words, *captions.values()] if "perplexity 0" in t]
