"""Atomic file writes: a reader sees the old file or the new one, never part of one.

Bytes go to a temp file in the destination's directory (so the rename stays on one file system),
which is fsynced, renamed over the destination, and the directory is fsynced: after a crash the
destination holds the old bytes or all the new ones (docs/format.md section 2). ``fsync=False``
skips both fsyncs, for scratch stores thrown away after use. Objects, pack indexes, working files,
``index.json``, ``config.json`` and remote catalogs are all written this way.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Iterable

TMP_PREFIX = ".lindivc-tmp-"


def fsync_dir(path: str) -> None:
    """Make the entries of directory ``path`` (a rename into it) durable; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A temp file in ``directory`` that :meth:`commit` renames to its destination.

    Use it when the destination is known only after writing (an object named by the hash of its
    bytes). Left without :meth:`commit` (``discard``, or an error in a ``with`` block), the temp
    file is removed.
    """

    def __init__(self, directory: str, *, fsync: bool = True, mode: int | None = None, prefix: str = TMP_PREFIX) -> None:
        os.makedirs(directory, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=directory, prefix=prefix)  # mode 0600 unless ``mode``
        if mode is not None:
            os.fchmod(fd, mode)
        self._f = os.fdopen(fd, "wb")
        self.fsync = fsync
        self.committed = False

    def write(self, data: bytes) -> int:
        return self._f.write(data)

    def commit(self, dest: str) -> None:
        """Make the written bytes the file ``dest`` (its directory is created if needed)."""
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())
        self._f.close()
        d = os.path.dirname(dest)
        if d:
            os.makedirs(d, exist_ok=True)
        os.replace(self.tmp, dest)
        self.committed = True
        if self.fsync:
            fsync_dir(d or ".")

    def discard(self) -> None:
        """Drop the temp file (nothing happens after :meth:`commit`)."""
        if self.committed:
            return
        self._f.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def atomic_write(path: str, data: bytes, *, fsync: bool = True, mode: int | None = None) -> None:
    """Replace the file ``path`` by ``data`` atomically (its directory is created if needed);
    the file gets ``mode`` if given, else 0600."""
    with AtomicFile(os.path.dirname(os.path.abspath(path)), fsync=fsync, mode=mode) as f:
        f.write(data)
        f.commit(path)


def atomic_write_stream(path: str, chunks: Iterable[bytes], *, fsync: bool = True) -> tuple[str, int]:
    """Replace the file ``path`` by the concatenation of ``chunks`` atomically, in bounded memory;
    return the (sha1 hex, size) of what was written."""
    h = hashlib.sha1()
    n = 0
    with AtomicFile(os.path.dirname(os.path.abspath(path)), fsync=fsync) as f:
        for c in chunks:
            h.update(c)
            n += len(c)
            f.write(c)
        f.commit(path)
    return h.hexdigest(), n
