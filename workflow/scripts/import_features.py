from cnnatlas.extract import import_features
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    import_features(
        snakemake.input.manifest,
        snakemake.params.folder,
        predictions=snakemake.output.predictions,
        features_dir=snakemake.output.features,
        record=snakemake.output.record,
        topk=snakemake.params.topk,
        key=snakemake.params.key,
        model_name=snakemake.wildcards.model,
        **snakemake.params.model,  # layers, class_index, num_classes, root
    )


main(snakemake)  # noqa: F821
