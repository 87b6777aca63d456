"""A zone in a local directory (``/path`` or ``file:///path``): the embedded default.

Each key is the file ``<root>/<key>``. Bookkeeping lives in ``<root>/.lindivc-zone/`` (``tmp/``
for writes in progress, ``lock``), which no key can name since every key starts with one of the
layout's top prefixes.

Guarantees: writes are atomic (temp file, fsync, rename) and durable; every change to a key
(put, put_file, delete) takes an exclusive ``flock`` on ``lock`` for its final step, so the
conditions of ``put`` are checked and applied atomically across threads and processes. The
etag is the MD5 hex of the content, like a single-part S3 ETag. Files and directories are
created with the process umask applied (0644 / 0755 under the usual 022), so a web server
running as another user can serve the directory.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import os
import time
import uuid
from typing import BinaryIO, Callable, Iterator

from ..errors import InvalidKey, PreconditionFailed, ZoneError, ZoneKeyMissing
from ..layout import NAME_RE, TOP_PREFIXES, ZoneURL, parse_zone_url
from ..atomic import fsync_dir
from .base import STREAM_BLOCK, ObjectInfo, Zone, ZoneReader, check_key, check_prefix, check_range

META_DIR = ".lindivc-zone"


class LocalZone(Zone):
    """A zone rooted at a local directory (created on the first write)."""

    def __init__(self, url: str | ZoneURL) -> None:
        self.location = url if isinstance(url, ZoneURL) else parse_zone_url(url)
        if self.location.scheme != "file":
            raise InvalidKey(f"not a local zone: {self.location.url}")
        self.root = self.location.url
        # (path, size, mtime_ns, ino) -> md5 hex, so repeated head() of one big file hashes once
        self._etag_cache: dict[tuple, str] = {}

    # paths and locking ---------------------------------------------------------------------
    def _path(self, key: str) -> str:
        check_key(key)
        return os.path.join(self.root, *key.split("/"))

    def _meta(self, *parts: str) -> str:
        return os.path.join(self.root, META_DIR, *parts)

    @contextlib.contextmanager
    def _locked(self):
        try:
            os.makedirs(self._meta("tmp"), exist_ok=True)
            fd = os.open(self._meta("lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ZoneError(f"{self.url}: cannot write the zone directory: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _temp(self) -> tuple[int, str]:
        """A new temp file, created with mode 0666 less the umask (mkstemp's 0600 would make
        every key unreadable to a web server serving the directory as another user)."""
        try:
            os.makedirs(self._meta("tmp"), exist_ok=True)
            for _ in range(100):
                path = os.path.join(self._meta("tmp"), f"put-{uuid.uuid4().hex}")
                try:
                    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
                except FileExistsError:
                    continue
            raise FileExistsError(errno.EEXIST, "no unused temp file name")
        except OSError as e:
            raise ZoneError(f"{self.url}: cannot write the zone directory: {e.strerror}") from e

    def _etag_of(self, path: str, st: os.stat_result) -> str:
        ck = (path, st.st_size, st.st_mtime_ns, st.st_ino)
        etag = self._etag_cache.get(ck)
        if etag is None:
            h = hashlib.md5()
            with open(path, "rb") as f:
                while block := f.read(STREAM_BLOCK):
                    h.update(block)
            etag = h.hexdigest()
            if len(self._etag_cache) > 4096:
                self._etag_cache.clear()
            self._etag_cache[ck] = etag
        return etag

    def _current_etag(self, path: str) -> str | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return self._etag_of(path, st)

    def _commit(self, key: str, tmp: str, etag: str, if_none_match: bool, if_match: str | None) -> None:
        """Under the lock: check the conditions, then rename ``tmp`` onto the key."""
        path = self._path(key)
        with self._locked():
            if if_none_match or if_match is not None:
                cur = self._current_etag(path)
                if (if_none_match and cur is not None) or (
                    if_match is not None and cur != if_match.strip('"')
                ):
                    raise PreconditionFailed(key)
            parent = os.path.dirname(path)
            os.makedirs(parent, exist_ok=True)
            os.replace(tmp, path)
            fsync_dir(parent)
            st = os.stat(path)
            self._etag_cache[(path, st.st_size, st.st_mtime_ns, st.st_ino)] = etag

    def _write_temp(self, chunks, progress=None) -> tuple[str, str]:
        """Write ``chunks`` to a fsynced temp file; return (temp path, md5 hex)."""
        fd, tmp = self._temp()
        h = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as f:
                for block in chunks:
                    f.write(block)
                    h.update(block)
                    if progress:
                        progress(len(block))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp, h.hexdigest()

    def _put_chunks(self, key, chunks, progress=None, if_none_match=False, if_match=None) -> str:
        check_key(key)
        tmp, etag = self._write_temp(chunks, progress)
        try:
            self._commit(key, tmp, etag, if_none_match, if_match)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return etag

    # Zone ----------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ZoneKeyMissing(key, self.url) from None

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        check_range(offset, size)
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ZoneKeyMissing(key, self.url) from None
        if len(data) != size:
            raise ZoneError(f"{self.url}: range {offset}+{size} is past the end of {key}")
        return data

    def open_read(self, key: str) -> BinaryIO:
        try:
            return ZoneReader(open(self._path(key), "rb"), self.url, key, (OSError,))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ZoneKeyMissing(key, self.url) from None

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        return self._put_chunks(key, [bytes(data)], None, if_none_match, if_match)

    def put_file(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        check_key(key)
        with open(path, "rb") as src:
            return self._put_chunks(key, iter(lambda: src.read(STREAM_BLOCK), b""), progress)

    def head(self, key: str) -> ObjectInfo | None:
        """Info about ``key`` with its etag (hashes the file the first time; use ``exists`` to test presence)."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(path):
            return None
        return ObjectInfo(key, st.st_size, st.st_mtime, self._etag_of(path, st))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every key under ``prefix``, sorted; etags are not computed (None)."""
        check_prefix(prefix)
        if "/" in prefix:
            start_rel = prefix.rsplit("/", 1)[0]
            starts = [start_rel]
        else:
            starts = [t for t in TOP_PREFIXES if t.startswith(prefix) or prefix.startswith(t)]
        found: list[ObjectInfo] = []
        for start in starts:
            base = os.path.join(self.root, *start.split("/"))
            for dirpath, dirnames, filenames in os.walk(base):
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                for name in filenames:
                    key = f"{rel_dir}/{name}"
                    if not key.startswith(prefix):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except FileNotFoundError:
                        continue
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime, None))
        found.sort(key=lambda i: i.key)
        return iter(found)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if not os.path.lexists(path):
            return
        with self._locked():
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            except IsADirectoryError:
                return
            # prune now-empty directories up to the top prefix (writers create them under the lock)
            parent = os.path.dirname(path)
            top = os.path.join(self.root, key.split("/", 1)[0])
            while len(parent) > len(top):
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = os.path.dirname(parent)

    def now(self) -> float:
        return time.time()

    def public_url(self, key: str) -> str:
        """The absolute filesystem path of ``key`` (lindi reads absolute paths, not file:// URLs)."""
        return self._path(key)

    def siblings(self) -> Iterator[Zone]:
        loc = self.location
        if not loc.in_cloud:
            return iter(())
        out = []
        for d in sorted(glob.glob(os.path.join(glob.escape(loc.cloud_root), "zones", "*", "*"))):
            user, name = d.split(os.sep)[-2:]
            if not (os.path.isdir(d) and NAME_RE.match(user) and NAME_RE.match(name)):
                continue
            if os.path.abspath(d) == os.path.abspath(self.root):
                continue
            out.append(LocalZone(d))
        return iter(out)
