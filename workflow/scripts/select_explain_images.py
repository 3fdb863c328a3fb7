from cnnatlas.explain.select import write_selection
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    images = snakemake.params.images
    write_selection(
        snakemake.input.predictions,
        snakemake.output.selection,
        ids=images["ids"],
        correct_per_class=images["correct_per_class"],
        wrong_per_class=images["misclassified_per_class"],
        seed=images["seed"],
    )


main(snakemake)  # noqa: F821
