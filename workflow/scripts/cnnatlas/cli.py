"""The `cnnatlas` command line: helpers for writing a config."""

import argparse
import sys

from cnnatlas.errors import CnnatlasError
from cnnatlas.models import build_model, layer_names

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """`cnnatlas layers ARCH [--num-classes N]`: print the node names `layers:` accepts."""
    parser = argparse.ArgumentParser(prog="cnnatlas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    layers = sub.add_parser("layers", help="list the FX node names of an architecture")
    layers.add_argument(
        "arch", help="torchvision builder name or package.module:callable"
    )
    layers.add_argument("--num-classes", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        model = build_model(args.arch, args.num_classes)
    except CnnatlasError as err:
        print(f"cnnatlas: {err}", file=sys.stderr)
        return 2
    print("\n".join(layer_names(model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
