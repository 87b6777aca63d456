"""The staging index: ``.lindivc/index.json`` (staged files and a stat cache), its lock, and the
status of a file between HEAD, the index and the working tree.

``index.json`` is ``{"version": 1, "entries": {path: {"blob", "stat", "work_blob"}}}``
(docs/format.md section 2). ``index.lock`` is held while a process reads, changes and writes back
the index or the refs, so two lindivc processes never interleave those.
"""
from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import orjson

from .atomic import atomic_write
from .errors import CorruptIndex


class Index:
    """Staged files (path -> canonical blob sha) with a stat cache of the working files."""

    def __init__(self, path: str, load: bool = True) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        if load and os.path.exists(path):
            with open(path, "rb") as f:
                raw = f.read()
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self._corrupt("not valid JSON")
            if not isinstance(data, dict) or not isinstance(data.get("entries", {}), dict):
                self._corrupt("not a JSON object with an 'entries' object")
            entries = data.get("entries", {})
            for p, e in entries.items():
                if not isinstance(e, dict) or not isinstance(e.get("blob"), str):
                    self._corrupt(f"entry {p!r} has no blob")
            self.entries = entries

    def _corrupt(self, why: str):
        raise CorruptIndex(self.path, why)

    def save(self) -> None:
        atomic_write(self.path, orjson.dumps({"version": 1, "entries": self.entries}, option=orjson.OPT_SORT_KEYS))

    def blobs(self) -> dict[str, str]:
        return {p: e["blob"] for p, e in self.entries.items()}


class IndexLock:
    """An exclusive ``flock`` on ``path`` (``.lindivc/index.lock``), re-entrant within this object.

    Another process waits for it; the kernel releases it when the holder exits or dies.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block (taken on the outermost entry, dropped on its exit)."""
        with self._lock:
            depth = self._depth
            self._depth += 1
        try:
            if depth == 0:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    os.close(self._fd)  # releases the flock
                    self._fd = None


@dataclass
class FileStatus:
    """The state of one path: in HEAD, staged in the index, and in the working tree."""

    path: str
    head: str | None  # blob sha in HEAD
    index: str | None  # blob sha staged
    work: str | None  # blob sha of the working file's canonical form (None: absent)
    error: str | None = None  # why the working file could not be read

    @property
    def staged(self) -> str | None:
        """'added' / 'modified' / 'deleted' between HEAD and the index, else None."""
        if self.head == self.index:
            return None
        if self.head is None:
            return "added"
        if self.index is None:
            return "deleted"
        return "modified"

    @property
    def unstaged(self) -> str | None:
        """'modified' / 'deleted' / 'invalid' between the index and the working file, else None."""
        if self.index is None:
            return None
        if self.error:
            return "invalid"
        if self.work is None:
            return "deleted"
        return "modified" if self.work != self.index else None


@dataclass
class Status:
    branch: str | None
    head: str | None
    files: list[FileStatus] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    untrackable: list[str] = field(default_factory=list)  # LINDI files whose names `add` refuses (repo.NAME_RULE)

    @property
    def clean(self) -> bool:
        return not any(f.staged or f.unstaged for f in self.files)
