"""One version number: cnnatlas.__version__, read by pyproject, the CLI, provenance.json,
CITATION.cff and CHANGELOG.md."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import cnnatlas
import yaml
from cnnatlas.cli import main
from cnnatlas.provenance import package_versions

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_written_once_and_pyproject_reads_it():
    assert re.fullmatch(r"\d+\.\d+\.\d+", cnnatlas.__version__)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "cnnatlas.__version__"


def test_cli_prints_the_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"cnnatlas {cnnatlas.__version__}"


def test_cli_version_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "cnnatlas.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "workflow" / "scripts")},
    )
    assert out.stdout.strip() == f"cnnatlas {cnnatlas.__version__}"


def test_provenance_reports_the_checkouts_version():
    assert package_versions()["cnnatlas"] == cnnatlas.__version__


def test_citation_and_changelog_name_the_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by CFF 1.2.0
        assert cff[key]
    assert str(cff["version"]) == cnnatlas.__version__
    assert cff["license"] == "BSD-3-Clause"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{cnnatlas.__version__}]" in changelog
    assert "BSD 3-Clause" in (ROOT / "LICENSE").read_text()
