"""A real TensorBoard server on a projector export, started and stopped: for
`projector_tensorboard.py` and `tests/integration/test_projector_tensorboard.py`."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["get", "serve"]


def get(url: str, timeout: float = 30) -> bytes:
    """The body of a GET request."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_projector(proc, base: str, log: Path, timeout: float) -> None:
    """Until the plugins listing says the projector is active (decided in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"tensorboard exited {proc.returncode}:\n{log.read_text()}"
            )
        try:
            listing = json.loads(get(f"{base}/data/plugins_listing", 10))
            if listing.get("projector", {}).get("enabled"):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"tensorboard's projector not active after {timeout}s:\n{log.read_text()}"
    )


@contextmanager
def serve(
    logdir: Path, log: Path, timeout: float = 180
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process) of `tensorboard --logdir logdir` once its projector is
    active, its output in `log`; stopped by its pid on exit (terminate, then kill).
    RuntimeError with the log when it exits or is not ready within `timeout` seconds."""
    port = _free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_projector(proc, base, log, timeout)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
