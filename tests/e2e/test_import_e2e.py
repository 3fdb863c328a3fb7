"""Features extracted elsewhere (`features_from`) through the real snakemake: a run that
imports a network run's features (rows shuffled, with paths.txt and one extra row)
writes the network run's predictions, features and maps, byte for byte."""

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e

# fc2 is the classifier: its features are the network's logits, which the import needs
LAYERS = {"features.1.3": "avg", "fc1": "avg", "fc2": "avg"}
# one checkpoint and few maps keep the two runs short
MAPS = {
    "methods": ["tsne", "pca"],
    "dims": [2],
    "perplexities": [5],
    "seeds": [0],
    "tsne": {"n_iter": 150, "early_exaggeration_iter": 100},
}


def write_config(workdir: Path, model: dict, dataset: str) -> None:
    """The tiny config's dataset, extraction and model `tiny` (its late checkpoint),
    maps of every layer, and no stage that is not asked for."""
    tiny = yaml.safe_load((Path(__file__).parent / "tiny_config.yaml").read_text())
    config = {
        "results": "results",
        "dataset": {"kind": "imagefolder", "path": dataset},
        "models": {"tiny": model},
        "extract": tiny["extract"],
        "maps": MAPS,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def targets() -> list[str]:
    """Predictions, features and every 2-D map of the late checkpoint."""
    maps = [
        f"results/tiny/late/embeddings/{layer}/{name}.parquet"
        for layer in LAYERS
        for name in ("tsne-2d-p5-s0", "pca-2d-p0-s0")
    ]
    return [
        "results/tiny/late/predictions.parquet",
        "results/tiny/late/features",
    ] + maps


def digests(results: Path) -> dict[str, str]:
    """sha256 of every file of the late checkpoint's predictions, features and maps."""
    root = results / "tiny" / "late"
    files = [root / "predictions.parquet"]
    files += sorted((root / "features").iterdir()) + sorted(
        root.rglob("*-2d-*.parquet")
    )
    return {
        str(f.relative_to(results)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in files
    }


def export(results: Path, folder: Path, root: Path) -> None:
    """The network run's features in the import format: float64, rows shuffled and
    named by paths.txt (relative to the dataset's `root`), one extra row of an image
    the manifest lacks."""
    manifest = pd.read_parquet(results / "manifest.parquet")["path"]
    paths = [str(Path(p).relative_to(root)) for p in manifest]
    perm = np.random.default_rng(0).permutation(len(paths))
    folder.mkdir()
    features = results / "tiny" / "late" / "features"
    for layer in LAYERS:
        f = np.load(features / f"{layer}.npy")[perm].astype(np.float64)
        np.save(folder / f"{layer}.npy", np.vstack([f, f[:1]]))
    np.save(folder / "logits.npy", np.load(folder / "fc2.npy"))
    rows = [paths[i] for i in perm] + ["elsewhere/extra.png"]
    (folder / "paths.txt").write_text("".join(p + "\n" for p in rows))


def plan_rules(workdir: Path) -> set[str]:
    """The rules `cnnatlas plan` costs for the config in `workdir` (no network)."""
    cmd = [sys.executable, "-m", "cnnatlas.cli", "plan", "--cores", "2", "--json"]
    env = os.environ | {"PYTHONPATH": str(REPO / "workflow" / "scripts")}
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["models"] == {}  # nothing profiled: no network to run
    rules = {x["rule"]: x for x in plan["rules"]}
    assert rules["import_features"]["jobs"] == 1
    assert rules["import_features"]["stage"] == "extraction"
    return set(rules)


def test_imported_features_give_the_network_runs_outputs(tmp_path):
    network = write_tiny_config(tmp_path / "network")
    tiny = yaml.safe_load((network / "config.yaml").read_text())["models"]["tiny"]
    model = copy.deepcopy(tiny) | {"layers": LAYERS}
    model["checkpoints"] = {"late": tiny["checkpoints"]["late"]}
    data = str(network / "data")  # write_tiny_config's images
    write_config(network, model, data)
    run_snakemake(network, *targets())

    folder = tmp_path / "elsewhere"
    export(network / "results", folder, network / "data")
    imported = tmp_path / "imported"
    imported.mkdir()
    write_config(
        imported, {"features_from": {"late": str(folder)}, "layers": LAYERS}, data
    )
    proc = run_snakemake(imported, *targets())

    assert digests(imported / "results") == digests(network / "results")
    results = imported / "results"
    assert not (results / "logs" / "extract_features").exists()
    log = (results / "logs" / "import_features" / "tiny" / "late.log").read_text()
    assert "1 rows of images that are not in the manifest are left out" in log
    record = json.loads((results / "tiny" / "late" / "imported.json").read_text())
    assert record["folder"] == str(folder)
    assert set(record["files"]) == {f"{n}.npy" for n in [*LAYERS, "logits"]} | {
        "paths.txt"
    }
    assert "import_features" in proc.stdout + proc.stderr
