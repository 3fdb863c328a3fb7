import json
import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.conftest import snakemake_cmd
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e


def _explain(tiny_run, ckpt="late"):
    return tiny_run / "tiny" / ckpt / "explain"


def test_only_the_configured_checkpoint_is_explained(tiny_run):
    assert _explain(tiny_run).is_dir()
    assert not _explain(tiny_run, "early").exists()


def test_selected_images_and_feature_maps(tiny_run):
    ex = _explain(tiny_run)
    sel = pd.read_parquet(ex / "images.parquet")
    pred = pd.read_parquet(tiny_run / "tiny" / "late" / "predictions.parquet")
    assert 1 <= len(sel) <= 6
    assert sel["label"].value_counts().max() <= 2
    merged = sel.merge(pred, on="image_id", suffixes=("", "_p"))
    assert (merged["correct"] == merged["correct_p"]).all()
    assert json.loads(
        pq.read_schema(ex / "images.parquet").metadata[b"cnnatlas.classes"]
    ) == ["circle", "square", "stripes"]
    index = pd.read_parquet(ex / "feature_maps" / "index.parquet")
    # fc1 is not a spatial map: only features.1.3 (8 channels) and the overview
    assert sorted(set(index["layer"])) == ["features.1.3", "overview"]
    assert sorted(set(index["image_id"])) == sorted(sel["image_id"])
    for r in index.itertuples():
        with Image.open(ex / "feature_maps" / r.file) as im:
            w, h = im.size
        if r.layer == "features.1.3":
            assert r.channels == 8 and 0 <= r.dead <= 8
            assert (
                w >= 4 * 32 + 64 and h >= 2 * 32
            )  # 4 tiles a row, 2 rows, image beside


def test_filters_grid_and_table(tiny_run):
    ex = _explain(tiny_run)
    t = pd.read_parquet(ex / "filters.parquet")
    assert t["layer"].tolist() == ["features.1.3"] * 3
    assert t["channel"].tolist() == [0, 1, 2]
    assert (t["real_max"] >= t["real_mean"]).all()
    assert np.isfinite(
        t[["start", "reached", "real_mean", "real_max"]].to_numpy()
    ).all()
    assert all(
        len(ids) == 2 and set(ids) <= set(range(30)) for ids in t["top_image_ids"]
    )
    with Image.open(ex / "filters" / "features.1.3.png") as im:
        assert im.mode == "RGB" and im.size[0] >= 2 * 3 * 64


def test_saliency_overlays_and_faithfulness(tiny_run):
    ex = _explain(tiny_run)
    sel = pd.read_parquet(ex / "images.parquet")
    pngs = sorted(p.name for p in (ex / "saliency").glob("*.png"))
    assert pngs == sorted([f"{i:05d}.png" for i in sel["image_id"]] + ["overview.png"])
    with Image.open(ex / "saliency" / "overview.png") as im:
        assert im.size[1] >= len(sel) * 96
    per = pd.read_parquet(ex / "saliency_faithfulness.parquet")
    assert len(per) == 60 and sorted(set(per["method"])) == ["gradcam", "gradcam++"]
    pred = pd.read_parquet(tiny_run / "tiny" / "late" / "predictions.parquet")
    one = per[per["method"] == "gradcam"].sort_values("image_id")
    assert (one["pred"].to_numpy() == pred["pred"].to_numpy()).all()
    np.testing.assert_allclose(one["confidence"], pred["confidence"], rtol=1e-4)
    assert (per["drop_salient"].abs() <= 1).all() and (
        per["drop_random"].abs() <= 1
    ).all()
    meta = pq.read_schema(ex / "saliency_summary.parquet").metadata
    assert meta[b"cnnatlas.gradcam_layer"] == b"features"
    s = pd.read_parquet(ex / "saliency_summary.parquet")
    assert set(s["group"]) == {"all", "class", "outcome"}
    for _, g in s.groupby("method"):
        assert g[g["group"] == "class"]["n"].sum() == 30
        assert g[g["group"] == "outcome"]["n"].sum() == 30
    with Image.open(ex / "saliency_faithfulness.png") as im:
        assert im.size[0] > 500 and im.size[1] > 200


def test_saliency_checks_tables_and_figures(tiny_run):
    ex = _explain(tiny_run)
    # the default methods: those drawn (explain.saliency.methods' default)
    methods = ["gradcam", "gradcam++"]
    curves = pd.read_parquet(ex / "saliency_curves.parquet")
    # 12 of 30 images on the CPU, 4 per class; every method plus the random order
    assert curves["image_id"].nunique() == 12
    assert curves.groupby("label_name")["image_id"].nunique().tolist() == [4, 4, 4]
    assert sorted(set(curves["method"])) == sorted(methods + ["random"])
    assert all(len(c) == 5 for c in curves["deletion"])  # 0, .25, .5, .75, 1
    assert curves[["deletion_auc", "insertion_auc"]].stack().between(0, 1).all()
    road = curves[curves["method"] != "random"]
    assert all(len(c) == 3 for c in road["road_morf"])
    pred = pd.read_parquet(tiny_run / "tiny" / "late" / "predictions.parquet")
    one = curves[curves["method"] == "gradcam"].merge(pred, on="image_id")
    np.testing.assert_allclose(
        [c[0] for c in one["deletion"]], one["confidence"], rtol=1e-4
    )
    rand = pd.read_parquet(ex / "saliency_randomisation.parquet")
    # the cascade: 4 of the 12 images (class-stratified), at most 8 steps (5 here)
    assert rand["image_id"].nunique() == 4
    assert set(rand["image_id"]) <= set(curves["image_id"])
    assert rand.groupby("label_name")["image_id"].nunique().sort_values().tolist() == [
        1,
        1,
        2,
    ]
    assert sorted(set(rand["layers_randomised"])) == [1, 2, 3, 4, 5]
    assert rand["layer"][rand["layers_randomised"] == 1].eq("fc2").all()
    s = pd.read_parquet(ex / "saliency_checks.parquet")
    assert set(s["group"]) == {"all", "class", "outcome"}
    allrows = s[s["group"] == "all"].set_index("method")
    assert sorted(allrows.index) == sorted(methods)
    for m, r in allrows.iterrows():
        assert r["verdict"].startswith(f"{METHODS_TITLES[m]}: ")
        assert ("passes" in r["verdict"]) == r["randomisation_passed"]
        # images whose trained map is constant have no correlation and are left out
        defined = rand[(rand["method"] == m) & rand["spearman"].notna()]
        assert r["n_randomised"] == defined["image_id"].nunique() > 0
    meta = pq.read_schema(ex / "saliency_checks.parquet").metadata
    assert meta[b"cnnatlas.saliency_layer"] == b"features"
    with np.load(ex / "saliency_cascade.npz") as z:
        assert z["maps"].shape == (2, 6, 32, 32) and z["image"].shape == (32, 32, 3)
        assert z["randomised"].tolist() == [1, 2, 3, 4, 5]
    log = (tiny_run / "logs" / "check_saliency" / "tiny" / "late.log").read_text()
    # the bounds are named in the log, with progress and an estimate
    assert "explain.trust.max_images" in log and "explain.trust.cascade_steps" in log
    assert "saliency checks: 0/" in log and "image passes (100%)" in log
    for name in ("saliency_curves.png", "saliency_randomisation.png"):
        with Image.open(ex / name) as im:
            assert im.size[0] > 500 and im.size[1] > 200


METHODS_TITLES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "scorecam": "Score-CAM",
}


def _failed_dry_run(tmp_path, old: str, new: str) -> str:
    """The output of a dry run that must fail, on the tiny config with `old` -> `new`."""
    workdir = write_tiny_config(tmp_path)
    config = workdir / "config.yaml"
    config.write_text(config.read_text().replace(old, new))
    proc = subprocess.run(
        snakemake_cmd(workdir, "-n", "--cores", "1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_unknown_saliency_method_stops_the_dry_run(tmp_path):
    out = _failed_dry_run(
        tmp_path,
        "saliency: {batch_size: 8}",
        "saliency: {batch_size: 8, methods: [gradkam]}",
    )
    assert "explain.saliency.methods: ['gradkam'] are not saliency methods" in out


def test_the_old_key_and_paper_kind_plan_the_saliency_outputs_with_a_warning(tmp_path):
    workdir = write_tiny_config(tmp_path)
    config = workdir / "config.yaml"
    text = config.read_text()
    old = text.replace("  saliency: {batch_size: 8}", "  gradcam: {batch_size: 8}")
    config.write_text(old.replace("{kind: saliency,", "{kind: gradcam,"))
    assert config.read_text().count("gradcam") == 2
    proc = subprocess.run(
        snakemake_cmd(workdir, "-n", "--cores", "1", "all", "paper"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    warning = "explain.gradcam is deprecated, its values are read as explain.saliency"
    assert out.count(warning) == 1 and "removed in the next release" in out
    assert out.count("paper figure kind 'gradcam' is deprecated") == 1
    assert "rule render_saliency:" in out
    explain = "results/tiny/late/explain"
    for name in (
        "saliency",
        "saliency_faithfulness.parquet",
        "saliency_summary.parquet",
    ):
        assert f"{explain}/{name}" in out, name
    assert "render_gradcam" not in out and f"{explain}/gradcam" not in out
    both = _failed_dry_run(
        tmp_path / "both", "  saliency: {", "  saliency: {}\n  gradcam: {"
    )
    assert "explain.gradcam and explain.saliency are both set" in both


def test_unknown_explain_checkpoint_stops_the_dry_run(tmp_path):
    out = _failed_dry_run(tmp_path, "checkpoints: [late]", "checkpoints: [latest]")
    assert "explain.checkpoints: ['latest'] are not checkpoints" in out


def test_plan_lists_the_jobs_of_a_run_with_estimates_and_refuses_what_does_not_fit(
    tmp_path,
):
    """`cnnatlas plan` in a project folder before its run: the dry run's jobs, an
    estimate per rule, and exit status 1 naming a key when a job would not fit."""
    import json
    import subprocess
    import sys

    workdir = write_tiny_config(tmp_path)
    cmd = [sys.executable, "-m", "cnnatlas.cli", "plan", "--cores", "2"]
    r = subprocess.run(cmd + ["--json"], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    rules = {x["rule"]: x for x in plan["rules"]}
    assert plan["images"] == 30
    assert rules["extract_features"]["jobs"] == 2  # two checkpoints
    assert rules["check_saliency"]["jobs"] == 1  # explain.checkpoints: [late]
    assert all(x["cpu_s"] > 0 for x in plan["rules"])
    assert set(plan["stages"]) >= {"extraction", "explanations", "analysis"}
    assert 0 < plan["models"]["tiny"]["gflop"] < 0.01
    r = subprocess.run(
        cmd + ["--mem-mb", "100"], cwd=workdir, capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "check_saliency would need about" in r.stdout
    assert "lower explain.trust.max_images" in r.stdout
    assert "dominant:" in r.stdout
