"""The `cnnatlas` command line: helpers for writing a config."""

import argparse
import json
import os
import sys
from pathlib import Path

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
    plan = sub.add_parser(
        "plan",
        help="estimate each rule's CPU time and memory for the config, before a run",
        description="Run in the project folder: the jobs a run would execute now, each "
        "rule's estimated CPU time and peak memory per job, the stage that dominates and "
        "the keys that change it. Exit status 1 when a job would not fit its memory.",
    )
    plan.add_argument("--configfile", default="config.yaml")
    plan.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    plan.add_argument(
        "--mem-mb",
        type=float,
        help="memory of every job (default: the profile's mem_mb)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.command == "plan":
        try:
            return _plan(args)
        except (CnnatlasError, RuntimeError) as err:
            print(f"cnnatlas: {err}", file=sys.stderr)
            return 2
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


def _dataset(config: dict) -> tuple[int, int, list[str]]:
    """(images, classes, a few image paths) of the config's dataset; for the demo's
    not yet written digits, their count."""
    from cnnatlas.data import manifest_from_imagefolder, manifest_from_table

    ds = config["dataset"]
    path = Path(ds["path"])
    if not path.exists() and config.get("demo", {}).get("enabled"):
        from cnnatlas.demo import split_digits

        demo = config["demo"]
        return len(split_digits(demo["test_size"], demo["seed"])[1]), 10, []
    if ds["kind"] == "imagefolder":
        df = manifest_from_imagefolder(path, ds.get("classes"))
    else:
        df = manifest_from_table(
            path, ds["path_column"], ds["label_column"], ds.get("classes")
        )
    paths = df["path"].tolist()
    step = max(len(paths) // 8, 1)
    return len(df), int(df["label"].nunique()), paths[::step][:8]


def _mem_limits(workflow: Path, override: float | None) -> dict[str, float]:
    import yaml

    profile = yaml.safe_load(
        (workflow / "profiles" / "default" / "config.yaml").read_text()
    )
    limits = {
        r: float(v["mem_mb"])
        for r, v in profile["set-resources"].items()
        if "mem_mb" in v
    }
    if override:
        limits = {r: override for r in limits} | {"default": override}
    return limits


def _plan(args: argparse.Namespace) -> int:
    import yaml

    from cnnatlas import cost
    from cnnatlas.deprecations import upgrade_config
    from cnnatlas.precomputed import complete_models, imported
    from cnnatlas.schema import fill_defaults

    config_path = Path(args.configfile)
    if not config_path.is_file():
        raise CnnatlasError(
            f"{config_path}: no such config; run in the project folder or give --configfile"
        )
    config = yaml.safe_load(config_path.read_text()) or {}
    for note in upgrade_config(config):
        print(f"cnnatlas plan: {note}", file=sys.stderr)
    config = fill_defaults(config)
    complete_models(config["models"])
    workflow = Path(cost.__file__).resolve().parents[3]
    n, classes, sample = _dataset(config)
    jobs = cost.count_jobs(
        workflow / "Snakefile", Path.cwd(), [str(config_path)], args.cores
    )
    if not jobs:
        print("cnnatlas plan: nothing to do (every output is up to date)")
        return 0
    ex = config["explain"]
    # a model with features_from runs no network: its import is costed by file size
    profiles = {
        name: cost.profile_model(spec, name, ex, sample, threads=args.cores)
        for name, spec in config["models"].items()
        if not imported(spec)
    }
    methods = list(ex["trust"]["methods"]) or list(ex["saliency"]["methods"])
    limits = _mem_limits(workflow, args.mem_mb)
    plan = cost.estimate(
        jobs, n, classes, profiles, config, methods, cost.load_constants(),
        args.cores, limits, cost.import_sizes(config["models"]),
    )  # fmt: skip
    if args.json:
        print(json.dumps(plan, indent=1))
    else:
        print(cost.format_plan(plan, limits))
    return 1 if plan["too_big"] else 0


if __name__ == "__main__":
    sys.exit(main())
