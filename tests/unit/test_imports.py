"""Rule inputs naming library modules are derived from the scripts' imports."""

from pathlib import Path

from cnnatlas.imports import imported_modules, library_files

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "workflow/scripts"


def test_imports_are_followed_transitively_and_into_functions():
    extract = imported_modules(SCRIPTS / "extract_features.py")
    # extract.py imports data and models: editing either reruns extraction
    assert {"cnnatlas.extract", "cnnatlas.data", "cnnatlas.models"} <= set(extract)
    paper = imported_modules(SCRIPTS / "draw_paper_figure.py")
    # paper.py imports the explain package's modules inside functions
    assert {"cnnatlas.paper", "cnnatlas.plots", "cnnatlas.provenance"} <= set(paper)
    assert "cnnatlas.explain.gradcam" in paper and "cnnatlas.classes" in paper
    assert "cnnatlas.interactive" not in paper


def test_a_registry_depends_on_every_module_of_its_package():
    reduce = imported_modules(SCRIPTS / "reduce_features.py")
    methods = sorted(p.stem for p in (SCRIPTS / "cnnatlas/maps").glob("[!_]*.py"))
    assert {f"cnnatlas.maps.{m}" for m in methods} <= set(reduce)
    assert "cnnatlas.maps._sync" not in reduce


def test_library_files_are_paths_of_real_files(tmp_path):
    files = library_files(SCRIPTS / "measure_maps.py")
    assert files == sorted(files)
    assert all(Path(f).is_file() for f in files)
    assert str(SCRIPTS / "cnnatlas/metrics.py") in files


def test_relative_and_missing_imports(tmp_path):
    pkg = tmp_path / "cnnatlas"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\nimport os\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from cnnatlas import nothing_here\n")
    script = tmp_path / "job.py"
    script.write_text("def main():\n    from cnnatlas.a import thing\n")
    assert imported_modules(script) == [
        "cnnatlas",
        "cnnatlas.a",
        "cnnatlas.sub",
        "cnnatlas.sub.b",
    ]
