"""The user's project folder: modules and files a config names beside its config.yaml.

Snakemake runs every job in the working directory, the project folder; a job's script
runs from `.snakemake/scripts/`, so that folder is not on `sys.path`. A custom
architecture `mynets:vgg_bn` with `mynets.py` beside config.yaml is imported from the
project folder first, as `python` run in that folder would.
"""

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnatlas.errors import ModelError

__all__ = ["module_file", "import_callable", "model_files"]


def module_file(module: str, folder: str | Path = ".") -> Path | None:
    """The source of `module` (`a.b`) in `folder`: a/b.py or a/b/__init__.py, else None."""
    base = Path(folder).joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def import_callable(arch: str, key: str = "arch") -> Any:
    """The object `module:attr` names, importing `module` from the project folder (the
    working directory) first when it holds the module, else from the installed packages."""
    module_name, _, attr = arch.partition(":")
    folder = Path.cwd()
    if module_file(module_name, folder) and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name or module_name.startswith(f"{err.name}."):
            raise ModelError(
                f"{key} {arch!r}: no module {module_name!r} in the project folder "
                f"{str(folder)!r} (where snakemake runs: put {module_name.replace('.', '/')}.py "
                "beside config.yaml) nor among the installed packages"
            ) from err
        raise ModelError(
            f"{key} {arch!r}: importing {module_name!r} failed: {err}"
        ) from err
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise ModelError(
            f"{key} {arch!r}: module {module_name!r} ({module.__file__}) has no "
            f"{attr!r}; it has {public[:20]}"
        )
    return getattr(module, attr)


def model_files(spec: Mapping[str, Any], folder: str | Path = ".") -> list[str]:
    """Files in the project folder a model is built from: its architecture's module and
    its class-index file (as rule inputs, so that editing them reruns the extraction)."""
    files = []
    arch = spec.get("arch", "")  # none for a model with features_from
    if ":" in arch and not arch.startswith("timm:"):
        path = module_file(arch.partition(":")[0], folder)
        if path is not None:
            files.append(str(path))
    if isinstance(spec.get("class_index"), str):
        files.append(spec["class_index"])
    return files
