"""The LINDI files of a working tree, and which of their names lindivc can track."""
from __future__ import annotations

import os

from . import lindijson
from .errors import LindivcError, UntrackableName
from .layout import validate_path

# what layout.validate_path accepts (zone keys use the same alphabet: it is not widened)
NAME_RULE = UntrackableName.RULE


def lindi_files(root: str) -> list[str]:
    """Every LINDI file under ``root`` as a sorted worktree path, hidden directories (``.lindivc``
    among them) skipped, including files whose names lindivc cannot track."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for n in filenames:
            if lindijson.is_lindi_name(n):
                out.append(os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/"))
    return sorted(out)


def is_trackable(rel: str) -> bool:
    """True if lindivc can track a file at worktree path ``rel`` (see NAME_RULE)."""
    try:
        validate_path(rel)
    except LindivcError:
        return False
    return True
