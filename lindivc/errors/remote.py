"""Errors of zones and of reading URLs: unreachable, access denied, missing keys, invalid
documents others wrote."""
from __future__ import annotations


from .base import LindivcError


class ZoneError(LindivcError):
    """A zone cannot be reached, refused an operation, or holds inconsistent data."""


class ZoneUnreachable(ZoneError):
    """The zone's endpoint did not answer."""


class RedirectUnreachable(ZoneUnreachable):
    """The zone's server answered with a redirect (a gateway with ``--public-url``), and the URL
    it redirected to could not be read."""

    def __init__(self, zone_url: str, url: str, cause: str, server: str = "server") -> None:
        self.zone_url = zone_url
        self.url = url
        self.cause = cause
        super().__init__(f"cannot read {url}: {cause} (the {server} of {zone_url} redirected there)")


class AccessDenied(ZoneError):
    """The zone (or gateway) refused the credentials for this operation."""


class NonFastForward(LindivcError):
    """A push or pull whose histories diverged."""


class ZoneKeyMissing(ZoneError):
    """A key that is not in the zone."""

    def __init__(self, key: str, zone: str = "") -> None:
        self.key = key
        self.zone = zone
        super().__init__(f"{key} not found in zone {zone}".rstrip())


class PreconditionFailed(ZoneError):
    """A conditional write (if-none-match / if-match) found another value."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"conditional write of {key} failed: it changed concurrently")


class InvalidKey(ZoneError):
    """A zone key or zone URL outside the layout of docs/format.md."""


class InvalidDocument(LindivcError):
    """A document another user wrote (pin, borrow record, journal entry, published LINDI file)
    that is not valid: not JSON, the wrong shape, or over its size limit. ``key`` names the
    document (zone key or URL), ``reason`` says what is wrong in one line."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key or 'document'}: {reason}")


class HttpError(LindivcError):
    """An http(s) URL could not be read; ``cause`` says why, in words."""

    def __init__(self, url: str, cause: str, message: str | None = None) -> None:
        self.url = url
        self.cause = cause
        super().__init__(message or f"cannot read {url}: {cause}")


class HostUnresolvable(HttpError):
    """The host name of a URL does not resolve (no such host, or no network)."""

    def __init__(self, url: str, host: str) -> None:
        self.host = host
        super().__init__(url, f"cannot resolve host {host}")


class ConnectionRefused(HttpError):
    """Nothing listens at the URL's host and port."""

    def __init__(self, url: str, address: str) -> None:
        self.address = address
        super().__init__(url, f"connection refused by {address}")


class HttpTimeout(HttpError):
    """The server did not accept the connection, or did not answer, in time."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(url, cause, cause if cause.startswith("timed out reading") else None)


class HttpStatusError(HttpError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(url, f"HTTP {status}", f"HTTP {status} for {url}")


class RangeNotHonoured(HttpError):
    """A ranged GET answered with other bytes than those asked for."""

    def __init__(self, url: str, offset: int, size: int, answer: str) -> None:
        self.offset = offset
        self.size = size
        super().__init__(url, f"the server does not honour Range for bytes {offset}+{size}: {answer}")


class ResponseTooLarge(HttpError):
    """A body longer than the reader's bound."""

    def __init__(self, url: str, limit: int) -> None:
        self.limit = limit
        super().__init__(url, f"more than {limit} bytes")


class IngestFailed(LindivcError):
    """The bytes a ref points at could not be copied into the object store."""

    def __init__(self, key: str, url: str, reason: str) -> None:
        self.key = key
        self.url = url
        self.reason = reason
        super().__init__(f"cannot ingest ref {key!r}: {reason}")


class MalformedRef(ZoneError):
    """A ref file in a zone that does not hold a commit sha1."""

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value
        super().__init__(f"{key}: not a commit sha1: {value[:60]!r}")
