"""The maps stage at 10,000-50,000 points (issue #15): t-SNE threads, 3-D maps, PCA memory,
feature-space neighbours. Prints one JSON line per run; every run is a fresh process so
that its peak RSS (`ru_maxrss`) is its own.

Data:
  digits: the bundled 8 x 8 digits (scikit-learn, 1,797 images) drawn with replacement to N
    images, each shifted by -1..1 px in x and y, contrast x U(0.7, 1.3) and noise
    N(0, 1) (of 0..16), seeded: 64-D pixel features with 10 real classes;
  mixture: N x 2,048 float32 Gaussian mixture (20 clusters), written to a .npy and read as
    the workflow reads a layer's features (a memmap).

    nice -n 10 python benchmarks/maps_scale.py tsne-steps --n 10000 --steps 50
    nice -n 10 python benchmarks/maps_scale.py tsne-3d-sub --n 10000 --fitted 5000
    nice -n 10 python benchmarks/maps_scale.py tsne-threads --n 10000
    nice -n 10 python benchmarks/maps_scale.py tsne-3d --n 10000
    nice -n 10 python benchmarks/maps_scale.py umap --n 10000
    nice -n 10 python benchmarks/maps_scale.py pca --n 10000 50000
    nice -n 10 python benchmarks/maps_scale.py pca-maps --n 10000 50000
    nice -n 10 python benchmarks/maps_scale.py neighbors --n 10000 50000 --queries 5000
    nice -n 10 python benchmarks/maps_scale.py large-2d --n 100000 250000 --fitted 25000
    nice -n 10 python benchmarks/maps_scale.py large-2d --n 100000 250000 --fitted 25000 \
        --routes umap-sample

`large-2d` (2-D maps at 100,000+ points): per N, the whole 2-D t-SNE map (Annoy kNN graph
+ FFT gradients, the workflow's route), the same map fitted on a class-stratified sample
of `--fitted` points with the rest placed by openTSNE's transform, a whole UMAP map, and
a UMAP map fitted on such a sample with the rest placed by its transform
(`maps.umap.max_points`); each in its own process, with CPU seconds, peak RSS and 10-NN
accuracy (5,000 points). `--routes` picks some of them (default: all).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# CNNATLAS_SCRIPTS: another checkout's workflow/scripts (e.g. main, for "before").
sys.path.insert(0, os.getenv("CNNATLAS_SCRIPTS", str(ROOT / "workflow" / "scripts")))


def _knn(y: np.ndarray, labels: np.ndarray) -> float:
    """kNN accuracy (4 decimals) with the schema's maps.metrics k, folds and seed."""
    from cnnatlas.metrics import knn_accuracy
    from cnnatlas.schema import defaults

    m = defaults("maps.metrics")
    return round(knn_accuracy(y, labels, m["k"], m["folds"], m["seed"]), 4)


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n augmented 8 x 8 digits as 64-D float32 features and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(d.images), n)
    img = d.images[pick]
    out = np.empty_like(img)
    for i, (dy, dx) in enumerate(rng.integers(-1, 2, (n, 2))):
        out[i] = np.roll(img[i], (dy, dx), axis=(0, 1))
    out *= rng.uniform(0.7, 1.3, (n, 1, 1))
    out += rng.normal(0, 1, out.shape)
    return out.reshape(n, 64).astype(np.float32), d.target[pick]


def mixture_file(n: int, d: int, path: Path, seed: int = 0) -> Path:
    """A seeded n x d float32 Gaussian mixture written to `path` in chunks; its labels
    beside it (`.labels.npy`)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 0.27, (20, d)).astype(np.float32)
    labels = rng.integers(0, 20, n)
    out = np.lib.format.open_memmap(path, "w+", np.float32, (n, d))
    for s in range(0, n, 4096):
        e = min(n, s + 4096)
        out[s:e] = means[labels[s:e]] + rng.normal(0, 1, (e - s, d)).astype(np.float32)
    out.flush()
    del out
    np.save(path.with_suffix(".labels.npy"), labels)
    return path


def peak_mib() -> float:
    """This process's peak RSS so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# --- parts, each run in its own process (`_child`) ---------------------------------


def _tsne_fit(n: int, dim: int, gradient: str, n_jobs: int) -> dict:
    from cnnatlas.maps.toolbox import prepare_features
    from cnnatlas.maps.tsne import (
        _jitter,
        fit_options,
        fit_tsne,
        pca_initialization,
        tsne_affinities,
    )
    from cnnatlas.metrics import subsample
    from cnnatlas.schema import default

    x, labels = digits(n)
    xp = prepare_features(x, False, 50)
    t = time.perf_counter()
    aff = tsne_affinities(xp, 30, n_jobs=n_jobs)
    t_aff = time.perf_counter() - t
    init = _jitter(pca_initialization(xp, dim), 0)
    opts = fit_options({"negative_gradient_method": gradient})
    t, c = time.perf_counter(), time.process_time()
    y, kl = fit_tsne(aff, init, n_jobs=n_jobs, seed=0, **opts)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    idx = subsample(n, 5000, default("maps.metrics.seed"))
    return {
        "n": n,
        "dim": dim,
        "gradient": "bh" if dim > 2 else gradient,
        "n_jobs": n_jobs,
        "affinities_s": round(t_aff, 2),
        "fit_s": round(wall, 2),
        "fit_cpu_s": round(cpu, 2),
        "kl": round(kl, 4),
        "knn_map": _knn(y[idx], labels[idx]),
        "load": load(),
    }


def _tsne_steps(n: int, steps: int, n_jobs: int) -> dict:
    """CPU and wall seconds per optimisation step of 2-D (FFT) and 3-D (Barnes-Hut) maps
    of the same affinities, and of the affinities, on `n_jobs` threads: `steps` steps at
    the early exaggeration (12) from the jittered PCA initialisation. A full map is 750
    steps (250 + 500), the cost per step varies little between the phases."""
    from cnnatlas.maps.toolbox import prepare_features
    from cnnatlas.maps.tsne import _jitter, pca_initialization, tsne_affinities
    from openTSNE import TSNEEmbedding

    x, _ = digits(n)
    xp = prepare_features(x, False, 50)
    t, c = time.perf_counter(), time.process_time()
    aff = tsne_affinities(xp, 30, n_jobs=n_jobs)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    out = {"n": n, "n_jobs": n_jobs, "steps": steps}
    out |= {"affinities_s": wall, "affinities_cpu_s": cpu}
    for dim, gradient in ((2, "fft"), (3, "bh")):
        init = _jitter(pca_initialization(xp, dim), 0)
        emb = TSNEEmbedding(
            init, aff, negative_gradient_method=gradient, n_jobs=n_jobs, random_state=0
        )
        t, c = time.perf_counter(), time.process_time()
        emb.optimize(n_iter=steps, exaggeration=12, momentum=0.8)
        out[f"{dim}d_{gradient}_s_per_step"] = (time.perf_counter() - t) / steps
        out[f"{dim}d_{gradient}_cpu_s_per_step"] = (time.process_time() - c) / steps
    out = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
    return {**out, "load": load()}


def _tsne_3d_sub(n: int, fitted: int) -> dict:
    """A 3-D map of n points fitted on a class-stratified subsample of `fitted` and the
    rest placed by transform (`subsampled_map`, 1 thread): CPU seconds and 10-NN accuracy
    of the fitted and of the placed points (5,000 of each at most)."""
    from cnnatlas.maps.toolbox import prepare_features, stratified_subsample
    from cnnatlas.maps.tsne import subsampled_map

    x, labels = digits(n)
    xp = prepare_features(x, False, 50)
    fit = stratified_subsample(n, fitted, labels, 0)
    t, c = time.perf_counter(), time.process_time()
    y, kl = subsampled_map(xp, fit, 3, 30, 0, {})
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rest = np.setdiff1d(np.arange(n), fit)[:5000]
    return {
        "n": n,
        "fitted": fitted,
        "s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "kl": kl,
        "knn_fitted": _knn(y[fit[:5000]], labels[fit[:5000]]),
        "knn_placed": _knn(y[rest], labels[rest]),
        "knn_features": _knn(x[:5000], labels[:5000]),
        "load": load(),
    }


def _pca(path: str, k: int) -> dict:
    from cnnatlas.maps.toolbox import load_features, prepare_features

    t, c = time.perf_counter(), time.process_time()
    x = load_features(path)
    xp = prepare_features(x, False, k)
    return {
        "shape": list(np.load(path, mmap_mode="r").shape),
        "out": list(xp.shape),
        "s": round(time.perf_counter() - t, 2),
        "cpu_s": round(time.process_time() - c, 2),
        "peak_rss_mib": round(peak_mib()),
        "load": load(),
    }


def _neighbors(path: str, k: int, queries: int | None = None) -> dict:
    """feature_neighbors over all N; or (`queries`) the same exact search for the first
    `queries` rows only, against all N, to extrapolate the time (linear in the rows)."""
    from cnnatlas.metrics import feature_neighbors
    from cnnatlas.schema import default
    from sklearn.neighbors import NearestNeighbors

    t, c = time.perf_counter(), time.process_time()
    x = np.load(path, mmap_mode="r")
    if queries is None:
        seed = default("maps.metrics.seed")
        feature_neighbors(x, Path(path).with_suffix(".nbrs.npy"), k, seed=seed)
    else:
        xf = np.asarray(x, dtype=np.float32)
        NearestNeighbors(n_neighbors=k + 1).fit(xf).kneighbors(xf[:queries])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    scale = len(x) / queries if queries else 1.0
    return {
        "shape": list(x.shape),
        "queries": queries or len(x),
        "s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "full_s_estimate": round(wall * scale, 1) if queries else None,
        "full_cpu_s_estimate": round(cpu * scale, 1) if queries else None,
        "peak_rss_mib": round(peak_mib()),
        "load": load(),
    }


def _pca_maps(path: str) -> dict:
    from cnnatlas.maps import MapSpec, get_method
    from cnnatlas.maps.toolbox import load_features

    t, c = time.perf_counter(), time.process_time()
    maps = get_method("pca").maps(load_features(path), [MapSpec(2), MapSpec(3)])
    shapes = [list(m.shape) for _, m, _ in maps]
    return {
        "shape": list(np.load(path, mmap_mode="r").shape),
        "out": shapes,
        "s": round(time.perf_counter() - t, 2),
        "cpu_s": round(time.process_time() - c, 2),
        "peak_rss_mib": round(peak_mib()),
        "load": load(),
    }


def _umap(n: int) -> dict:
    """UMAP 2-D and 3-D of the same features in one process (after a 500-point warm-up
    that pays numba's compilation), as the batched reduce_umap job makes them."""
    from cnnatlas.maps import get_method

    x, labels = digits(n)
    umap = get_method("umap")
    list(umap.maps(x[:500], [umap.spec(2, seed=0), umap.spec(3, seed=0)]))
    out = {"n": n}
    for dim in (2, 3):
        t, c = time.perf_counter(), time.process_time()
        list(umap.maps(x, [umap.spec(dim, seed=0)]))
        out[f"umap_{dim}d_s"] = round(time.perf_counter() - t, 2)
        out[f"umap_{dim}d_cpu_s"] = round(time.process_time() - c, 2)
    return {**out, "load": load()}


def _large_tsne(n: int, fitted: int | None) -> dict:
    """One 2-D t-SNE map of n digits (perplexity 30, seed 0, 1 thread, the schema's
    options): whole (fitted None) or fitted on a stratified sample and the rest placed."""
    from cnnatlas.maps.toolbox import prepare_features, stratified_subsample
    from cnnatlas.maps.tsne import (
        _jitter,
        fit_options,
        fit_tsne,
        pca_initialization,
        subsampled_map,
        tsne_affinities,
    )

    x, labels = digits(n)
    t, c = time.perf_counter(), time.process_time()
    xp = prepare_features(x, False, 50)
    out: dict = {"n": n, "route": "whole" if fitted is None else "sample"}
    if fitted is None:
        aff = tsne_affinities(xp, 30)
        out["affinities_s"] = round(time.perf_counter() - t, 2)
        init = _jitter(pca_initialization(xp, 2), 0)
        y, kl = fit_tsne(aff, init, seed=0, **fit_options({}))
        probe = np.arange(min(n, 5000))
    else:
        fit = stratified_subsample(n, fitted, labels, 0)
        y, kl = subsampled_map(xp, fit, 2, 30, 0, {})
        rest = np.setdiff1d(np.arange(n), fit)
        out["fitted"] = fitted
        out["knn_fitted"] = _knn(y[fit[:5000]], labels[fit[:5000]])
        probe = rest[:5000]
    out.update(
        s=round(time.perf_counter() - t, 2),
        cpu_s=round(time.process_time() - c, 2),
        kl=round(float(kl), 4),
        knn_map=_knn(y[probe], labels[probe]),
        knn_features=_knn(x[probe], labels[probe]),
        peak_mib=round(peak_mib()),
        load=load(),
    )
    return out


def _large_umap(n: int) -> dict:
    """One whole 2-D UMAP map of n digits (seed 0, maps.umap.max_points null), after a
    500-point warm-up that pays numba's compilation (not counted)."""
    from cnnatlas.maps import get_method

    x, labels = digits(n)
    umap = get_method("umap")
    list(umap.maps(x[:500], [umap.spec(2, seed=0)]))
    t, c = time.perf_counter(), time.process_time()
    whole = {"max_points": None}
    ((_, y, _),) = list(umap.maps(x, [umap.spec(2, seed=0)], whole))
    y = np.asarray(y)
    probe = np.arange(min(n, 5000))
    return {
        "n": n,
        "route": "umap-whole",
        "s": round(time.perf_counter() - t, 2),
        "cpu_s": round(time.process_time() - c, 2),
        "knn_map": _knn(y[probe], labels[probe]),
        "peak_mib": round(peak_mib()),
        "load": load(),
    }


def _large_umap_sample(n: int, fitted: int) -> dict:
    """One 2-D UMAP map of n digits (seed 0) by the workflow's route above
    maps.umap.max_points = `fitted`: fitted on a class-stratified sample, the rest
    placed by `UMAP.transform` in blocks; after the same 500-point warm-up as
    `_large_umap` (pynndescent's compilation is counted in both). `place_cpu_s`: the
    placement's part."""
    import cnnatlas.maps.toolbox as toolbox
    from cnnatlas.maps import get_method

    x, labels = digits(n)
    umap = get_method("umap")
    list(umap.maps(x[:500], [umap.spec(2, seed=0)]))
    placing = []
    place = toolbox.place_points

    def timed(*args):
        c = time.process_time()
        out = place(*args)
        placing.append(time.process_time() - c)
        return out

    toolbox.place_points = timed
    t, c = time.perf_counter(), time.process_time()
    opts = {"max_points": fitted}
    ((_, y, meta),) = list(umap.maps(x, [umap.spec(2, seed=0)], opts, labels=labels))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    sub = meta["subsample"]
    fit = toolbox.stratified_subsample(n, sub["size"], labels, sub["seed"])
    probe = np.setdiff1d(np.arange(n), fit)[:5000]
    return {
        "n": n,
        "route": "umap-sample",
        "fitted": fitted,
        "knn_fitted": _knn(y[fit[:5000]], labels[fit[:5000]]),
        "s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "place_cpu_s": round(sum(placing), 2),
        "knn_map": _knn(y[probe], labels[probe]),
        "knn_features": _knn(x[probe], labels[probe]),
        "peak_mib": round(peak_mib()),
        "load": load(),
    }


PARTS = {
    "large_tsne": _large_tsne,
    "large_umap": _large_umap,
    "large_umap_sample": _large_umap_sample,
    "tsne_fit": _tsne_fit,
    "tsne_steps": _tsne_steps,
    "tsne_3d_sub": _tsne_3d_sub,
    "pca": _pca,
    "pca_maps": _pca_maps,
    "neighbors": _neighbors,
    "umap": _umap,
}


# large-2d's routes: (part, its arguments after n; "fitted" stands for --fitted)
LARGE_ROUTES = {
    "tsne-sample": ("large_tsne", "fitted"),
    "tsne-whole": ("large_tsne", None),
    "umap-whole": ("large_umap",),
    "umap-sample": ("large_umap_sample", "fitted"),
}


def child(part: str, *args) -> dict:
    """Run `part(*args)` in a fresh Python process; its JSON result."""
    cmd = [sys.executable, __file__, "_child", part, json.dumps(args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part")
    ap.add_argument("args", nargs="*")
    ap.add_argument("--n", type=int, nargs="+", default=[10000])
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=50, help="tsne-steps: steps timed")
    ap.add_argument(
        "--fitted", type=int, default=5000, help="tsne-3d-sub: fitted points"
    )
    ap.add_argument(
        "--routes",
        nargs="+",
        choices=LARGE_ROUTES,
        default=list(LARGE_ROUTES),
        help="large-2d: the maps to make per N",
    )
    ap.add_argument(
        "--queries",
        type=int,
        help="neighbors at the largest --n: time this many query rows",
    )
    a = ap.parse_args()
    if a.part == "_child":
        print(json.dumps(PARTS[a.args[0]](*json.loads(a.args[1]))))
        return

    # One JSON line per run, printed as it ends (a long part killed keeps the others).
    def emit(run: dict) -> None:
        print(json.dumps({"part": a.part, "cpus": os.cpu_count(), **run}), flush=True)

    if a.part == "tsne-threads":
        for n in a.n:
            for j in (1, 2):
                emit(child("tsne_fit", n, 2, "auto", j))
    elif a.part == "tsne-3d":
        for n in a.n:
            for dim in (2, 3):
                emit(child("tsne_fit", n, dim, "fft", 1))
    elif a.part == "tsne-steps":
        for n in a.n:
            for j in (1, 2):
                emit(child("tsne_steps", n, a.steps, j))
    elif a.part == "tsne-3d-sub":
        for n in a.n:
            emit(child("tsne_3d_sub", n, a.fitted))
    elif a.part == "umap":
        for n in a.n:
            emit(child("umap", n))
    elif a.part == "large-2d":
        for n in a.n:
            for route in a.routes:
                part, *args = LARGE_ROUTES[route]
                emit(child(part, n, *[a.fitted if v == "fitted" else v for v in args]))
    elif a.part in ("pca", "pca-maps", "neighbors"):
        with tempfile.TemporaryDirectory(dir=os.getenv("TMPDIR", "/tmp")) as tmp:
            for n in a.n:
                path = str(mixture_file(n, a.d, Path(tmp) / f"x{n}.npy"))
                if a.part == "pca":
                    emit(child("pca", path, 50))
                elif a.part == "pca-maps":
                    emit(child("pca_maps", path))
                else:
                    q = a.queries if a.queries and n == max(a.n) > a.queries else None
                    emit(child("neighbors", path, 10, q))
                Path(path).unlink()
    else:
        raise SystemExit(f"unknown part {a.part!r}")


if __name__ == "__main__":
    main()
