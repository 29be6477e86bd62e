"""Helpers for tests that drive the command line in-process."""

from __future__ import annotations

from tdsnn.cli import main


def run_cli(*argv: object) -> int:
    """``tdsnn ARGV`` in this process; its exit code (argparse's SystemExit included)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code or 0)


def one_line_error(capsys) -> str:
    """The one line a failing command printed on stderr (no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]
