"""`python -m cnnatlas.explain.saliency [--check]`: rewrite (or check) the files that
list the saliency methods: the config schema's descriptions and config.yaml."""

import sys

from cnnatlas import generated
from cnnatlas.explain.saliency._sync import FILES
from cnnatlas.saliency_names import saliency_method_names

if __name__ == "__main__":
    listing = f"saliency methods: {', '.join(saliency_method_names())}"
    prog = "cnnatlas.explain.saliency"
    sys.exit(generated.main(prog, __doc__, listing, FILES, sys.argv[1:]))
