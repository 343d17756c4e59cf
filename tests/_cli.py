"""Calling the command line in-process, and what every user error must look like (one line
``evsim: error: ...``, exit code 2, no traceback)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from evsim.cli import main

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def wait_until_evsim_catches_signals(proc, timeout_s=60.0):
    """Block until the child ``python -m evsim.cli ...`` catches SIGTERM (evsim.cli's first
    statement installs its handlers for SIGINT and SIGTERM together), or it has ended. A signal
    before that reaches the interpreter's own start-up, which evsim cannot handle (a slow machine
    spent more than 0.2 s there); SIGTERM is never caught by Python itself, so the bit is evsim's."""
    status = Path(f"/proc/{proc.pid}/status")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:  # the process has just ended
            return
        if int(fields["SigCgt"], 16) & SIGTERM_BIT:
            return
        time.sleep(0.001)
    assert proc.poll() is not None, "evsim.cli never installed its signal handlers"


def evsim_cli(capsys, *args):
    """(exit code, stdout, stderr) of ``evsim ARGS`` run in this process."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code, err, *fragments):
    """One line ``evsim: error: ...`` holding every fragment, exit code 2, no traceback."""
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("evsim: error:")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
