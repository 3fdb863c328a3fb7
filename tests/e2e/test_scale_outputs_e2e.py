"""The scale path of the output stages through the real snakemake on the tiny config: a
projector layer above `projector.max_values` exported as PCA components, and the
Grad-CAM faithfulness and filter statistics bounded by `max_images` on the CPU."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from cnnatlas.io import read_parquet_meta

from tests.conftest import run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = write_tiny_config(tmp_path_factory.mktemp("scale_outputs"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    # fc1 is 30 x 128 = 3,840 values: above 1,500, so 8 components; features.1.3 fits
    config["projector"] = {"thumbnail": 16, "maps": False, "max_values": 1500,
                           "pca_dims": 8}  # fmt: skip
    config["explain"]["saliency"]["max_images"] = 6
    config["explain"]["filters"]["max_images"] = 9
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    late = "results/tiny/late"
    run_snakemake(
        workdir, f"{late}/projector", f"{late}/explain/saliency_faithfulness.parquet",
        f"{late}/explain/filters.parquet",
    )  # fmt: skip
    return workdir / late


def test_projector_exports_the_large_layer_as_principal_components(run):
    out = run / "projector"
    record = json.loads((out / "export.json").read_text())
    assert record["points"] == 30 and record["max_values"] == 1500
    assert {t["name"]: (t["shape"], t["reduction"]) for t in record["tensors"]} == {
        "features.1.3": ([30, 8], None),
        "fc1 (PCA 8 of 128)": ([30, 8], "pca"),
    }
    config = (out / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "fc1 (PCA 8 of 128)"' in config
    (path,) = (out / "tensors").glob("*-fc1__PCA_8_of_128_.tsv")
    pcs = np.loadtxt(path, delimiter="\t", dtype=np.float64)
    fc1 = np.load(run / "features" / "fc1.npy").astype(np.float64)
    eig = np.linalg.eigvalsh(np.cov(fc1.T))[::-1]
    np.testing.assert_allclose(pcs.var(0, ddof=1), eig[:8], rtol=1e-3)
    assert len(pd.read_csv(out / "metadata.tsv", sep="\t")) == 30
    log = (run.parent.parent / "logs/export_projector/tiny/late.log").read_text()
    assert "exporting 'fc1 (PCA 8 of 128)'" in log


def test_explanations_run_on_a_bounded_sample_on_the_cpu(run):
    explain = run / "explain"
    per_image = pd.read_parquet(explain / "saliency_faithfulness.parquet")
    assert per_image["image_id"].nunique() == 6
    assert (
        per_image.drop_duplicates("image_id")["label"].value_counts().tolist()
        == [2] * 3
    )
    meta = read_parquet_meta(explain / "saliency_faithfulness.parquet")
    assert meta["cnnatlas.images"].startswith("6 of 30 images (class-stratified")
    meta = read_parquet_meta(explain / "filters.parquet")
    assert meta["cnnatlas.images"].startswith("9 of 30 images (class-stratified")
