"""Logging set-up shared by the workflow's scripts."""

import logging
import sys
import time
import traceback
from pathlib import Path
from typing import TextIO

from cnnatlas.errors import CnnatlasError

__all__ = ["to_log", "one_line", "Progress", "clock"]

log = logging.getLogger(__name__)

# The terminal's stderr once `to_log` has sent this process's stderr to its log.
_terminal: TextIO | None = None


def to_log(path: str | Path) -> None:
    """Send logging records, warnings and stderr (tqdm's bars) of this process to `path`.

    An error that ends the job writes its full traceback to `path` and one message to
    the terminal's stderr: a CnnatlasError's own message (which names the file or key
    and the fix), else the error and where its traceback is.
    """
    global _terminal
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    terminal = _terminal = sys.stderr
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


def clock(seconds: float) -> str:
    """A duration as `41 s`, `2 min 05 s` or `1 h 02 min`."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class Progress:
    """Counts units of work (images, steps, forward passes) and reports, at most every
    `every` seconds and at the end, how many are done, the elapsed time and an estimate
    of the time left: to the log and, in a workflow job, to the terminal too.

    `with Progress(total, "saliency checks", "forward passes") as p: ... p.update(k)`
    """

    def __init__(
        self, total: int | None, what: str, unit: str, every: float = 5.0
    ) -> None:
        """`total` None: not known in advance (no percentage or estimate)."""
        self.total = None if total is None else max(int(total), 1)
        self.what, self.unit, self.every = what, unit, every
        self.done = 0
        self._start = self._last = time.monotonic()

    def __enter__(self) -> "Progress":
        self._report(force=True)
        return self

    def __exit__(self, kind, *exc: object) -> None:
        if kind is None:
            self._report(force=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.total is not None:
            self.done = min(self.done, self.total)
        self._report()

    def line(self) -> str:
        """`what: done/total unit (pct), 1 min 05 s elapsed, about 41 s left`."""
        elapsed = time.monotonic() - self._start
        if self.total is None:
            return f"{self.what}: {self.done:,} {self.unit}, {clock(elapsed)} elapsed"
        pct = 100 * self.done / self.total
        text = f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%), {clock(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += (
                f", about {clock(elapsed / self.done * (self.total - self.done))} left"
            )
        return text

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        text = self.line()
        log.info("%s", text)
        if _terminal is not None:
            print(text, file=_terminal, flush=True)
