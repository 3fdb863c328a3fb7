from cnnatlas.extract import extract, gather_shards
from cnnatlas.logs import to_log
from cnnatlas.models import load_model


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    spec, opts = snakemake.params.spec, snakemake.params.extract
    if snakemake.input.shards:  # extract.shards > 1: the shards ran the forward pass
        gather_shards(
            snakemake.input.manifest,
            snakemake.input.shards,
            layers=list(spec["layers"]),
            predictions=snakemake.output.predictions,
            features_dir=snakemake.output.features,
            topk=opts["topk"],
            model_name=snakemake.wildcards.model,
            class_index=spec.get("class_index"),
        )
        return
    model = load_model(spec, snakemake.input.checkpoint)
    extract(
        snakemake.input.manifest,
        model,
        layers=spec["layers"],
        predictions=snakemake.output.predictions,
        features_dir=snakemake.output.features,
        transform=spec["transform"],
        batch_size=opts["batch_size"],
        num_workers=opts["num_workers"],
        device=opts["device"],
        autocast=opts["autocast"],
        topk=opts["topk"],
        threads=snakemake.threads,
        model_name=snakemake.wildcards.model,
        class_index=spec.get("class_index"),
    )


main(snakemake)  # noqa: F821
