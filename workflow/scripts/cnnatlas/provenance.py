"""Provenance of a run: what went in, with which software, and the hash of what came out.

`provenance.json` holds the resolved config, package versions, platform, thread counts,
device, and the sha256 of every checkpoint, of the manifest and of every output file;
an imported checkpoint (`features_from`) lists the sha256 of each file of its folder,
from the record its import wrote (hashed once, by the import).
It carries no timestamp, so the same run on the same machine writes the same bytes.
`run_hash` names the inputs of a run (config, checkpoints, manifest, versions) in
12 hex digits: paper figures carry it in their metadata.
"""

import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from cnnatlas import __version__
from cnnatlas.io import atomic_path
from cnnatlas.maps import packages as map_packages
from cnnatlas.precomputed import RECORD

__all__ = [
    "PACKAGES",
    "sha256_file",
    "hash_outputs",
    "package_versions",
    "machine",
    "run_hash",
    "provenance",
    "write_provenance",
    "compare_outputs",
]

log = logging.getLogger(__name__)

# Besides the packages of every map method (cnnatlas.maps.packages()).
PACKAGES = (
    "torch",
    "torchvision",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "pillow",
    "matplotlib",
    "plotly",
    "snakemake",
    "cnnatlas",
)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_outputs(paths: Iterable[str | Path], root: str | Path) -> dict[str, str]:
    """{path relative to root: sha256} for every file in `paths`; folders are walked.

    Hidden files (temporaries of an atomic write) are left out; keys are sorted.
    """
    root = Path(root)
    files: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            files |= {f for f in p.rglob("*") if f.is_file()}
        elif p.is_file():
            files.add(p)
        else:
            raise FileNotFoundError(f"output {str(p)!r} does not exist")
    visible = (f for f in files if not any(s.startswith(".") for s in f.parts[-1:]))
    return {
        str(f.relative_to(root) if f.is_relative_to(root) else f): sha256_file(f)
        for f in sorted(visible)
    }


def package_versions(names: Iterable[str] | None = None) -> dict[str, str | None]:
    """Installed versions of `names` (default: PACKAGES and the map methods' packages;
    None for one that is not installed), and Python's."""
    if names is None:
        names = dict.fromkeys([*PACKAGES, *map_packages()])
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        if name == "cnnatlas":  # the checkout's library runs the jobs, installed or not
            out[name] = __version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict[str, Any]:
    """Platform, CPU count and the torch device that `extract.device: auto` would pick."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "cuda": cuda,
        "cuda_version": torch.version.cuda,
        "gpus": [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        if cuda
        else [],
    }


def run_hash(
    config: Mapping[str, Any],
    checkpoints: Mapping[str, str],
    manifest: str,
    versions: Mapping[str, str | None],
) -> str:
    """12 hex digits naming a run's inputs: config, checkpoint and manifest hashes, versions."""
    blob = json.dumps(
        {
            "config": config,
            "checkpoints": checkpoints,
            "manifest": manifest,
            "versions": versions,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def provenance(
    config: Mapping[str, Any],
    checkpoints: Mapping[str, str | Path],
    manifest: str | Path,
    outputs: Iterable[str | Path],
    results: str | Path,
    threads: Mapping[str, Any],
    cores: int | None = None,
) -> dict[str, Any]:
    """The provenance record of a run (see the module docstring)."""
    ckpt = {name: sha256_file(p) for name, p in sorted(checkpoints.items())}
    man = sha256_file(manifest)
    versions = package_versions()
    return {
        "run_hash": run_hash(config, ckpt, man, versions),
        "config": config,
        "versions": versions,
        "machine": machine(),
        "threads": {"cores": cores, "rules": dict(sorted(threads.items()))},
        "checkpoints": {
            name: _checkpoint(checkpoints[name], h) for name, h in ckpt.items()
        },
        "manifest": {"path": str(manifest), "sha256": man},
        "outputs": hash_outputs(outputs, results),
    }


def _checkpoint(path: str | Path, sha256: str) -> dict[str, Any]:
    """A checkpoint's entry; an imported one's adds its folder and files' hashes."""
    entry: dict[str, Any] = {"path": str(path), "sha256": sha256}
    if Path(path).name == RECORD:
        entry["imported"] = json.loads(Path(path).read_text(encoding="utf-8"))
    return entry


def write_provenance(path: str | Path, record: Mapping[str, Any]) -> None:
    """Write `record` as indented, key-sorted JSON, atomically."""
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info(
        "provenance: run %s, %d outputs hashed",
        record["run_hash"],
        len(record["outputs"]),
    )


def compare_outputs(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Compare the output hashes of two provenance records.

    Returns {"changed": files in both with different sha256, "new": files only in
    `after`, "missing": files only in `before`, "same": files with equal sha256}, each
    sorted; the checkpoints and the manifest count as files named by their key.
    """

    def hashes(record: Mapping[str, Any]) -> dict[str, str]:
        out = dict(record["outputs"])
        out["<manifest>"] = record["manifest"]["sha256"]
        for name, ckpt in record["checkpoints"].items():
            out[f"<checkpoint {name}>"] = ckpt["sha256"]
        return out

    a, b = hashes(before), hashes(after)
    return {
        "changed": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
        "new": sorted(b.keys() - a.keys()),
        "missing": sorted(a.keys() - b.keys()),
        "same": sorted(k for k in a.keys() & b.keys() if a[k] == b[k]),
    }
