"""The history of a branch, or of one file, newest first, with what each commit changed."""
from __future__ import annotations

from dataclasses import dataclass

from .diff import FileDiff, diff_commit
from .history import CommitInfo
from .repo import Repository


@dataclass
class LogEntry:
    """One commit of a log, with what it changed when that was asked (``stat``)."""

    commit: CommitInfo
    files: list[FileDiff]  # against the first parent when stat was asked, else []


def log(repo: Repository, rev: str = "HEAD", max_count: int | None = None, path: str | None = None,
        stat: bool = False) -> list[LogEntry]:
    """Commits reachable from ``rev``, newest first; with ``path`` only those that change it.

    With ``stat`` each entry carries what its commit changed (every file, not only ``path``).
    """
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
