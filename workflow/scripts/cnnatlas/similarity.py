"""Linear centred kernel alignment (CKA) between layers, checkpoints and models.

CKA (Kornblith et al., ICML 2019) compares two representations of the same N images,
X [N, D1] and Y [N, D2], through their centred Gram matrices K = Xc Xcᵀ and L = Yc Ycᵀ:
CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). It is 1 for representations that differ
by an orthogonal transform and an isotropic scaling, and does not depend on the order
of the images. Three estimators, chosen by N (`similarity.*` in the config):

- `gram` (N <= gram_max_n): the N x N centred Gram matrices, exact;
- `covariance` (up to minibatch_min_n): the same value from the centred
  cross-covariances, ||Xcᵀ Yc||²_F / (||Xcᵀ Xc||_F ||Ycᵀ Yc||_F), accumulated over
  chunks of rows of the memory-mapped features: O(N·D1·D2) time, D1·D2 memory, never
  an N x N matrix;
- `minibatch` (above): the unbiased HSIC estimator (Song et al. 2012) summed over
  batches of a seeded permutation of the images (Nguyen, Raghu and Kornblith, ICLR
  2021), with the spread of the per-batch CKA values reported beside the value.

With `similarity.rbf`, CKA with a Gaussian (RBF) kernel as well, on a seeded sample of
at most `rbf_sample` images: K_ij = exp(-|xi - xj|² / (2 (sigma m)²)), m the median
distance between the sample's points and sigma `rbf_sigma` (Kornblith et al.'s choice).
Rows of the table carry their kernel (`linear` or `rbf`).
"""

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cnnatlas.io import atomic_path, write_parquet
from cnnatlas.maps.toolbox import row_chunks
from cnnatlas.schema import with_defaults

__all__ = [
    "COLUMNS",
    "centred_gram",
    "cka_reference",
    "linear_cka",
    "cka_matrix",
    "choose_estimator",
    "model_similarity",
    "models_similarity",
    "summarize",
    "write_summary",
]

log = logging.getLogger(__name__)

COLUMNS = [
    "comparison",
    "kernel",
    "model",
    "checkpoint",
    "layer",
    "other_model",
    "other_checkpoint",
    "other_layer",
    "cka",
    "spread",
    "estimator",
    "n",
]
Source = np.ndarray | str | Path


def _load(source: Source) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    return np.load(source, mmap_mode="r")


def rbf_gram(x: np.ndarray, sigma: float) -> np.ndarray:
    """The centred Gaussian-kernel Gram matrix of x [n, D], the bandwidth `sigma` times
    the median distance between distinct points, float64 [n, n]."""
    x = np.asarray(x, dtype=np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    median = np.median(np.sqrt(d2[np.triu_indices(len(x), 1)]))
    k = np.exp(-d2 / (2.0 * (sigma * median) ** 2)) if median > 0 else np.ones_like(d2)
    return k - k.mean(axis=0) - k.mean(axis=1)[:, None] + k.mean()


def centred_gram(x: np.ndarray) -> np.ndarray:
    """The centred linear Gram matrix H X Xᵀ H of x [n, D], float64 [n, n]."""
    xc = np.asarray(x, dtype=np.float64)
    xc = xc - xc.mean(axis=0)
    return xc @ xc.T


def cka_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA the textbook way: N x N Gram matrices, centred by H = I - 11ᵀ/N.
    For tests; `linear_cka` is the one to use."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)))


def choose_estimator(n: int, options: Mapping[str, Any] | None = None) -> str:
    """'gram', 'covariance' or 'minibatch' for N images (see the module docstring)."""
    opts = with_defaults(options, "similarity")
    if n <= opts["gram_max_n"]:
        return "gram"
    return "covariance" if n <= opts["minibatch_min_n"] else "minibatch"


def _ratio(cross: float, a: float, b: float) -> float:
    den = np.sqrt(a * b)
    return float(cross / den) if den > 0 else float("nan")


def _means(x: np.ndarray, rows: int) -> np.ndarray:
    total = np.zeros(x.shape[1], np.float64)
    for s in row_chunks(len(x), rows):
        total += np.asarray(x[s], np.float64).sum(axis=0)
    return total / len(x)


def _cross(x: np.ndarray, y: np.ndarray, mx, my, rows: int) -> np.ndarray:
    """Xcᵀ Yc [D1, D2], over chunks of rows."""
    out = np.zeros((x.shape[1], y.shape[1]), np.float64)
    for s in row_chunks(len(x), rows):
        out += (np.asarray(x[s], np.float64) - mx).T @ (
            np.asarray(y[s], np.float64) - my
        )
    return out


def _unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC of two n x n Gram matrices (n > 3)."""
    n = len(k)
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    kl = np.sum(k * l_)
    ones = k.sum() * l_.sum() / ((n - 1) * (n - 2))
    mixed = 2.0 * (k.sum(axis=0) @ l_.sum(axis=1)) / (n - 2)
    return float((kl + ones - mixed) / (n * (n - 3)))


def _gram_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x @ x.T


class _Matrix:
    """CKA of every (row, col) pair of feature sources with one estimator."""

    def __init__(
        self, sources: Sequence[Source], opts: Mapping[str, Any], kernel: str = "linear"
    ):
        self.xs = [_load(s) for s in sources]
        n = {len(x) for x in self.xs}
        if len(n) != 1:
            raise ValueError(f"feature files of different lengths {sorted(n)}")
        self.n, self.opts = n.pop(), opts
        self.estimator = "rbf" if kernel == "rbf" else choose_estimator(self.n, opts)
        if kernel == "rbf" and self.n > opts["rbf_sample"]:
            rng = np.random.default_rng(opts["seed"])
            self.sample = np.sort(rng.choice(self.n, opts["rbf_sample"], replace=False))
        else:
            self.sample = None

    def pairs(self, pairs: Sequence[tuple[int, int]]) -> dict[tuple, tuple]:
        """{(i, j): (cka, spread)} of the sources' index pairs."""
        return getattr(self, f"_{self.estimator}")(pairs)

    def _rbf(self, pairs):
        sigma = self.opts["rbf_sigma"]
        rows = slice(None) if self.sample is None else self.sample
        return self._gram(pairs, lambda x: rbf_gram(np.asarray(x[rows]), sigma))

    def _gram(self, pairs, gram=centred_gram):
        used = sorted({i for p in pairs for i in p})
        grams = {i: gram(self.xs[i]) for i in used}
        self_ = {i: float(np.sum(g * g)) for i, g in grams.items()}
        return {
            (i, j): (_ratio(np.sum(grams[i] * grams[j]), self_[i], self_[j]), 0.0)
            for i, j in pairs
        }

    def _covariance(self, pairs):
        rows = self.opts["chunk_rows"]
        used = sorted({i for p in pairs for i in p})
        means = {i: _means(self.xs[i], rows) for i in used}
        norms = {}
        for i in used:
            c = _cross(self.xs[i], self.xs[i], means[i], means[i], rows)
            norms[i] = float(np.sum(c * c))
        out = {}
        for i, j in pairs:
            if i == j:  # the self term, computed above
                out[(i, j)] = (_ratio(norms[i], norms[i], norms[i]), 0.0)
                continue
            c = _cross(self.xs[i], self.xs[j], means[i], means[j], rows)
            out[(i, j)] = (_ratio(np.sum(c * c), norms[i], norms[j]), 0.0)
        return out

    def _minibatch(self, pairs):
        # fewer images than a batch: one batch of all of them, not zero batches (NaN)
        b = min(self.opts["batch_size"], self.n)
        order = np.random.default_rng(self.opts["seed"]).permutation(self.n)
        used = sorted({i for p in pairs for i in p})
        cross = {p: 0.0 for p in pairs}
        selfs = dict.fromkeys(used, 0.0)
        per_batch = {p: [] for p in pairs}
        for start in range(0, self.n - b + 1, b):  # full batches only
            idx = np.sort(order[start : start + b])
            grams = {i: _gram_batch(self.xs[i][idx]) for i in used}
            hs = {i: _unbiased_hsic(grams[i], grams[i]) for i in used}
            for i in used:
                selfs[i] += hs[i]
            for i, j in pairs:
                h = hs[i] if i == j else _unbiased_hsic(grams[i], grams[j])
                cross[(i, j)] += h
                per_batch[(i, j)].append(_ratio(h, hs[i], hs[j]))
        return {
            p: (_ratio(cross[p], selfs[p[0]], selfs[p[1]]),
                float(np.std(per_batch[p], ddof=1)) if len(per_batch[p]) > 1 else 0.0)
            for p in pairs
        }  # fmt: skip


def linear_cka(
    x: Source, y: Source, options: Mapping[str, Any] | None = None
) -> tuple[float, float, str]:
    """Linear CKA of two feature arrays (or .npy files) of the same N images:
    (value, spread across minibatches (0 for the exact estimators), estimator)."""
    m = _Matrix([x, y], with_defaults(options, "similarity"))
    value, spread = m.pairs([(0, 1)])[(0, 1)]
    return value, spread, m.estimator


def cka_matrix(
    rows: Sequence[Source],
    cols: Sequence[Source] | None = None,
    options: Mapping[str, Any] | None = None,
    kernel: str = "linear",
) -> tuple[np.ndarray, np.ndarray, str, int]:
    """CKA of every row source against every column source (`cols` None: the rows,
    a symmetric matrix with 1 on the diagonal): (cka, spread, estimator, N); N is the
    sample's size for the RBF kernel (`kernel="rbf"`)."""
    opts = with_defaults(options, "similarity")
    symmetric = cols is None
    sources = list(rows) if symmetric else [*rows, *cols]
    m = _Matrix(sources, opts, kernel)
    r = len(rows)
    c = r if symmetric else len(sources) - r
    if symmetric:
        pairs = [(i, j) for i in range(r) for j in range(i, r)]
    else:
        pairs = [(i, r + j) for i in range(r) for j in range(c)]
    values = m.pairs(pairs)
    cka, spread = np.full((r, c), np.nan), np.zeros((r, c))
    for (i, j), (v, s) in values.items():
        jj = j if symmetric else j - r
        cka[i, jj], spread[i, jj] = v, s
        if symmetric:
            cka[j, i], spread[j, i] = v, s
    return cka, spread, m.estimator, m.n if m.sample is None else len(m.sample)


def _rows(comparison, cka, spread, estimator, n, row_keys, col_keys) -> list[dict]:
    return [
        {
            "comparison": comparison,
            "kernel": "rbf" if estimator == "rbf" else "linear",
            **dict(zip(("model", "checkpoint", "layer"), rk, strict=True)),
            **dict(
                zip(("other_model", "other_checkpoint", "other_layer"), ck, strict=True)
            ),
            "cka": float(cka[i, j]),
            "spread": float(spread[i, j]),
            "estimator": estimator,
            "n": n,
        }
        for i, rk in enumerate(row_keys)
        for j, ck in enumerate(col_keys)
    ]


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"cka": np.float64, "spread": np.float64, "n": np.int64})


def model_similarity(
    model: str,
    features: Mapping[str, Mapping[str, Source]],
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One model's table: layer x layer within each checkpoint ('layers') and each
    layer across the checkpoints ('checkpoints'). `features`: {ckpt: {layer: file}}
    in the order of training and of the network."""
    opts = with_defaults(options, "similarity")
    rows = []
    for kernel in _kernels(opts):
        for ckpt, layers in features.items():
            keys = [(model, ckpt, layer) for layer in layers]
            cka, spread, est, n = cka_matrix(list(layers.values()), None, opts, kernel)
            rows += _rows("layers", cka, spread, est, n, keys, keys)
            log.info(
                "%s %s: CKA of %d layers (%s, N=%d)", model, ckpt, len(keys), est, n
            )
        ckpts = list(features)
        if len(ckpts) > 1:
            for layer in features[ckpts[0]]:
                keys = [(model, c, layer) for c in ckpts]
                files = [features[c][layer] for c in ckpts]
                cka, spread, est, n = cka_matrix(files, None, opts, kernel)
                rows += _rows("checkpoints", cka, spread, est, n, keys, keys)
    return _frame(rows)


def _kernels(opts: Mapping[str, Any]) -> list[str]:
    return ["linear", "rbf"] if opts["rbf"] else ["linear"]


def models_similarity(
    a: tuple[str, str, Mapping[str, Source]],
    b: tuple[str, str, Mapping[str, Source]],
    options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Layer x layer of two models on the same images: `a`, `b` = (model, ckpt,
    {layer: file})."""
    (ma, ca, la), (mb, cb, lb) = a, b
    opts = with_defaults(options, "similarity")
    ka = [(ma, ca, layer) for layer in la]
    kb = [(mb, cb, layer) for layer in lb]
    rows = []
    for kernel in _kernels(opts):
        cka, spread, est, n = cka_matrix(
            list(la.values()), list(lb.values()), opts, kernel
        )
        rows += _rows("models", cka, spread, est, n, ka, kb)
    return _frame(rows)


def _span(names: Sequence[str]) -> str:
    names = [f"`{x}`" for x in names]
    return names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"


def summarize(table: pd.DataFrame, model: str, settled: float) -> list[str]:
    """Plain-words sentences on one model, computed from its table: when each layer
    reaches CKA >= `settled` with the last checkpoint, which layers keep changing,
    and how alike neighbouring layers are in the last checkpoint (linear CKA)."""
    out = []
    table = table[table["kernel"] == "linear"]
    t = table[(table["model"] == model) & (table["comparison"] == "checkpoints")]
    if len(t):
        ckpts = list(dict.fromkeys(t["checkpoint"]))
        last = ckpts[-1]
        by_step: dict[str, list[str]] = {}
        changing = []
        for layer in dict.fromkeys(t["layer"]):
            vs = t[(t["layer"] == layer) & (t["other_checkpoint"] == last)]
            vs = vs.set_index("checkpoint")["cka"].reindex(ckpts[:-1])
            # the first checkpoint from which every later one stays at >= settled
            ok = [c for k, c in enumerate(ckpts[:-1]) if (vs.iloc[k:] >= settled).all()]
            if ok:
                by_step.setdefault(ok[0], []).append(layer)
            else:
                changing.append(layer)
        for ckpt, layers in by_step.items():
            verb = "changes" if len(layers) == 1 else "change"
            out.append(
                f"{model}: {_span(layers)} {verb} little after {ckpt} "
                f"(CKA >= {settled:g} with {last})"
            )
        if changing:
            low = t[(t["other_checkpoint"] == last) & (t["checkpoint"] == ckpts[-2])]
            low = low.set_index("layer")["cka"]
            words = ", ".join(f"`{x}` {low[x]:.2f}" for x in changing)
            verb = "keeps" if len(changing) == 1 else "keep"
            out.append(
                f"{model}: {_span(changing)} {verb} changing until {last} "
                f"(CKA between {ckpts[-2]} and {last}: {words})"
            )
    w = table[(table["model"] == model) & (table["comparison"] == "layers")]
    if len(w):
        last = list(dict.fromkeys(w["checkpoint"]))[-1]
        w = w[w["checkpoint"] == last]
        layers = list(dict.fromkeys(w["layer"]))
        if len(layers) > 1:
            m = w.set_index(["layer", "other_layer"])["cka"]
            steps = [
                (a, b, m[(a, b)]) for a, b in zip(layers, layers[1:], strict=False)
            ]
            a, b, v = min(steps, key=lambda s: s[2])
            out.append(
                f"{model} {last}: the largest change between neighbouring layers is "
                f"`{a}` to `{b}` (CKA {v:.2f}); `{layers[0]}` against `{layers[-1]}`: "
                f"{m[(layers[0], layers[-1])]:.2f}"
            )
    return out


def write_summary(table: pd.DataFrame, out_table: str | Path, out_json: str | Path,
                  settled: float) -> dict[str, Any]:  # fmt: skip
    """Write the gathered table (Parquet) and summary.json ({model: [sentences]},
    the estimators used and N); log the sentences."""
    write_parquet(table, out_table)
    summary = {
        "sentences": {
            m: summarize(table, m, settled) for m in dict.fromkeys(table["model"])
        },
        "estimators": sorted(set(table["estimator"])),
        "n": sorted({int(v) for v in table["n"]}),
    }
    for sentences in summary["sentences"].values():
        for s in sentences:
            log.info("%s", s)
    with atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
