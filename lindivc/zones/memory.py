"""An in-process zone for tests: a dict per name, shared by every MemoryZone opened with that name.

``memory://<name>`` — names may follow the cloud pattern (``memory://c/zones/<user>/<zone>``), and
then ``siblings()`` finds the other memory zones of that cloud. The clock is settable
(``zone.clock = 1e9`` or ``zone.clock = lambda: ...``) and shared like the data, so GC tests can
move time forward.
"""
from __future__ import annotations

import hashlib
import io
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from ..errors import InvalidKey, PreconditionFailed, ZoneError, ZoneKeyMissing
from ..layout import NAME_RE, ZoneURL
from .base import STREAM_BLOCK, ObjectInfo, Zone, check_key, check_prefix, check_range

SCHEME = "memory://"


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    items: dict[str, tuple[bytes, float, str]] = field(default_factory=dict)  # key -> (data, mtime, etag)
    clock: float | Callable[[], float] | None = None


_registry: dict[str, _Store] = {}
_registry_lock = threading.Lock()


def parse_memory_url(url: str) -> ZoneURL:
    """Parse ``memory://<name>``; InvalidKey if malformed."""
    if not isinstance(url, str) or not url.startswith(SCHEME):
        raise InvalidKey(f"not a memory zone URL: {url!r}")
    name = url[len(SCHEME):].rstrip("/")
    parts = name.split("/")
    if not name or any(not NAME_RE.match(p) for p in parts):
        raise InvalidKey(f"invalid memory zone URL {url!r}")
    u = SCHEME + name
    if len(parts) >= 4 and parts[-3] == "zones":
        return ZoneURL(u, "memory", SCHEME + "/".join(parts[:-3]), parts[-2], parts[-1])
    return ZoneURL(u, "memory", u, None, None)


class MemoryZone(Zone):
    """A dict-backed zone. Conditional writes are atomic (one lock per name)."""

    def __init__(self, url: str) -> None:
        if not url.startswith(SCHEME):
            url = SCHEME + url
        self.location = parse_memory_url(url)
        self._name = self.location.url[len(SCHEME):]
        with _registry_lock:
            self._store = _registry.setdefault(self._name, _Store())

    @classmethod
    def reset_all(cls) -> None:
        """Forget every memory zone of this process."""
        with _registry_lock:
            _registry.clear()

    # clock ---------------------------------------------------------------------------------
    @property
    def clock(self) -> float | Callable[[], float] | None:
        """None for the real clock, a number for a frozen clock, or a callable returning seconds."""
        return self._store.clock

    @clock.setter
    def clock(self, value: float | Callable[[], float] | None) -> None:
        self._store.clock = value

    def now(self) -> float:
        c = self._store.clock
        if c is None:
            return time.time()
        return float(c()) if callable(c) else float(c)

    # reads ---------------------------------------------------------------------------------
    def _item(self, key: str) -> tuple[bytes, float, str]:
        check_key(key)
        with self._store.lock:
            item = self._store.items.get(key)
        if item is None:
            raise ZoneKeyMissing(key, self.url)
        return item

    def get(self, key: str) -> bytes:
        return self._item(key)[0]

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        check_range(offset, size)
        data = self._item(key)[0]
        if offset + size > len(data):
            raise ZoneError(f"{self.url}: range {offset}+{size} is past the end of {key} ({len(data)} bytes)")
        return data[offset:offset + size]

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self._item(key)[0])

    def head(self, key: str) -> ObjectInfo | None:
        try:
            data, mtime, etag = self._item(key)
        except ZoneKeyMissing:
            return None
        return ObjectInfo(key, len(data), mtime, etag)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        with self._store.lock:
            snapshot = sorted((k, v) for k, v in self._store.items.items() if k.startswith(prefix))
        for k, (data, mtime, etag) in snapshot:
            yield ObjectInfo(k, len(data), mtime, etag)

    # writes --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        check_key(key)
        data = bytes(data)
        etag = hashlib.md5(data).hexdigest()
        with self._store.lock:
            cur = self._store.items.get(key)
            if if_none_match and cur is not None:
                raise PreconditionFailed(key)
            if if_match is not None and (cur is None or cur[2] != if_match.strip('"')):
                raise PreconditionFailed(key)
            self._store.items[key] = (data, self.now(), etag)
        return etag

    def put_file(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        check_key(key)
        buf = bytearray()
        with open(path, "rb") as f:
            while block := f.read(STREAM_BLOCK):
                buf += block
                if progress:
                    progress(len(block))
        return self.put(key, bytes(buf))

    def delete(self, key: str) -> None:
        check_key(key)
        with self._store.lock:
            self._store.items.pop(key, None)

    def public_url(self, key: str) -> str:
        check_key(key)
        return f"{self.url}/{key}"

    def siblings(self) -> Iterator[Zone]:
        loc = self.location
        if not loc.in_cloud:
            return iter(())
        root = loc.cloud_root[len(SCHEME):]
        with _registry_lock:
            names = sorted(_registry)
        out = []
        for name in names:
            if name == self._name:
                continue
            parts = name.split("/")
            if len(parts) >= 4 and "/".join(parts[:-3]) == root and parts[-3] == "zones":
                out.append(MemoryZone(SCHEME + name))
        return iter(out)
