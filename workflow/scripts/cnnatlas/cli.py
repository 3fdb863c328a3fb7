"""The `cnnatlas` command line: helpers for writing a config."""

import argparse
import sys

from cnnatlas import __version__
from cnnatlas.errors import CnnatlasError
from cnnatlas.models import build_model, traced_layer_names

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """`cnnatlas layers ARCH [--num-classes N]`: print the names `layers:` accepts.

    These are torch.fx node names; for a model torch.fx cannot trace they are module
    names (the forward pass then taps modules with hooks), with a note on stderr.
    """
    parser = argparse.ArgumentParser(prog="cnnatlas", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"cnnatlas {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    layers = sub.add_parser("layers", help="list the FX node names of an architecture")
    layers.add_argument(
        "arch",
        help="torchvision builder name, timm:<name>, or module:callable "
        "(a module in the current folder is found)",
    )
    layers.add_argument("--num-classes", type=int, default=10)
    args = parser.parse_args(argv)
    try:
        model = build_model(args.arch, args.num_classes)
    except CnnatlasError as err:
        print(f"cnnatlas: {err}", file=sys.stderr)
        return 2
    names, why = traced_layer_names(model)
    if why:
        print(
            f"cnnatlas: torch.fx cannot trace {args.arch} ({why}); its layers are "
            "tapped with forward hooks on modules, so `layers:` takes these module names:",
            file=sys.stderr,
        )
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
