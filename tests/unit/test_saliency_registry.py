"""The files that list the saliency methods, written from the registry."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from cnnatlas import generated
from cnnatlas.explain.saliency import METHODS, _sync
from cnnatlas.explain.saliency._sync import FILES, SCHEMA_MARKER
from cnnatlas.schema import section

REPO = Path(__file__).resolve().parents[2]
SCHEMA = "workflow/schemas/config.schema.yaml"


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnatlas.explain.saliency", *args],
        cwd=REPO / "workflow/scripts",
        capture_output=True,
        text=True,
    )


def test_the_check_passes_on_the_tree_and_lists_the_registry():
    assert generated.stale(FILES) == [], (
        "run: PYTHONPATH=workflow/scripts python -m cnnatlas.explain.saliency"
    )
    proc = _check("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"saliency methods: {', '.join(METHODS)}" in proc.stdout


def test_schema_and_config_list_every_registered_method():
    names = ", ".join(METHODS)
    for key in ("explain.saliency.methods", "explain.trust.methods"):
        assert section(key)["description"].endswith(f"{SCHEMA_MARKER} {names}"), key
    config_text = (REPO / "config.yaml").read_text()
    assert f"# saliency methods: {names}\n" in config_text
    config = yaml.safe_load(config_text)
    assert config["explain"]["trust"]["methods"] == list(METHODS)


def test_the_method_table_of_the_docs_names_every_method():
    text = (REPO / "docs/explanations.md").read_text()
    table = text[text.index("| name | method |") :].split("\n\n")[0]
    assert re.findall(r"^\| `([^`]+)` \|", table, flags=re.M) == list(METHODS)


def test_a_removed_name_fails_the_check_and_the_rewrite_restores_it(
    tmp_path, monkeypatch, capsys
):
    for path in FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp_path / path)
    schema = tmp_path / SCHEMA
    original = schema.read_text()
    schema.write_text(original.replace("gradcam++, hirescam,", "gradcam++,"))
    assert schema.read_text() != original
    monkeypatch.setattr(generated, "ROOT", tmp_path)
    run = ["cnnatlas.explain.saliency", "doc", "listing", FILES]
    assert generated.main(*run, ["--check"]) == 1
    assert f"stale: {SCHEMA}" in capsys.readouterr().out
    assert generated.main(*run, []) == 0
    assert schema.read_text() == original
    assert generated.main(*run, ["--check"]) == 0


def test_a_new_method_is_written_into_every_list(monkeypatch):
    names = [*METHODS, "newcam"]
    monkeypatch.setattr(_sync, "saliency_method_names", lambda: names)
    schema = yaml.safe_load(generated.expected(FILES, SCHEMA))
    explain = schema["properties"]["explain"]["properties"]
    for key in ("saliency", "trust"):
        description = explain[key]["properties"]["methods"]["description"]
        assert description.endswith(", scorecam, newcam"), key
    config = generated.expected(FILES, "config.yaml")
    assert (
        "# saliency methods: gradcam, gradcam++, hirescam, layercam, scorecam, newcam"
        in config
    )
    assert yaml.safe_load(config)["explain"]["trust"]["methods"] == names
