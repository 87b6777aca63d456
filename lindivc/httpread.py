"""The one HTTP reader: GETs of http(s) URLs, whole, as byte ranges, or streamed with a size bound.

One ``requests`` Session per process, with urllib3 retries for these idempotent GETs (connection
failures, 429 and 5xx answers). A ranged read insists on ``206 Partial Content`` with the
``Content-Range`` asked for: a server that ignores ``Range`` would otherwise hand back the wrong
bytes. Every failure is an :class:`~lindivc.errors.HttpError` whose message says the cause in
words (``cannot resolve host X``, ``connection refused by X``, ``timed out reading URL``,
``HTTP 404 for URL``).
"""
from __future__ import annotations

import errno
import re
import threading
import urllib.parse
from contextlib import contextmanager
from typing import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from .errors import (
    ConnectionRefused,
    HostUnresolvable,
    HttpError,
    HttpStatusError,
    HttpTimeout,
    RangeNotHonoured,
    ResponseTooLarge,
)

TIMEOUT = (5, 60)  # seconds to connect, seconds between bytes
BLOCK = 1 << 20
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

_session: requests.Session | None = None
_session_lock = threading.Lock()


def make_session(pool_maxsize: int = 32) -> requests.Session:
    """A requests Session with a few quick retries (urllib3's) for GET and HEAD."""
    s = requests.Session()
    retry = Retry(total=3, connect=2, read=2, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=pool_maxsize)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def session() -> requests.Session:
    """The Session this process reads URLs with (made on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = make_session()
        return _session


def get(url: str, *, max_bytes: int | None = None, timeout=TIMEOUT) -> bytes:
    """The whole body of ``url``; ResponseTooLarge if it is longer than ``max_bytes``."""
    return b"".join(iter_body(url, max_bytes=max_bytes, timeout=timeout))


def get_prefix(url: str, size: int, *, timeout=TIMEOUT) -> bytes:
    """The first ``size`` bytes of ``url`` (fewer if the body is shorter), read with a ranged GET;
    a server that ignores ``Range`` is cut off after ``size`` bytes."""
    headers = {"Range": f"bytes=0-{size - 1}"}
    with _request(url, timeout, headers=headers, ok=(200, 206, 416)) as resp:
        if resp.status_code == 416:  # an empty body
            return b""
        out = b""
        for block in _blocks(resp, url):
            out += block
            if len(out) >= size:
                break
        return out[:size]


def iter_body(url: str, *, max_bytes: int | None = None, timeout=TIMEOUT) -> Iterator[bytes]:
    """The body of ``url`` in blocks, never more than ``max_bytes`` in all (ResponseTooLarge)."""
    with _request(url, timeout) as resp:
        declared = resp.headers.get("Content-Length", "")
        if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(url, max_bytes)
        n = 0
        for block in _blocks(resp, url):
            n += len(block)
            if max_bytes is not None and n > max_bytes:
                raise ResponseTooLarge(url, max_bytes)
            yield block


def get_range(url: str, offset: int, size: int, *, timeout=TIMEOUT) -> bytes:
    """``size`` bytes at ``offset`` of ``url`` (see :func:`iter_range`)."""
    return b"".join(iter_range(url, offset, size, timeout=timeout))


def iter_range(url: str, offset: int, size: int, *, timeout=TIMEOUT) -> Iterator[bytes]:
    """``size`` bytes at ``offset`` of ``url``, in blocks.

    The answer must be ``206`` with exactly that ``Content-Range``, or a ``200`` whose whole body
    is the range (``offset`` 0 and ``Content-Length`` ``size``); else RangeNotHonoured. A body of
    another length is an HttpError.
    """
    if size <= 0:
        return
    last = offset + size - 1
    with _request(url, timeout, headers={"Range": f"bytes={offset}-{last}"}) as resp:
        if resp.status_code == 206:
            got = resp.headers.get("Content-Range", "").strip()
            m = CONTENT_RANGE_RE.match(got)
            if not m or int(m.group(1)) != offset or int(m.group(2)) != last:
                raise RangeNotHonoured(url, offset, size, f"it answered Content-Range {got!r}")
        elif not (offset == 0 and resp.headers.get("Content-Length") == str(size)):
            raise RangeNotHonoured(url, offset, size, f"it answered HTTP {resp.status_code} without a range")
        n = 0
        for block in _blocks(resp, url):
            n += len(block)
            if n > size:
                raise HttpError(url, f"range {offset}+{size} returned more than {size} bytes")
            yield block
        if n != size:
            raise HttpError(url, f"range {offset}+{size} returned {n} bytes")


@contextmanager
def _request(url: str, timeout, headers: dict | None = None, ok: tuple[int, ...] | None = None) -> Iterator[requests.Response]:
    """A streamed GET of ``url``, closed after the block; HttpStatusError unless the status is in
    ``ok`` (default: any 2xx)."""
    try:
        resp = session().get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as e:
        raise describe(e, url) from None
    try:
        if not (resp.status_code in ok if ok else 200 <= resp.status_code < 300):
            raise HttpStatusError(url, resp.status_code, resp.reason or "")
        yield resp
    finally:
        resp.close()


def _blocks(resp: requests.Response, url: str) -> Iterator[bytes]:
    try:
        yield from resp.iter_content(BLOCK)
    except requests.RequestException as e:
        raise describe(e, url) from None


def describe(e: BaseException, url: str) -> HttpError:
    """The HttpError saying in words why reading ``url`` failed with the requests/urllib3 error ``e``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = f"{host}:{port}"
    chain = _causes(e)
    if any(isinstance(c, NameResolutionError) for c in chain):
        return HostUnresolvable(url, host)
    if any(isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None) == errno.ECONNREFUSED for c in chain):
        return ConnectionRefused(url, address)
    if isinstance(e, requests.ConnectTimeout):
        return HttpTimeout(url, f"timed out connecting to {address}")
    if isinstance(e, requests.Timeout) or any(isinstance(c, ReadTimeoutError) for c in chain):
        return HttpTimeout(url, f"timed out reading {url}")
    if isinstance(e, requests.exceptions.SSLError):
        return HttpError(url, f"TLS error with {host}")
    if isinstance(e, requests.exceptions.TooManyRedirects):
        return HttpError(url, "too many redirects")
    if isinstance(e, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return HttpError(url, "not a valid http(s) URL")
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return HttpError(url, f"{host} closed the connection before the whole body arrived")
    if any(isinstance(c, NewConnectionError) for c in chain):
        return HttpError(url, f"cannot connect to {address}")
    if isinstance(e, requests.ConnectionError):
        return HttpError(url, f"the connection to {address} failed")
    return HttpError(url, type(e).__name__)


def _causes(e: BaseException) -> list[BaseException]:
    """``e`` and what it wraps (args, ``reason``, ``__cause__``, ``__context__``), without repeats."""
    out: list[BaseException] = []
    todo = [e]
    while todo:
        x = todo.pop()
        if x is None or any(x is y for y in out):
            continue
        out.append(x)
        todo.extend(a for a in getattr(x, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            v = getattr(x, attr, None)
            if isinstance(v, BaseException):
                todo.append(v)
    return out
