"""Calling the command line in-process, and what every user error must look like (one line
``evsim: error: ...``, exit code 2, no traceback)."""

from __future__ import annotations

from evsim.cli import main


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
