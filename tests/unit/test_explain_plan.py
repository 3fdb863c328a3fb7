"""The planner's part for the saliency checks: targets, method lists, paper kinds."""

import copy

import pytest
from cnnatlas.errors import CnnatlasError
from cnnatlas.explain.saliency import METHODS
from cnnatlas.plan.explain import TRUST_FILES
from cnnatlas.plan.paper import KINDS

from tests.unit.test_plan import DEMO, plan_of, w


def test_trust_outputs_are_targets_of_every_explained_checkpoint():
    plan = plan_of(DEMO)
    targets = plan.explain.targets()
    for ckpt in DEMO["models"]["digitnet"]["checkpoints"]:
        for name in TRUST_FILES.values():
            assert f"results/digitnet/{ckpt}/explain/{name}" in targets
    config = copy.deepcopy(DEMO)
    config["explain"]["trust"]["enabled"] = False
    off = plan_of(config).explain.targets()
    assert not any(t.endswith(tuple(TRUST_FILES.values())) for t in off)
    assert len(off) == len(targets) - 3 * len(TRUST_FILES)


def test_trust_methods_default_to_every_registered_method():
    assert plan_of(DEMO).explain.trust_methods(w(model="digitnet")) == list(METHODS)
    config = copy.deepcopy(DEMO)
    config["explain"]["trust"]["methods"] = ["hirescam"]
    assert plan_of(config).explain.trust_methods(w(model="digitnet")) == ["hirescam"]


@pytest.mark.parametrize("key", ["saliency", "trust"])
def test_unknown_saliency_method_fails_when_planned(key):
    config = copy.deepcopy(DEMO)
    config["explain"][key]["methods"] = ["gradcam", "gradkam"]
    with pytest.raises(CnnatlasError, match=rf"explain.{key}.methods: \['gradkam'\]"):
        plan_of(config)


def test_saliency_paper_kinds_read_the_check_saliency_tables():
    plan = plan_of(DEMO)
    explain = "results/digitnet/step0600/explain"
    curves = plan.paper.figure("saliency_curves")
    assert curves["curves"] == f"{explain}/saliency_curves.parquet"
    assert plan.paper.inputs(w(name="saliency_curves")) == [curves["curves"]]
    assert plan.paper.inputs(w(name="saliency_randomisation")) == [
        f"{explain}/saliency_cascade.npz",
        f"{explain}/saliency_randomisation.parquet",
    ]
    assert {"saliency_curves", "saliency_randomisation"} <= set(KINDS)
