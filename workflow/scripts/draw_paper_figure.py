import torch
from cnnatlas.logs import to_log
from cnnatlas.paper import draw_figure, figure_run_hash, save_paper_figure


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    torch.set_num_threads(snakemake.threads)
    run = figure_run_hash(
        snakemake.params.config, snakemake.params.checkpoints, snakemake.input.manifest
    )
    fig = draw_figure(snakemake.params.figure, snakemake.params.fonts)
    save_paper_figure(
        fig, snakemake.output.pdf, snakemake.output.png, run, snakemake.params.dpi
    )


main(snakemake)  # noqa: F821
