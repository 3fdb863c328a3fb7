"""Logging set-up shared by the workflow's scripts."""

import logging
import sys
from pathlib import Path

__all__ = ["to_log"]


def to_log(path: str | Path) -> None:
    """Send logging records, warnings and stderr (tqdm's bars) of this process to `path`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process
    sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
