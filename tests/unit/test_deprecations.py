"""Old config keys and paper kinds, read under their new names for one release."""

import copy

import pytest
from cnnatlas.deprecations import upgrade_config
from cnnatlas.errors import ConfigError

from tests.unit.test_plan import DEMO, plan_of


def _old_demo() -> dict:
    """The demo config as written before the rename: explain.gradcam, kind gradcam."""
    config = copy.deepcopy(DEMO)
    explain = config["explain"]
    config["explain"] = {
        ("gradcam" if k == "saliency" else k): v for k, v in explain.items()
    }
    config["paper"]["figures"]["gradcam"]["kind"] = "gradcam"
    return config


def test_the_old_key_and_kind_are_read_as_the_new_ones_with_one_warning_each():
    config = _old_demo()
    notes = upgrade_config(config)
    assert config == DEMO  # same values, same key order as the new config
    assert len(notes) == 2
    key, kind = notes
    assert "explain.gradcam is deprecated" in key and "explain.saliency" in key
    assert "removed in the next release" in key
    assert "'gradcam'" in kind and "'saliency'" in kind
    assert "paper.figures.gradcam.kind" in kind and "next release" in kind
    new, old = plan_of(DEMO), plan_of(config)
    assert old.explain.targets() == new.explain.targets()
    assert any(t.endswith("/explain/saliency") for t in old.explain.targets())
    assert old.paper.figure("gradcam") == new.paper.figure("gradcam")


def test_a_new_config_is_left_as_it_is():
    config = copy.deepcopy(DEMO)
    assert upgrade_config(config) == [] and config == DEMO
    assert upgrade_config({}) == []
    assert upgrade_config({"explain": None, "paper": {"figures": None}}) == []


def test_old_and_new_key_together_is_an_error_naming_both():
    config = copy.deepcopy(DEMO)
    config["explain"]["gradcam"] = {"methods": ["hirescam"]}
    with pytest.raises(ConfigError, match=r"explain\.gradcam and explain\.saliency"):
        upgrade_config(config)
