"""`python -m cnnatlas.maps [--check]`: rewrite (or check) the files that list the map
methods: the schema's method enums, envs/reduce.yaml, pyproject.toml."""

import sys

from cnnatlas import generated
from cnnatlas.maps import methods
from cnnatlas.maps._sync import FILES

if __name__ == "__main__":
    listing = f"map methods: {', '.join(methods())}"
    sys.exit(generated.main("cnnatlas.maps", __doc__, listing, FILES, sys.argv[1:]))
