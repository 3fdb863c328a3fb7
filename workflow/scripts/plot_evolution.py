from cnnatlas.evolution_plots import render_evolution
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    out = snakemake.output
    render_evolution(
        maps_dir=snakemake.input.maps,
        ckpts=snakemake.params.ckpts,
        manifest=snakemake.input.manifest,
        predictions=snakemake.params.predictions,
        png=out.strip_png,
        pdf=out.strip_pdf,
        gif=out.animation,
        html=out.html,
        title=snakemake.params.title,
        frames=snakemake.params.frames,
        fps=snakemake.params.fps,
    )


main(snakemake)  # noqa: F821
