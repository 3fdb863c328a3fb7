"""Logging set-up shared by the workflow's scripts."""

import logging
import sys
import traceback
from pathlib import Path

from cnnatlas.errors import CnnatlasError

__all__ = ["to_log", "one_line"]


def to_log(path: str | Path) -> None:
    """Send logging records, warnings and stderr (tqdm's bars) of this process to `path`.

    An error that ends the job writes its full traceback to `path` and one message to
    the terminal's stderr: a CnnatlasError's own message (which names the file or key
    and the fix), else the error and where its traceback is.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr
    stream = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process
    sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)

    def report(kind, err, tb) -> None:
        traceback.print_exception(kind, err, tb, file=stream)
        if isinstance(err, Exception):
            print(one_line(err, path), file=terminal, flush=True)

    sys.excepthook = report


def one_line(err: BaseException, log: str | Path) -> str:
    """What the terminal shows of an error that ended a job whose log is `log`."""
    if isinstance(err, CnnatlasError):
        return f"cnnatlas: {err}"
    return f"cnnatlas: {type(err).__name__}: {err} (unexpected; traceback in {log})"
