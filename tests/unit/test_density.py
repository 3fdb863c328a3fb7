"""Density contours and cluster labels of a 2-D map (cnnatlas.viewer.density)."""

import numpy as np
from cnnatlas.viewer.density import MASS, map_density
from matplotlib.path import Path as Polygon


def _blobs(seed: int = 0):
    """Class 0 and class 1 in two far blobs; a third blob mixes classes 1 and 2 (30/70)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(300, 2)) + [-10, 0]
    b = rng.normal(size=(300, 2)) + [10, 0]
    c = rng.normal(size=(400, 2)) + [0, 12]
    labels = np.r_[np.zeros(300), np.ones(300), np.where(np.arange(400) < 120, 1, 2)]
    return np.vstack([a, b, c]), labels.astype(int)


def _polygons(d: dict, cls: int) -> list[Polygon]:
    x0, y0, x1, y1 = d["box"]
    out = []
    for c, first, count in d["contours"]:
        if c != cls:
            continue
        q = d["lines"][2 * first : 2 * (first + count)].reshape(-1, 2).astype(float)
        out.append(Polygon(q / 65535 * [x1 - x0, y1 - y0] + [x0, y0]))
    return out


def test_each_dense_region_is_labelled_by_its_majority_class_and_purity():
    xy, labels = _blobs()
    clusters = map_density(xy, labels)["clusters"]
    assert len(clusters) == 3
    by_place = sorted(clusters, key=lambda c: (c["y"], c["x"]))
    left, right, top = by_place[0], by_place[1], by_place[2]
    assert left["x"] < -5 and right["x"] > 5 and top["y"] > 6
    assert (left["label"], left["purity"]) == (0, 1.0)
    assert (right["label"], right["purity"]) == (1, 1.0)
    assert top["label"] == 2 and 0.6 < top["purity"] < 0.8
    # each region holds most of its blob's points, and no more than the blob
    assert 0.3 * 300 < left["n"] <= 300 and 0.3 * 400 < top["n"] <= 400


def test_a_class_contour_encloses_its_densest_part():
    xy, labels = _blobs()
    d = map_density(xy, labels)
    polys = _polygons(d, 0)
    assert polys
    inside = np.zeros(len(xy), bool)
    for poly in polys:
        inside |= poly.contains_points(xy)
    own = inside[labels == 0].mean()
    assert MASS - 0.2 < own < MASS + 0.25, own
    assert not inside[labels != 0].any()
    # classes 1 and 2 share the top blob: class 2's contour is there only
    top = np.vstack([p.vertices for p in _polygons(d, 2)])
    assert (top[:, 1] > 6).all()


def test_the_same_points_give_the_same_bytes_and_a_tiny_map_none():
    xy, labels = _blobs()
    a, b = map_density(xy, labels), map_density(xy.copy(), labels.copy())
    assert a["lines"].tobytes() == b["lines"].tobytes()
    assert a["contours"] == b["contours"] and a["clusters"] == b["clusters"]
    assert map_density(xy[:3], labels[:3]) is None
