"""cnnatlas: the library behind the cnnatlas Snakemake workflow.

One module per stage (data, models, extract, demo, ...). Nothing here imports snakemake,
so every function can be used and tested on its own.
"""

__version__ = "0.1.0"
