"""The `lindivc` command: parses arguments, makes one library call, prints.

Every user mistake is a LindivcError, printed as one line on stderr with exit status 1. The
commands live in local.py (the repository), remote.py (zones) and maint.py (pack, serve, gc,
fsck, pin); importing them registers them on the root group.
"""
from __future__ import annotations

from . import local, maint, remote  # noqa: F401  (registers the commands)
from .base import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli(prog_name="lindivc")

