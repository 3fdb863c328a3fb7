"""The repository's own demo config: what the README promises of the trained digits CNN."""

import pandas as pd
import pytest

from tests.conftest import REPO, run_snakemake

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_results():
    """results/ of the demo; a no-op when the Quick start's first line already ran it."""
    run_snakemake(REPO, "results/digitnet/step0600/predictions.parquet")
    return REPO / "results" / "digitnet"


def test_demo_training_forms_the_representation(demo_results):
    acc = {
        ckpt: pd.read_parquet(demo_results / ckpt / "predictions.parquet")[
            "correct"
        ].mean()
        for ckpt in ("step0005", "step0060", "step0600")
    }
    assert acc["step0005"] < 0.5  # barely trained
    assert acc["step0600"] >= 0.95
    assert acc["step0005"] < acc["step0060"] <= acc["step0600"]
    n = {len(pd.read_parquet(demo_results / c / "predictions.parquet")) for c in acc}
    assert n == {360}  # everything downstream runs on the test split
