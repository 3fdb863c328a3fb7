"""A job's error: one message on the terminal, the traceback in the job's log."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = str(Path(__file__).resolve().parents[2] / "workflow" / "scripts")
JOB = """
import sys
sys.path.insert(0, {scripts!r})
from cnnatlas.logs import to_log
from cnnatlas.errors import LayerError

def check():
    {raise_}

to_log({log!r})
print("progress", file=sys.stderr)
check()
"""


@pytest.mark.parametrize(
    "raise_, terminal",
    [
        (
            "raise LayerError(\"models.m.layers: 'fc_1' is not a node\")",
            "cnnatlas: models.m.layers: 'fc_1' is not a node",
        ),
        (
            "[][1]",
            "cnnatlas: IndexError: list index out of range (unexpected; traceback in LOG)",
        ),
    ],
)
def test_an_error_prints_one_line_and_logs_the_traceback(tmp_path, raise_, terminal):
    log = tmp_path / "logs" / "job.log"
    script = JOB.format(scripts=SCRIPTS, raise_=raise_, log=str(log))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [terminal.replace("LOG", str(log))]
    text = log.read_text()
    assert text.startswith("progress\nTraceback (most recent call last):")
    assert "in check" in text
