"""`python -m cnnatlas.maps [--check]`: rewrite (or check) the files that list the map
methods: the schema's method enums, envs/reduce.yaml, pyproject.toml."""

import argparse
import sys

from cnnatlas.maps import methods
from cnnatlas.maps._sync import stale, sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cnnatlas.maps", description=__doc__
    )
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    print(f"map methods: {', '.join(methods())}")
    files = stale() if args.check else sync()
    for path in files:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if args.check and files else 0


if __name__ == "__main__":
    sys.exit(main())
