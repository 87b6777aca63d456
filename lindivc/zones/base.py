"""One interface for every zone backend (docs/format.md section 6.2, storage operations).

A zone is a prefix in an object store. Keys passed to a Zone are relative to that prefix and
follow lindivc.layout. Every backend offers: get, ranged get, streaming get, put (bytes or a
file, with optional conditions), head, list, delete, and the store's own clock.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from ..errors import InvalidKey, ZoneError, ZoneUnreachable
from ..layout import ZoneURL, validate_key

#: bytes per read when streaming (copies, uploads, downloads)
STREAM_BLOCK = 1 << 20


def check_key(key: str) -> str:
    """``key`` if it follows lindivc.layout, else InvalidKey. Every backend checks keys first, so
    no backend ever sees ``..``, empty parts or a key outside the layout."""
    return validate_key(key)


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' or the start of a key (no leading '/', no '.'/'..' parts); InvalidKey."""
    if not isinstance(prefix, str) or prefix.startswith("/") or len(prefix) > 1024:
        raise InvalidKey(f"invalid prefix: {prefix!r}")
    parts = prefix.split("/")
    if any(p in (".", "..") for p in parts) or any(p == "" for p in parts[:-1]):
        raise InvalidKey(f"invalid prefix: {prefix!r}")
    return prefix


def check_range(offset: int, size: int) -> None:
    if offset < 0 or size < 0:
        raise ZoneError(f"invalid byte range: offset {offset}, size {size}")


class ZoneReader:
    """The stream ``open_read`` returns: read, close, a context manager. A failure while reading
    (a reset connection, a timeout, a truncated body) raises ZoneUnreachable naming the zone and
    the key, so that a caller handles one error class for a store that fails, whoever wrote the
    value; ``errors`` are the exception classes the backend's stream raises."""

    def __init__(self, raw: BinaryIO, url: str, key: str, errors: tuple[type[BaseException], ...]) -> None:
        self._raw, self._url, self._key, self._errors = raw, url, key, errors

    def read(self, n: int | None = -1) -> bytes:
        try:
            return self._raw.read() if n is None or n < 0 else self._raw.read(n)
        except self._errors as e:
            raise ZoneUnreachable(f"{self._url}: reading {self._key} failed: {e}") from None

    def close(self) -> None:
        try:
            self._raw.close()
        except self._errors:
            pass

    def __enter__(self) -> "ZoneReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ObjectInfo:
    """What a zone knows about one key. ``mtime`` is seconds since the epoch, by the store's clock."""

    key: str
    size: int
    mtime: float
    etag: str | None = None


class Zone(abc.ABC):
    """A zone: a key/value object store under one prefix.

    Errors: ZoneKeyMissing for an absent key, PreconditionFailed for a failed condition,
    AccessDenied for refused credentials, ZoneUnreachable when the endpoint does not answer,
    ZoneError for the rest. Never a backend's own exception type.
    """

    #: the parsed URL this zone was opened with
    location: ZoneURL

    @property
    def url(self) -> str:
        return self.location.url

    # capabilities (like zarr's Store)
    @property
    def supports_writes(self) -> bool:
        return True

    @property
    def supports_deletes(self) -> bool:
        return True

    @property
    def supports_listing(self) -> bool:
        return True

    #: True if :meth:`get_if_changed` reads value and etag in one request, so the etag is
    #: exactly the value's (a compare-and-swap may rely on it)
    atomic_get_etag = False

    @property
    def supports_put_stream(self) -> bool:
        """True if :meth:`put_stream` stores a seekable stream of known size in one request. Push
        then sends a pack straight from its chunk files; without it, push writes the pack to a
        temp file first and sends that with :meth:`put_file` (docs/format.md 6.4, step 5)."""
        return False

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole value at ``key``."""

    def get_if_changed(self, key: str, etag: str | None = None) -> tuple[bytes | None, str | None]:
        """The value at ``key`` and its etag, or ``(None, etag)`` when its etag still equals
        ``etag`` (the caller's copy is current). ZoneKeyMissing if absent. The etag returned
        never belongs to a newer value than the bytes returned (backends that cannot answer in
        one request read the etag first)."""
        info = self.head(key)
        if info is None:
            from ..errors import ZoneKeyMissing

            raise ZoneKeyMissing(key, self.url)
        if etag is not None and info.etag == etag:
            return None, etag
        return self.get(key), info.etag

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset``; exactly ``size`` bytes or ZoneError (a range past the end
        of the value is an error, not a short read)."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A streaming reader of the value at ``key`` (close it when done); a read that fails
        raises ZoneError (:class:`ZoneReader`)."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Store ``data`` at ``key``; return the new etag.

        ``if_none_match``: fail with PreconditionFailed if the key exists.
        ``if_match``: fail with PreconditionFailed unless the current etag equals it.
        """

    @abc.abstractmethod
    def put_file(self, key: str, path: str, *, progress: "callable | None" = None) -> str:
        """Store the file at ``path`` (streamed; multipart where the backend needs it); return etag.

        ``progress(nbytes)`` is called as bytes are sent.
        """

    def put_pack(self, key: str, path: str, manifest: bytes, *, progress: "callable | None" = None) -> str:
        """Store the pack file at ``path`` named by ``manifest`` (docs/format.md section 5) as
        :meth:`put_file` does; a backend that checks what it stores under ``sha1/`` (the gateway)
        sends the manifest along. Return the etag."""
        return self.put_file(key, path, progress=progress)

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> str:
        """Store ``size`` bytes read from the seekable ``stream`` (from its start; read again from
        the start on a retry); return the etag. Only where :attr:`supports_put_stream`."""
        raise NotImplementedError(f"{type(self).__name__} does not store streams (supports_put_stream is False)")

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Info about ``key``, or None if absent."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every key under ``prefix`` (relative keys), in lexicographic order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    @abc.abstractmethod
    def now(self) -> float:
        """The store's clock (seconds since the epoch), the one GC compares mtimes against."""

    @abc.abstractmethod
    def public_url(self, key: str) -> str:
        """What a rendered LINDI file uses to name ``key``: an absolute path for a local zone, an
        http(s) URL otherwise. Plain lindi must be able to read it (given access)."""

    def login(self) -> str | None:
        """The user name this zone's credentials write as, where the store has users (a gateway:
        the GitHub login of the token); None where it has none (a directory, S3)."""
        return None

    def siblings(self) -> Iterator["Zone"]:
        """Every other zone of the same cloud (docs/format.md section 1); empty if not in a cloud."""
        return iter(())

    def _empty_range(self, key: str) -> bytes:
        """A zero-length range: b"" if ``key`` exists (no ranged request can ask for 0 bytes)."""
        if self.head(key) is None:
            from ..errors import ZoneKeyMissing

            raise ZoneKeyMissing(key, self.url)
        return b""

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Zone":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
