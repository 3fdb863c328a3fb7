import pandas as pd
from cnnatlas.io import atomic_path, write_parquet
from cnnatlas.logs import to_log
from cnnatlas.metrics import layer_summary, plot_layer_summary


def main(snakemake) -> None:
    to_log(snakemake.log[0])
    metrics = pd.read_parquet(snakemake.input.metrics)
    metrics = metrics[metrics["model"] == snakemake.wildcards.model]
    params = snakemake.params
    summary = layer_summary(metrics, list(params.layers), list(params.ckpts))
    write_parquet(summary, snakemake.output.table)
    with atomic_path(snakemake.output.csv) as tmp:
        summary.to_csv(tmp, index=False)
    out = snakemake.output
    plot_layer_summary(summary, out.png, out.pdf, params.ckpts)


main(snakemake)  # noqa: F821
