"""The local object store: immutable byte strings named by the SHA-1 hex of their bytes.

Layout (docs/format.md): ``.lindivc/objects/aa/bb/cc/<sha1>`` for loose objects and packs,
``.lindivc/idx/<packsha1>`` for pack indexes. Objects are written atomically (lindivc.atomic: temp
file in the same directory, fsync, rename, fsync of the directory), never modified, and verified against their name whenever read
in full.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from .atomic import AtomicFile, atomic_write
from .errors import ChecksumMismatch, ObjectMissing

SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
COPY_BLOCK = 1 << 20


def is_sha1(s: str) -> bool:
    """True if ``s`` is 40 lowercase hex digits."""
    return bool(SHA1_RE.match(s))


def sha1_bytes(data: bytes) -> str:
    """SHA-1 hex of ``data``."""
    return hashlib.sha1(data).hexdigest()


def fanout(sha1: str) -> str:
    """The relative key of an object: ``aa/bb/cc/<sha1>`` (same fan-out locally and in zones)."""
    return f"{sha1[0:2]}/{sha1[2:4]}/{sha1[4:6]}/{sha1}"


@dataclass(frozen=True)
class ByteRange:
    """``size`` bytes starting at ``offset`` (both inclusive start, exclusive end at offset+size)."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


class ObjectStore:
    """A directory of loose objects (and packs) named by SHA-1.

    ``root`` is the ``objects`` directory. Thread-safe for concurrent writers: writes go to
    unique temp files and are renamed into place; an existing object is never rewritten (its
    mtime is refreshed, so a running prune spares it).
    """

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        # the real path: a working file written through a symlinked path (/home/me -> /gpfs/...)
        # must name the same objects as one written through the real path
        self.root = os.path.realpath(root)
        self.fsync = fsync

    def path(self, sha1: str) -> str:
        """Absolute path where object ``sha1`` lives (whether or not it exists)."""
        return os.path.join(self.root, fanout(sha1))

    def __contains__(self, sha1: object) -> bool:
        return isinstance(sha1, str) and os.path.exists(self.path(sha1))

    def size(self, sha1: str) -> int:
        try:
            return os.path.getsize(self.path(sha1))
        except FileNotFoundError:
            raise ObjectMissing(sha1) from None

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha1. Idempotent."""
        sha = sha1_bytes(data)
        p = self.path(sha)
        if os.path.exists(p):
            _touch(p)
            return sha
        atomic_write(p, data, fsync=self.fsync)
        return sha

    def put_stream(self, stream: BinaryIO | Iterator[bytes], expected: str | None = None) -> tuple[str, int]:
        """Store bytes read from a file object or iterator of blocks; return (sha1, size).

        Memory stays bounded: the bytes go to a temp file while they are hashed. If ``expected``
        is given and the bytes hash otherwise, nothing is stored and ChecksumMismatch is raised.
        """
        if hasattr(stream, "read"):
            it: Iterator[bytes] = iter(lambda: stream.read(COPY_BLOCK), b"")  # type: ignore[union-attr]
        else:
            it = stream  # type: ignore[assignment]
        h = hashlib.sha1()
        n = 0
        with AtomicFile(self.root, fsync=self.fsync) as f:
            for c in it:
                h.update(c)
                n += len(c)
                f.write(c)
            sha = h.hexdigest()
            if expected is not None and sha != expected:
                raise ChecksumMismatch(expected, sha, "download")
            p = self.path(sha)
            if os.path.exists(p):
                _touch(p)  # the temp file is dropped on leaving the block
            else:
                f.commit(p)
        return sha, n

    def get(self, sha1: str) -> bytes:
        """The whole object, verified against its name."""
        try:
            with open(self.path(sha1), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ObjectMissing(sha1) from None
        got = sha1_bytes(data)
        if got != sha1:
            raise ChecksumMismatch(sha1, got, self.path(sha1))
        return data

    def get_range(self, sha1: str, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of the object (not verified: a range has no name)."""
        try:
            with open(self.path(sha1), "rb") as f:
                f.seek(offset)
                data = f.read(size)
        except FileNotFoundError:
            raise ObjectMissing(sha1) from None
        if len(data) != size:
            raise ChecksumMismatch(sha1, "truncated", self.path(sha1))
        return data

    def open(self, sha1: str) -> BinaryIO:
        """A binary file object for streaming reads of the object (unverified)."""
        try:
            return open(self.path(sha1), "rb")
        except FileNotFoundError:
            raise ObjectMissing(sha1) from None

    def verify(self, sha1: str) -> None:
        """Raise ChecksumMismatch/ObjectMissing unless the stored bytes hash to ``sha1``."""
        h = hashlib.sha1()
        with self.open(sha1) as f:
            for c in iter(lambda: f.read(COPY_BLOCK), b""):
                h.update(c)
        if h.hexdigest() != sha1:
            raise ChecksumMismatch(sha1, h.hexdigest(), self.path(sha1))

    def delete(self, sha1: str) -> None:
        try:
            os.unlink(self.path(sha1))
        except FileNotFoundError:
            pass

    def mtime(self, sha1: str) -> float:
        try:
            return os.path.getmtime(self.path(sha1))
        except FileNotFoundError:
            raise ObjectMissing(sha1) from None

    def __iter__(self) -> Iterator[str]:
        """Every object name in the store (loose objects and packs)."""
        if not os.path.isdir(self.root):
            return
        for a in sorted(os.listdir(self.root)):
            pa = os.path.join(self.root, a)
            if len(a) != 2 or not os.path.isdir(pa):
                continue
            for b in sorted(os.listdir(pa)):
                pb = os.path.join(pa, b)
                if not os.path.isdir(pb):
                    continue
                for c in sorted(os.listdir(pb)):
                    pc = os.path.join(pb, c)
                    if not os.path.isdir(pc):
                        continue
                    for name in sorted(os.listdir(pc)):
                        if is_sha1(name):
                            yield name

    def sha1_from_path(self, path: str) -> str | None:
        """If ``path`` is an object path of this store, its sha1; else None.

        Any path that resolves into the store counts (through symlinks, e.g. the repository
        reached through a symlinked home directory): a missed object path would be committed
        as a local path instead of a content ref, and gc would then delete its data.
        """
        ap = os.path.abspath(path)
        if not ap.startswith(self.root + os.sep):
            ap = os.path.realpath(ap)
            if not ap.startswith(self.root + os.sep):
                return None
        rel = ap[len(self.root) + 1:].split(os.sep)
        if len(rel) == 4 and is_sha1(rel[3]) and fanout(rel[3]) == "/".join(rel):
            return rel[3]
        return None


class ObjectWriter:
    """Stores objects as :meth:`ObjectStore.put_bytes` does, hashing and writing in background threads.

    :meth:`put_later` hands the bytes to a worker thread and returns at once a future of their
    sha1; the worker hashes them, then writes them to a temp file beside their final path, fsyncs
    it and renames it into place, so an object appears under its name only once its bytes are
    durable, as with ``ObjectStore.put_bytes``. Hashing (which releases the GIL) and the disk
    writes overlap the caller's work and each other. :meth:`put_bytes` is the same, returning
    once the sha1 is known. :meth:`wait` blocks until one object (or all) is in place and
    re-raises a worker's error; :meth:`close` waits for all. At most ``max_pending`` objects are
    in flight (held in memory) at once.
    """

    def __init__(self, store: ObjectStore, *, threads: int = 4, max_pending: int = 16) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.store = store
        # hashing has its own threads: it goes on while every writer waits for the disk (fsync)
        self._hashers = ThreadPoolExecutor(2, thread_name_prefix="lindivc-hash")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lindivc-fsync")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._pending: dict = {}  # sha1 -> Future (finished ones are dropped, failed ones kept)
        self._tasks: set = set()  # hashing runs not yet finished (each then has its write in _pending)
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """True while some object is not yet in place (or a write failed)."""
        return bool(self._pending) or bool(self._tasks)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its sha1. Idempotent. The object is in place after :meth:`wait`."""
        return self.put_later(data).result()

    def put_later(self, data: bytes):
        """Store ``data``; return a ``concurrent.futures.Future`` of its sha1, set once it is
        hashed (a failed hash sets its error). The object is in place after :meth:`wait`."""
        from concurrent.futures import Future

        if not isinstance(data, bytes):
            data = bytes(data)  # a worker reads it later: the caller may reuse a mutable buffer
        named: Future = Future()
        self._slots.acquire()
        try:
            task = self._hashers.submit(self._hash, data, named)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return named

    def _hash(self, data: bytes, named) -> None:
        from concurrent.futures import Future

        handed = False  # to a writer, which then frees the slot
        try:
            try:
                sha = sha1_bytes(data)
            except BaseException as e:
                named.set_exception(e)
                raise
            p = self.store.path(sha)
            written = None
            with self._lock:
                if sha not in self._pending:
                    if os.path.exists(p):
                        _touch(p)
                    else:
                        written = self._pending[sha] = Future()
            if written is not None:
                try:
                    self._pool.submit(self._write, data, p, sha, written)
                except BaseException as e:
                    written.set_exception(e)
                    raise
                handed = True
            named.set_result(sha)  # after its write (if any) is pending: wait(sha) finds it
        finally:
            if not handed:
                self._slots.release()

    def _write(self, data: bytes, p: str, sha: str, written) -> None:
        try:
            atomic_write(p, data, fsync=self.store.fsync)
        except BaseException as e:
            written.set_exception(e)
            return
        finally:
            self._slots.release()
        written.set_result(None)
        self._done(sha, written)

    def _task_done(self, task) -> None:
        with self._lock:
            self._tasks.discard(task)

    def _done(self, sha: str, fut) -> None:
        if fut.exception() is None:
            with self._lock:
                if self._pending.get(sha) is fut:
                    del self._pending[sha]

    def wait(self, sha1: str | None = None) -> None:
        """Block until object ``sha1`` (None: every object put so far) is in place.

        Raises the OSError of a failed write (again on every later call).
        """
        if sha1 is None:
            with self._lock:
                tasks = list(self._tasks)
            for task in tasks:
                if task.exception() is not None:  # a failed hash (a failed write is in _pending)
                    raise task.exception()
        with self._lock:
            futs = list(self._pending.items()) if sha1 is None else [(sha1, self._pending.get(sha1))]
        for sha, fut in futs:
            if fut is None:
                continue
            fut.result()
            self._done(sha, fut)

    def wait_path(self, path: str) -> None:
        """:meth:`wait` for the object at ``path``, if it is an object path of this store."""
        if self._pending:
            sha = self.store.sha1_from_path(path)
            if sha is not None:
                self.wait(sha)

    def close(self) -> None:
        """Wait for every object (raising a failed write's error), then stop the threads."""
        try:
            self.wait()
        finally:
            self._hashers.shutdown(wait=True)
            self._pool.shutdown(wait=True)


def _touch(p: str) -> None:
    try:
        os.utime(p, None)
    except OSError:
        pass
