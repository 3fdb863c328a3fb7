import json
import os
import subprocess
import sys

from cnnatlas.locks import OWNER_FILE, clear_stale_locks, record_owner


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _locked(tmp_path, pid):
    folder = tmp_path / ".snakemake"
    (folder / "locks").mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock"):
        (folder / "locks" / name).write_text("results/manifest.parquet\n")
    record_owner(folder, pid)
    return folder


def test_locks_of_a_dead_run_are_removed(tmp_path):
    folder = _locked(tmp_path, os.getpid())
    owner = json.loads((folder / OWNER_FILE).read_text())
    owner["pid"] = _dead_pid()
    (folder / OWNER_FILE).write_text(json.dumps(owner))
    removed = clear_stale_locks(folder)
    assert sorted(p.name for p in removed) == ["0.input.lock", "0.output.lock"]
    assert not list((folder / "locks").iterdir())


def test_locks_of_a_live_run_stay(tmp_path):
    folder = _locked(tmp_path, os.getpid())
    assert clear_stale_locks(folder) == []
    assert len(list((folder / "locks").iterdir())) == 2


def test_a_reused_pid_is_not_the_owner(tmp_path):
    folder = _locked(tmp_path, os.getpid())
    owner = json.loads((folder / OWNER_FILE).read_text())
    owner["start"] = "1"  # same pid, another process start time: the owner is gone
    (folder / OWNER_FILE).write_text(json.dumps(owner))
    assert len(clear_stale_locks(folder)) == 2


def test_locks_of_another_host_or_newer_than_the_record_stay(tmp_path):
    folder = _locked(tmp_path, _dead_pid())
    owner = json.loads((folder / OWNER_FILE).read_text())
    (folder / OWNER_FILE).write_text(json.dumps({**owner, "host": "elsewhere"}))
    assert clear_stale_locks(folder) == []
    (folder / OWNER_FILE).write_text(json.dumps(owner))
    later = (folder / OWNER_FILE).stat().st_mtime + 10
    os.utime(folder / "locks" / "0.input.lock", (later, later))
    assert clear_stale_locks(folder) == []
    assert len(list((folder / "locks").iterdir())) == 2


def test_unknown_owner_leaves_locks(tmp_path):
    folder = _locked(tmp_path, os.getpid())
    (folder / OWNER_FILE).unlink()
    assert clear_stale_locks(folder) == []
