"""Stale Snakemake locks left by a killed run, removed so that a plain rerun works.

Snakemake locks the working directory while it runs (`.snakemake/locks/*.lock`) and
removes the locks when it ends; a run killed with SIGKILL (or a lost node) leaves them,
and the next run stops with "Directory cannot be locked". The workflow records which
process holds the locks (`record_owner`, called from `onstart`, i.e. after locking);
`clear_stale_locks`, called when the Snakefile is parsed, removes the locks only when
that owner is known, ran on this host, is dead, and the locks are not newer than the
record. Locks of a live run, of another host or of an unknown owner are never touched.
"""

import json
import logging
import os
import socket
from pathlib import Path

__all__ = ["OWNER_FILE", "record_owner", "clear_stale_locks"]

log = logging.getLogger(__name__)

OWNER_FILE = "cnnatlas-lock-owner.json"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    if Path("/proc/self/stat").exists():
        now = _start_time(pid)
        return now is not None and (start is None or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_owner(snakemake_dir: str | Path, pid: int | None = None) -> None:
    """Write which process (host, pid, start time) holds the locks of `snakemake_dir`."""
    pid = os.getpid() if pid is None else pid
    owner = {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)}
    # written beside and renamed, as cnnatlas.io.atomic_path does (not imported here:
    # this module is imported whenever the Snakefile is parsed, so it stays light)
    path = Path(snakemake_dir) / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(owner))
    os.replace(tmp, path)


def clear_stale_locks(snakemake_dir: str | Path) -> list[Path]:
    """Remove the lock files of a dead run of this host from `snakemake_dir`; return them."""
    folder = Path(snakemake_dir)
    locks = sorted((folder / "locks").glob("*.lock"))
    owner_file = folder / OWNER_FILE
    if not locks or not owner_file.is_file():
        return []
    try:
        owner = json.loads(owner_file.read_text())
    except (OSError, ValueError):
        return []
    recorded = owner_file.stat().st_mtime
    if (
        owner.get("host") != socket.gethostname()
        or _alive(int(owner["pid"]), owner.get("start"))
        or any(lock.stat().st_mtime > recorded for lock in locks)
    ):
        return []
    for lock in locks:
        lock.unlink(missing_ok=True)
    log.warning(
        "removed %d stale locks of snakemake process %s, which was killed",
        len(locks),
        owner["pid"],
    )
    return locks
