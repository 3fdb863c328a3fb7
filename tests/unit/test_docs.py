"""The documentation: the site builds strictly (broken links, missing pages or included
files fail), the README stays a short front door, and no user documentation carries run
narrative (dates, times of day, load averages, commit hashes, issue numbers)."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

DOCS = sorted((REPO / "docs").glob("*.md"))
USER_DOCS = [REPO / "README.md", *DOCS]

# Run narrative that belongs in benchmarks/README.md or CHANGELOG.md, not in the docs.
NARRATIVE = {
    "a date": r"\b20\d\d-\d\d-\d\d\b",
    "a time of day": r"(?<![\d:])\b[0-2]?\d:[0-5]\d\b(?!:)",
    "a load average": r"(?i)\bload average|\bat load\b",
    "this machine": r"(?i)\bthis (2-core |shared |development )?machine\b|\bon this 2-core\b",
    "a commit hash": r"(?<![#\w])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
    "an issue number": r"(?i)\bissue #?\d+|\(#\d+\)",
    "before/after history": r"(?i)\bbefore this change\b|\bsince this change\b|\bit was \d|\bnow takes?\b|\bnot met\b",
    "a file outside the repository": r"PERF-NOTES|/work/|\.\./shared",
}


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.name)
def test_no_run_narrative(path):
    text = path.read_text(encoding="utf-8")
    found = [
        f"{what}: {m.group(0)!r} in line {text.count(chr(10), 0, m.start()) + 1}"
        for what, pattern in NARRATIVE.items()
        for m in re.finditer(pattern, text)
    ]
    assert found == []


@pytest.mark.parametrize(
    "text",
    [
        "measured 2026-11-27 at 14:21",
        "at load average 12",
        "on this 2-core machine",
        "commit 7a78660",
        "see issue #15",
        "Not met for resnet50",
    ],
)
def test_narrative_markers_are_caught(text):
    assert any(re.search(p, text) for p in NARRATIVE.values())


def test_narrative_check_leaves_facts_alone():
    facts = (
        "resnet18 at 224 px, float32 [N, D], n01440764, cuda:0, 1,915 images/s, #4477aa"
    )
    assert not any(re.search(p, facts) for p in NARRATIVE.values())


def test_readme_is_a_short_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    quick = re.search(
        r"<!-- quickstart -->\n```\n(.*?)\n```\n<!-- /quickstart -->", text, re.S
    )
    assert quick and len(quick.group(1).splitlines()) == 2  # .ci/run runs these lines
    assert "results/index.html" in text and "docs/atlas.png" in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).is_file(), link


def test_no_file_refers_outside_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"PERF-NOTES|/work/(?!dir)|\.\./shared")
    bad = []
    for name in tracked:
        path = REPO / name
        if (
            path.suffix in {".png", ".gif", ".pdf", ".js", ".npz", ".pt"}
            or not path.is_file()
        ):
            continue
        if name == "tests/unit/test_docs.py":
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        bad += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert bad == []


def test_site_builds_strictly(tmp_path):
    if (
        importlib.util.find_spec("mkdocs") is None
        or importlib.util.find_spec("material") is None
    ):
        if os.environ.get("CI") == "true":
            pytest.fail(
                "mkdocs and mkdocs-material are in the test extra: pip install -e '.[test]'"
            )
        pytest.skip("mkdocs-material is not installed (pip install -e '.[test]')")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    site = tmp_path / "site"
    for page in (
        "index.html",
        "configuration/index.html",
        "troubleshooting/index.html",
    ):
        assert (site / page).is_file()
    # examples are included, not copied: the page shows the file's text
    recipes = (site / "your-data/index.html").read_text(encoding="utf-8")
    assert "timm:resnet10t" in recipes and "--8&lt;--" not in recipes
    # offline: no web fonts or other fetched assets
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in home


def test_every_config_in_the_docs_validates():
    """A YAML block of the docs that holds a whole config (dataset and models) is valid
    against the schema, so a config copied from a page runs."""
    import jsonschema
    import yaml
    from cnnatlas.schema import load_schema

    blocks = [
        (path.name, block)
        for path in USER_DOCS
        for block in re.findall(r"```yaml[^\n]*\n(.*?)```", path.read_text(), re.S)
    ]
    configs = [(name, yaml.safe_load(b)) for name, b in blocks if "--8<--" not in b]
    whole = [
        (n, c)
        for n, c in configs
        if isinstance(c, dict) and {"dataset", "models"} <= set(c)
    ]
    assert any(name == "cluster.md" for name, _ in whole)
    for name, config in whole:
        try:
            jsonschema.validate(config, load_schema())
        except jsonschema.ValidationError as err:
            pytest.fail(f"{name}: {err.message} at {list(err.absolute_path)}")
