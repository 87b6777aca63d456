"""The history of a branch, or of one file, newest first, with what each commit changed."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .diff import FileDiff, diff_commit
from .errors import LindivcError, UnknownRevision, UnknownRevisionOrPath
from .history import CommitInfo
from .repo import Repository


@dataclass
class LogEntry:
    """One commit of a log, with what it changed when that was asked (``stat``)."""

    commit: CommitInfo
    files: list[FileDiff]  # against the first parent when stat was asked, else []


def log(repo: Repository, rev: str = "HEAD", max_count: int | None = None, path: str | None = None,
        stat: bool = False, target: str | None = None) -> list[LogEntry]:
    """Commits reachable from ``rev``, newest first; with ``path`` only those that change it.

    With ``stat`` each entry carries what its commit changed (every file, not only ``path``).
    ``target`` is a command-line argument read as git reads ``git log X``: a path if it is
    tracked or in the working tree, else a revision (instead of ``rev``); UnknownRevisionOrPath
    if it is neither.
    """
    if target is not None:
        rev, path = _rev_or_path(repo, target, rev, path)
    if repo.history.head() is None and rev == "HEAD":
        return []
    rel = repo.relpath(path) if path else None
    out: list[LogEntry] = []
    for c in repo.history.walk([repo.history.resolve(rev)], max_count=None if rel else max_count):
        if rel:
            before = repo.history.commit_files(c.parents[0]).get(rel) if c.parents else None
            if repo.history.tree_files(c.tree).get(rel) == before:
                continue
        out.append(LogEntry(c, diff_commit(repo, c) if stat else []))
        if max_count is not None and len(out) >= max_count:
            break
    return out


def _rev_or_path(repo: Repository, arg: str, rev: str, path: str | None) -> tuple[str, str | None]:
    """(rev, path) once ``arg`` is read as a path or else as a revision."""
    try:
        rel = repo.relpath(arg)
    except LindivcError:  # outside the working tree, or a name lindivc cannot track
        rel = None
    if rel is not None and path is None and (rel in repo.tracked() or rel in repo.head_files()
                                             or os.path.lexists(repo.abspath(rel))):
        return rev, arg
    try:
        repo.history.resolve(arg)
    except UnknownRevision:
        raise UnknownRevisionOrPath(arg) from None
    if rev != "HEAD":
        raise LindivcError(f"two revisions given ({arg} and --rev {rev}); give one")
    return arg, path
