from cnnatlas.demo import demo_transform, train
from cnnatlas.logs import to_log


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    train(
        snakemake.input.train,
        checkpoints=snakemake.output.checkpoints,
        steps=snakemake.params.steps,
        transform=demo_transform(snakemake.params.size),
        batch_size=snakemake.params.batch_size,
        lr=snakemake.params.lr,
        seed=snakemake.params.seed,
        threads=snakemake.threads,
        device=snakemake.params.device,
    )


main(snakemake)  # noqa: F821
