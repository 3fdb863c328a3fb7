"""Linear CKA: invariances, the three estimators against a textbook N x N reference,
the minibatch estimator's spread, the tables and the plain-words summary."""

import numpy as np
import pandas as pd
import pytest
from cnnatlas.similarity import (
    choose_estimator,
    cka_matrix,
    cka_reference,
    linear_cka,
    model_similarity,
    models_similarity,
    summarize,
    write_summary,
)

EXACT = {
    "gram": {"gram_max_n": 10**6},
    "covariance": {"gram_max_n": 4, "minibatch_min_n": 10**6, "chunk_rows": 37},
}


def _features(n=300, d=20, seed=0, classes=5):
    """Class-structured features (ReLU of cluster centres plus noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 3
    x = centres[rng.integers(0, classes, n)] + rng.normal(size=(n, d))
    return np.maximum(x, 0).astype(np.float32)


@pytest.mark.parametrize("estimator", list(EXACT))
def test_cka_is_one_under_orthogonal_transforms_and_isotropic_scaling(estimator):
    x = _features()
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(20, 20)))
    value, spread, used = linear_cka(x, 3.5 * x @ q + 0.0, EXACT[estimator])
    assert used == estimator and spread == 0.0
    assert value == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("estimator", list(EXACT))
def test_cka_equals_the_n_by_n_reference_and_ignores_image_order(estimator):
    x, y = _features(seed=2), _features(d=13, seed=3)
    y = y + 0.5 * x[:, :13]  # partly shared
    ref = cka_reference(x, y)
    assert 0.05 < ref < 0.95
    value, _, _ = linear_cka(x, y, EXACT[estimator])
    assert value == pytest.approx(ref, abs=1e-6)
    perm = np.random.default_rng(4).permutation(len(x))
    shuffled, _, _ = linear_cka(x[perm], y[perm], EXACT[estimator])
    assert shuffled == pytest.approx(value, abs=1e-9)


def test_the_minibatch_estimator_is_within_its_spread_of_the_full_value():
    x, y = _features(n=2000, seed=5), _features(n=2000, d=13, seed=6)
    y = y + 0.7 * x[:, :13]
    full = cka_reference(x, y)
    opts = {"gram_max_n": 4, "minibatch_min_n": 100, "batch_size": 250, "seed": 0}
    value, spread, used = linear_cka(x, y, opts)
    assert used == "minibatch" and spread > 0
    assert abs(value - full) <= spread
    # the permutation is seeded: the same value twice, another with another seed
    assert linear_cka(x, y, opts)[0] == value
    assert linear_cka(x, y, opts | {"seed": 1})[0] != value


def test_fewer_images_than_a_minibatch_make_one_batch_not_nan():
    x, y = _features(n=30, seed=5), _features(n=30, d=13, seed=6)
    opts = {"gram_max_n": 4, "minibatch_min_n": 10, "batch_size": 50, "seed": 0}
    value, spread, used = linear_cka(x, y, opts)
    assert used == "minibatch" and np.isfinite(value) and spread == 0.0
    assert value == linear_cka(x, y, opts | {"batch_size": 30})[0]
    assert linear_cka(x, x, opts)[0] == pytest.approx(1.0, abs=1e-12)


def test_random_features_score_low_against_structured_ones():
    x = _features(n=500)
    noise = np.random.default_rng(7).normal(size=(500, 20)).astype(np.float32)
    assert linear_cka(x, noise)[0] < 0.2
    assert linear_cka(x, x + 0.1 * noise)[0] > 0.9


def test_the_estimator_follows_n():
    opts = {"gram_max_n": 10, "minibatch_min_n": 20}
    assert [choose_estimator(n, opts) for n in (10, 11, 20, 21)] == [
        "gram",
        "covariance",
        "covariance",
        "minibatch",
    ]


def test_a_matrix_is_symmetric_with_ones_on_its_diagonal(tmp_path):
    files = []
    for i, d in enumerate((8, 16, 32)):
        files.append(tmp_path / f"l{i}.npy")
        np.save(files[-1], _features(d=d, seed=i))
    for opts in EXACT.values():
        cka, spread, est, n = cka_matrix(files, None, opts)
        assert n == 300 and cka.shape == (3, 3)
        np.testing.assert_allclose(np.diag(cka), 1.0, atol=1e-9)
        np.testing.assert_array_equal(cka, cka.T)
        assert ((cka > 0) & (cka <= 1 + 1e-9)).all()


def test_a_models_table_has_both_comparisons_and_is_the_same_twice(tmp_path):
    rng = np.random.default_rng(0)
    base = _features(n=200, d=16)
    feats = {}
    for k, ckpt in enumerate(("s1", "s2", "s3")):
        feats[ckpt] = {}
        for j, layer in enumerate(("conv1", "conv2")):
            path = tmp_path / f"{ckpt}-{layer}.npy"
            drift = 0.0 if layer == "conv1" else 1.5 * (2 - k)
            noise = rng.normal(size=base.shape).astype(np.float32)
            np.save(path, base * (j + 1) + drift * noise)
            feats[ckpt][layer] = path
    table = model_similarity("net", feats)
    assert set(table["comparison"]) == {"layers", "checkpoints"}
    assert len(table) == 3 * 4 + 2 * 9
    ck = table[table["comparison"] == "checkpoints"].set_index(
        ["layer", "checkpoint", "other_checkpoint"]
    )["cka"]
    assert ck[("conv1", "s1", "s3")] == pytest.approx(1.0)  # conv1 never changes
    assert ck[("conv2", "s1", "s3")] < 0.9 < ck[("conv2", "s2", "s3")]
    sentences = summarize(table, "net", settled=0.9)
    assert sentences[0].startswith("net: `conv1` changes little after s1")
    assert any("`conv2` changes little after s2" in s for s in sentences)
    out = [tmp_path / f"t{i}.parquet" for i in range(2)]
    for i in range(2):
        write_summary(
            model_similarity("net", feats), out[i], tmp_path / f"s{i}.json", 0.9
        )
    assert out[0].read_bytes() == out[1].read_bytes()
    assert (tmp_path / "s0.json").read_text() == (tmp_path / "s1.json").read_text()


def test_two_models_compare_layer_by_layer():
    x = _features(n=200, d=16)
    a = ("a", "last", {"l1": x, "l2": x[:, :8]})
    b = ("b", "final", {"m1": 2 * x, "m2": _features(n=200, seed=9), "m3": x})
    table = models_similarity(a, b)
    assert len(table) == 6 and set(table["comparison"]) == {"models"}
    t = table.set_index(["layer", "other_layer"])["cka"]
    assert t[("l1", "m1")] == pytest.approx(1.0) and t[("l1", "m3")] == pytest.approx(
        1.0
    )
    assert t[("l1", "m2")] < 0.5
    assert isinstance(table, pd.DataFrame) and table["n"].eq(200).all()


def _rbf_reference(x, y, sigma=0.8):
    """Kornblith et al.'s RBF CKA, written out: Gaussian Gram matrices with the
    bandwidth a fraction of the median distance, centred by H, then HSIC ratios."""
    from scipy.spatial.distance import pdist, squareform

    def gram(z):
        d = squareform(pdist(np.asarray(z, np.float64)))
        bw = sigma * np.median(d[np.triu_indices(len(z), 1)])
        k = np.exp(-(d**2) / (2 * bw**2))
        h = np.eye(len(z)) - 1 / len(z)
        return h @ k @ h

    k, l_ = gram(x), gram(y)
    return float(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)))


def test_rbf_cka_on_a_seeded_sample(tmp_path):
    x = _features(n=120, seed=11)
    y = np.tanh(x[:, :10] @ np.random.default_rng(12).normal(size=(10, 7)))
    opts = {"rbf": True, "rbf_sample": 1000}
    cka, _, est, n = cka_matrix([x, y], None, opts, kernel="rbf")
    assert est == "rbf" and n == 120
    assert cka[0, 1] == pytest.approx(_rbf_reference(x, y), abs=1e-9)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(20, 20)))
    same, _, _, _ = cka_matrix([x, 2.0 * x @ q], None, opts, kernel="rbf")
    assert same[0, 1] == pytest.approx(1.0, abs=1e-9)
    # above rbf_sample, a seeded sample: the same value twice, N the sample's size
    small = {"rbf": True, "rbf_sample": 50}
    a = cka_matrix([x, y], None, small, kernel="rbf")
    assert (
        a[3] == 50
        and a[0][0, 1] == cka_matrix([x, y], None, small, kernel="rbf")[0][0, 1]
    )
    table = model_similarity("net", {"s": {"l1": x, "l2": y}}, opts)
    assert sorted(set(table["kernel"])) == ["linear", "rbf"]
    assert table.groupby("kernel").size().to_dict() == {"linear": 4, "rbf": 4}
    # the summary reads the linear rows only
    assert summarize(table, "net", 0.9) == summarize(
        table[table["kernel"] == "linear"], "net", 0.9
    )
