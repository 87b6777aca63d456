"""The `lindivc` command: parses arguments, makes one library call, prints.

Every user mistake is a LindivcError, printed as one line on stderr with exit status 1. The
commands live in local.py (the repository), remote.py (zones) and maint.py (pack, serve, gc,
fsck, pin); importing them registers them on the root group.
"""
from __future__ import annotations

import atexit
import os
import sys

from . import local, maint, remote  # noqa: F401  (registers the commands)
from .base import cli

__all__ = ["cli", "main", "end_process"]


def main() -> None:
    """Run the command, then :func:`end_process` with its exit status."""
    try:
        cli(prog_name="lindivc")
        code = 0
    except SystemExit as e:
        code = e.code
    end_process(code)


def end_process(code: int | str | None) -> None:
    """End the process with exit status ``code`` without tearing the interpreter down.

    Every command has closed, flushed and fsynced what it wrote when it returns; tearing down
    frees only memory (botocore's service models, dulwich's objects), which took 0.1-0.2 s of a
    0.3-0.6 s push or commit (scripts/bench/push_s3.py, phases). Exit handlers still run and
    output is flushed; a string ``code`` is printed on stderr, as ``sys.exit`` does."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`lindivc log | head`): nothing left to say
            pass
    os._exit(code)
