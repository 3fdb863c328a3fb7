# Helpers of plot.smk: which figures the config asks for, and what each job draws.

FIGURES = config["figures"]
FIG = f"{RESULTS}/{{model}}/{{ckpt}}/figures/{{layer}}"
SHEETS = f"{RESULTS}/thumbnails"


def map_name(method, dim, perplexity, seed):
    return f"{method}-{dim}d-p{perplexity}-s{seed}"


def selected_maps(section):
    """The configured maps (method, dim, perplexity, seed) that figures.<section> selects.

    sweep: first keeps the first perplexity and seed of each (method, dim) only.
    """
    sel = FIGURES[section]
    seen, out = set(), []
    for method, dim, perp, seed in map_params():
        if method not in sel["methods"] or int(dim) not in sel["dims"]:
            continue
        if sel.get("sweep", "first") == "first" and (method, dim) in seen:
            continue
        seen.add((method, dim))
        out.append((method, dim, perp, seed))
    return out


def swept():
    """(method, dim) -> [(perplexity, seed)] of the methods figures.sweep_grids selects, > 1 map each."""
    sel = FIGURES["sweep_grids"]
    sweeps = {}
    for method, dim, perp, seed in map_params():
        if method in sel["methods"] and int(dim) in sel["dims"]:
            sweeps.setdefault((method, dim), []).append((perp, seed))
    return {k: v for k, v in sweeps.items() if len(v) > 1}


def static_files(ext):
    return [
        f"{FIG}/{map_name(*p)}.{colour}.{ext}"
        for p in selected_maps("maps")
        for colour in FIGURES["colour_by"]
    ]


def static_report():
    """The static PNGs, flagged for the report with one label set each."""
    out = []
    for p in selected_maps("maps"):
        for colour in FIGURES["colour_by"]:
            labels = {"layer": "{layer}", "map": map_name(*p), "colour by": colour}
            flagged = report(
                f"{FIG}/{map_name(*p)}.{colour}.png",
                caption="../report/embedding.rst",
                category="Maps",
                subcategory="{model} {ckpt}",
                labels=labels,
            )
            out.append(flagged)
    return out


def html_files():
    return [f"{FIG}/{map_name(*p)}.html" for p in selected_maps("html")]


def sweep_files(ext):
    return [f"{FIG}/sweep-{method}-{dim}d.{ext}" for method, dim in swept()]


def sweep_report():
    out = []
    for method, dim in swept():
        labels = {"layer": "{layer}", "map": f"{method} {dim}-D"}
        flagged = report(
            f"{FIG}/sweep-{method}-{dim}d.png",
            caption="../report/sweep_grid.rst",
            category="Sweeps",
            subcategory="{model} {ckpt}",
            labels=labels,
        )
        out.append(flagged)
    return out


def _title(model, ckpt, layer, method, dim, perp, seed):
    extra = {"pca": "", "umap": f", seed {seed}"}.get(
        method, f", perplexity {perp}, seed {seed}"
    )
    return f"{model} {ckpt} {layer}: {method} {dim}-D{extra}"


def layer_maps(wildcards):
    """What one layer's job draws: per selected map its embedding, title and output files."""
    w = wildcards
    fig = f"{run_dir(w.model, w.ckpt)}/figures/{w.layer}"
    static, html = selected_maps("maps"), selected_maps("html")
    out = []
    for p in dict.fromkeys([*static, *html]):
        name = f"{fig}/{map_name(*p)}"
        colours = FIGURES["colour_by"] if p in static else []
        out.append(
            {
                "embedding": embedding_path(w.model, w.ckpt, w.layer, *p),
                "title": _title(w.model, w.ckpt, w.layer, *p),
                "png": [f"{name}.{c}.png" for c in colours],
                "pdf": [f"{name}.{c}.pdf" for c in colours],
                "html": f"{name}.html" if p in html else None,
            }
        )
    return out


def layer_sweeps(wildcards):
    """Sweep grids of one layer: rows are perplexities, columns seeds."""
    w = wildcards
    fig = f"{run_dir(w.model, w.ckpt)}/figures/{w.layer}"
    pred = f"{run_dir(w.model, w.ckpt)}/predictions.parquet"
    out = []
    for (method, dim), maps in swept().items():
        perps = list(dict.fromkeys(p for p, _ in maps))
        seeds = list(dict.fromkeys(s for _, s in maps))
        path = {
            (p, s): embedding_path(w.model, w.ckpt, w.layer, method, dim, p, s)
            for p, s in maps
        }
        out.append(
            {
                "png": f"{fig}/sweep-{method}-{dim}d.png",
                "pdf": f"{fig}/sweep-{method}-{dim}d.pdf",
                "cells": [
                    [
                        (f"p{p} s{s}", path[(p, s)], pred) if (p, s) in path else None
                        for s in seeds
                    ]
                    for p in perps
                ],
                "rows": [f"perplexity {p}" if method == "tsne" else "" for p in perps],
                "cols": [f"seed {s}" for s in seeds],
            }
        )
    return out


def layer_embeddings_needed(wildcards):
    paths = [m["embedding"] for m in layer_maps(wildcards)]
    for g in layer_sweeps(wildcards):
        paths += [c[1] for row in g["cells"] for c in row if c]
    return list(dict.fromkeys(paths))


def layer_sheets(wildcards):
    return [SHEETS] if html_files() else []


def grid_maps():
    """The map of each model's checkpoint x layer grids: the first of each selected (method, dim)."""
    return selected_maps("checkpoint_layer_grids")


def model_grids(wildcards):
    """Checkpoint x layer grids of one model: rows are checkpoints, columns layers."""
    m = wildcards.model
    ckpts, layers = list(MODELS[m]["checkpoints"]), list(MODELS[m]["layers"])
    return [
        {
            "png": f"{RESULTS}/{m}/figures/grid-{map_name(*p)}.png",
            "pdf": f"{RESULTS}/{m}/figures/grid-{map_name(*p)}.pdf",
            "cells": [
                [
                    (
                        "",
                        embedding_path(m, c, l, *p),
                        f"{run_dir(m, c)}/predictions.parquet",
                    )
                    for l in layers
                ]
                for c in ckpts
            ],
            "rows": ckpts,
            "cols": layers,
        }
        for p in grid_maps()
    ]


def model_grid_inputs(wildcards):
    return list(
        dict.fromkeys(
            f
            for g in model_grids(wildcards)
            for row in g["cells"]
            for c in row
            for f in c[1:]
        )
    )


def grid_report():
    out = []
    for p in grid_maps():
        flagged = report(
            f"{RESULTS}/{{model}}/figures/grid-{map_name(*p)}.png",
            caption="../report/checkpoint_layer_grid.rst",
            category="Checkpoints x layers",
            labels={"model": "{model}", "map": map_name(*p)},
        )
        out.append(flagged)
    return out


def _fill(template, model, ckpt=None, layer=None):
    return (
        template.replace("{model}", model)
        .replace("{ckpt}", str(ckpt))
        .replace("{layer}", str(layer))
    )


def figure_targets():
    """Every figure and interactive map of the run."""
    per_layer = [*static_files("png"), *static_files("pdf"), *html_files()]
    per_layer += [*sweep_files("png"), *sweep_files("pdf")]
    out = [
        _fill(t, m, c, l)
        for m, c in model_ckpts()
        for l in MODELS[m]["layers"]
        for t in per_layer
    ]
    for m in MODELS:
        if len(MODELS[m]["checkpoints"]) * len(MODELS[m]["layers"]) > 1:
            for p in grid_maps():
                out += [
                    f"{RESULTS}/{m}/figures/grid-{map_name(*p)}.{e}"
                    for e in ("png", "pdf")
                ]
    return out


def index_files(wildcards):
    """What index.html links: figures, pages, predictions, the maps stage's outputs
    (embeddings, metrics tables, layer summaries), explanations, projector exports and
    training-evolution figures."""
    files = figure_targets() + maps_targets() + all_layer_metrics()
    files += explain_targets() + projector_targets() + evolution_targets()
    files += [f"{run_dir(m, c)}/predictions.parquet" for m, c in model_ckpts()]
    return list(dict.fromkeys(files))


# --- the atlas page (write_atlas) ---


def neighbors_path(model, ckpt, layer):
    """Each image's feature-space neighbours (measure_maps), read by the atlas page."""
    return f"{run_dir(model, ckpt)}/metrics/{layer}.neighbors.npy"


def atlas_maps():
    """Every 2-D map of the run: [{model, ckpt, layer, method, perplexity, seed, embedding}]."""
    return [
        {
            "model": m,
            "ckpt": c,
            "layer": l,
            "method": method,
            "perplexity": float(perp),
            "seed": int(seed),
            "embedding": embedding_path(m, c, l, method, dim, perp, seed),
        }
        for m, c in model_ckpts()
        for l in model_layer_list(m)
        for method, dim, perp, seed in map_params()
        if dim == "2"
    ]


def atlas_evolution():
    """The evolution stage's aligned 2-D maps, one entry per (model, layer, method)."""
    if not EVOLUTION["enabled"]:
        return []
    return [
        {
            "model": m,
            "layer": l,
            "method": method,
            "perplexity": EVOLUTION["perplexity"],
            "seed": EVOLUTION["seed"],
            "ckpts": list(spec["checkpoints"]),
            "dir": f"{RESULTS}/{m}/evolution/{l}/{method}/maps",
        }
        for m, spec in MODELS.items()
        if len(spec["checkpoints"]) >= 2
        for l in evolution_layers(m)
        for method in EVOLUTION["methods"]
    ]


def atlas_explain():
    """The Grad-CAM folders of the explain stage: [{model, ckpt, dir}]."""
    folders = [f for f in explain_targets() if f.endswith("/explain/gradcam")]
    return [
        {"model": m, "ckpt": c, "dir": f"{run_dir(m, c)}/explain/gradcam"}
        for m, c in model_ckpts()
        if f"{run_dir(m, c)}/explain/gradcam" in folders
    ]


def atlas_links():
    """Pages the atlas links: the plotly pages (3-D maps) and the evolution sliders."""
    pages = [
        (_fill(t, m, c, l), f"plotly {m} {c} {l} {t.rsplit('/', 1)[-1][:-5]}")
        for m, c in model_ckpts()
        for l in MODELS[m]["layers"]
        for t in html_files()
    ]
    pages += [
        (f, "evolution " + " ".join(f.split("/")[-5:-1]).replace(" evolution ", " "))
        for f in evolution_targets()
        if f.endswith("slider.html")
    ]
    return [{"label": label, "href": os.path.relpath(f, RESULTS)} for f, label in pages]


def atlas_plan():
    """What write_atlas reads, as the viewer's `write_atlas` takes it."""
    return {
        "predictions": {
            f"{m}/{c}": f"{run_dir(m, c)}/predictions.parquet" for m, c in model_ckpts()
        },
        "maps": atlas_maps(),
        "neighbors": [
            {"model": m, "ckpt": c, "layer": l, "path": neighbors_path(m, c, l)}
            for m, c in model_ckpts()
            for l in model_layer_list(m)
        ],
        "evolution": atlas_evolution(),
        "explain": atlas_explain(),
        "links": atlas_links(),
    }


def atlas_inputs():
    """The files of atlas_plan, as rule inputs."""
    plan = atlas_plan()
    files = list(plan["predictions"].values())
    files += [m["embedding"] for m in plan["maps"]]
    files += [n["path"] for n in plan["neighbors"]]
    files += [e["dir"] for e in plan["evolution"] + plan["explain"]]
    return files
