"""`snakemake paper` on the tiny config: the figures of its paper section, and only those."""

import json
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from tests.conftest import run_snakemake
from tests.e2e.conftest import write_tiny_config

pytestmark = pytest.mark.e2e

FIGURES = {  # name -> (width in inches, panels lettered)
    "grid": (7.2, "abcd"),
    "pca": (3.5, "ab"),
    "sweep": (3.5, "abcd"),
    "cam": (3.5, "abc"),
    "filters": (7.2, "abc"),
    "separation": (3.5, ""),
    "trust_curves": (7.2, "ab"),
    "trust_cascade": (7.2, ""),
    "cka": (3.5, "ab"),
}


def job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_paper_plans_only_what_its_figures_need(tmp_path):
    workdir = write_tiny_config(tmp_path / "plan")
    jobs = job_counts(run_snakemake(workdir, "-n", "paper").stdout)
    assert jobs["draw_paper_figure"] == len(FIGURES)
    # t-SNE and PCA maps of 2 checkpoints (one job each for both layers: layer_jobs
    # auto); no figures, explanations, exports
    assert jobs["reduce_tsne"] == jobs["reduce_pca"] == jobs["measure_maps"] == 2
    unwanted = {"plot_embeddings", "render_saliency", "visualize_filters"}
    unwanted |= {"export_projector", "align_evolution", "write_provenance"}
    assert not unwanted & set(jobs)


@pytest.fixture(scope="module")
def paper_dir(tiny_run):
    run_snakemake(tiny_run.parent, "paper")
    return tiny_run / "paper"


@pytest.mark.parametrize("name", FIGURES)
def test_paper_figure_width_letters_and_run_hash(paper_dir, name):
    width, letters = FIGURES[name]
    run_hash = json.loads((paper_dir.parent / "provenance.json").read_text())[
        "run_hash"
    ]
    reader = PdfReader(paper_dir / f"{name}.pdf")
    assert float(reader.pages[0].mediabox.width) == pytest.approx(width * 72)
    words = reader.pages[0].extract_text().split()
    assert set(letters) <= set(words)
    assert run_hash not in " ".join(words)
    assert reader.metadata["/Subject"] == f"cnnatlas run {run_hash}"
    with Image.open(paper_dir / f"{name}.png") as im:
        assert im.size[0] == round(width * 300)
        assert im.info["cnnatlas.run_hash"] == run_hash
        assert im.getextrema() != ((255, 255),) * len(im.getbands())  # not blank


def test_paper_rerun_writes_the_same_bytes(paper_dir):
    # a map grid, the two figures recomputed from the checkpoint, a saliency figure
    files = [
        paper_dir / f"{n}.{ext}"
        for n in ("grid", "cam", "filters", "trust_cascade")
        for ext in ("pdf", "png")
    ]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    targets = [str(p.relative_to(paper_dir.parent.parent)) for p in files]
    run_snakemake(paper_dir.parent.parent, *targets, "--forcerun", "draw_paper_figure")
    for p in files:
        assert p.stat().st_mtime_ns > before[p][1], f"{p.name} was not redrawn"
    assert [p.name for p in files if p.read_bytes() != before[p][0]] == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{kind: filters, model: tiny, layer: conv9}",
            "paper.figures.bad.layer: 'conv9'",
        ),
        (
            "{kind: layer_grid, model: tiny, perplexity: 7}",
            "paper.figures.bad.perplexity: 7",
        ),
        ("{kind: saliency, model: big}", "paper.figures.bad.model: 'big'"),
    ],
)
def test_a_bad_paper_entry_stops_the_run_naming_the_key(tmp_path, entry, message):
    workdir = write_tiny_config(tmp_path / "bad")
    config = workdir / "config.yaml"
    config.write_text(config.read_text() + f"    bad: {entry}\n")
    with pytest.raises(AssertionError) as failed:
        run_snakemake(workdir, "-n", "paper")
    assert message in str(failed.value)
