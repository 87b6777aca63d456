"""A read-only zone over plain HTTP(S): whole and ranged GETs, HEAD (requests, one Session).

This is how anyone reads a published zone (a gateway's public side, a bucket's website endpoint,
``lindivc.rangeserver``). Ranged reads insist on ``206 Partial Content`` with the matching
``Content-Range``: a server that ignores ``Range`` (``python -m http.server``) would otherwise hand
back the wrong bytes silently. There is no listing and no writing.
"""
from __future__ import annotations

import email.utils
import time
import urllib.parse
from typing import BinaryIO, Callable, Iterator

from ..errors import AccessDenied, InvalidKey, RedirectUnreachable, ZoneError, ZoneKeyMissing, ZoneUnreachable
from ..httpread import CONTENT_RANGE_RE, describe, make_session
from ..layout import ZoneURL, parse_zone_url
from .base import ObjectInfo, Zone, ZoneReader, check_key, check_prefix, check_range

TIMEOUT = (5, 60)  # connect, read


def ranged_body(resp, zone_url: str, key: str, offset: int, size: int) -> bytes:
    """The body of a ranged GET of ``size`` bytes at ``offset``; ZoneError unless the server
    answered 206 with exactly that range (lindi itself does not check, and reads wrong bytes)."""
    last = offset + size - 1
    if resp.status_code == 416:
        raise ZoneError(f"{zone_url}: byte range {offset}+{size} is outside {key}")
    if resp.status_code != 206:
        resp.close()
        raise ZoneError(f"{zone_url}: server ignores Range requests (answered {resp.status_code} to a ranged GET)")
    m = CONTENT_RANGE_RE.match(resp.headers.get("Content-Range", "").strip())
    if not m or int(m.group(1)) != offset or int(m.group(2)) != last:
        raise ZoneError(f"{zone_url}: server answered a ranged GET of {key} with Content-Range "
                        f"{resp.headers.get('Content-Range')!r}, expected bytes {offset}-{last}")
    data = resp.content
    if len(data) != size:
        raise ZoneError(f"{zone_url}: range {offset}+{size} of {key} returned {len(data)} bytes")
    return data


def unreachable(zone_url: str, url: str, e: Exception, server: str = "server") -> ZoneUnreachable:
    """The error for a request to ``url`` that failed to connect (``e``, from requests): when the
    server answered with a redirect and its target failed, one that names that target and why."""
    failed = getattr(getattr(e, "request", None), "url", None) or url
    cause = describe(e, failed).cause
    if urllib.parse.urlsplit(failed)[:3] != urllib.parse.urlsplit(url)[:3]:  # not just a query added
        return RedirectUnreachable(zone_url, failed, cause, server)
    return ZoneUnreachable(f"{zone_url}: cannot reach {server} {urllib.parse.urlparse(url).netloc} ({cause})")


def object_info(key: str, resp) -> ObjectInfo:
    """What the headers of a HEAD answer say of ``key``: size, mtime (the gateway's exact
    X-Lindivc-Mtime, else Last-Modified), etag."""
    h = resp.headers
    mtime = 0.0
    try:
        if h.get("X-Lindivc-Mtime"):
            mtime = float(h["X-Lindivc-Mtime"])
        elif h.get("Last-Modified"):
            mtime = email.utils.parsedate_to_datetime(h["Last-Modified"]).timestamp()
    except (TypeError, ValueError):
        pass
    etag = h.get("ETag")
    if etag:
        etag = etag.removeprefix("W/").strip('"')
    return ObjectInfo(key, int(h.get("Content-Length", "-1")), mtime, etag or None)


class HttpReads:
    """Reads over HTTP GET/HEAD with Range, for zones whose ``_request(method, key, url, **kw)``
    returns a requests response (HttpZone, GatewayZone). ``RANGE_KW`` adds request options to
    ranged GETs."""

    RANGE_KW: dict = {}

    def get(self, key: str) -> bytes:
        return self._request("GET", key, self._url(key)).content

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        check_range(offset, size)
        if size == 0:
            return self._empty_range(key)
        resp = self._request("GET", key, self._url(key), headers={"Range": f"bytes={offset}-{offset + size - 1}"},
                             **self.RANGE_KW)
        return ranged_body(resp, self.url, key, offset, size)

    def open_read(self, key: str) -> BinaryIO:
        from urllib3.exceptions import HTTPError

        resp = self._request("GET", key, self._url(key), stream=True)
        resp.raw.decode_content = True
        return ZoneReader(resp.raw, self.url, key, (HTTPError, OSError))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._request("HEAD", key, self._url(key), allow_redirects=True)
        except ZoneKeyMissing:
            return None
        return object_info(key, resp)


class HttpZone(HttpReads, Zone):
    """A read-only zone at an http(s) base URL."""

    def __init__(self, url: str | ZoneURL, *, session=None) -> None:
        self.location = url if isinstance(url, ZoneURL) else parse_zone_url(url)
        if self.location.scheme not in ("http", "https"):
            raise InvalidKey(f"not an http(s) zone: {self.location.url}")
        self.base = self.location.url.rstrip("/")
        self._owns_session = session is None
        self.session = session if session is not None else make_session()
        self._clock_offset: float | None = None

    @property
    def supports_writes(self) -> bool:
        return False

    @property
    def supports_deletes(self) -> bool:
        return False

    @property
    def supports_listing(self) -> bool:
        return False

    # helpers -------------------------------------------------------------------------------
    def _url(self, key: str) -> str:
        check_key(key)
        return self.base + "/" + urllib.parse.quote(key, safe="/")

    def _request(self, method: str, key: str | None, url: str, **kw):
        import requests

        try:
            resp = self.session.request(method, url, timeout=TIMEOUT, **kw)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise unreachable(self.url, url, e) from None
        except requests.RequestException as e:
            raise ZoneError(f"{self.url}: {e}") from None
        self._note_date(resp)
        if resp.status_code in (404, 410):
            resp.close()
            raise ZoneKeyMissing(key or url, self.url)
        if resp.status_code in (401, 403):
            resp.close()
            raise AccessDenied(f"{self.url}: access denied ({resp.status_code}) for {key or url}")
        if resp.status_code == 416:
            resp.close()
            raise ZoneError(f"{self.url}: byte range outside {key}")
        if resp.status_code >= 400:
            resp.close()
            raise ZoneError(f"{self.url}: HTTP {resp.status_code} for {key or url}")
        return resp

    def _note_date(self, resp) -> None:
        date = resp.headers.get("Date")
        if date:
            try:
                self._clock_offset = email.utils.parsedate_to_datetime(date).timestamp() + 0.5 - time.time()
            except (TypeError, ValueError):
                pass

    # reads ---------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        raise ZoneError(f"{self.url}: an http(s) zone cannot be listed")

    # writes --------------------------------------------------------------------------------
    def _read_only(self, key: str):
        check_key(key)
        return ZoneError(f"{self.url}: zone is read-only (plain http(s); push through a gateway with a token, or to s3://)")

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        raise self._read_only(key)

    def put_file(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        raise self._read_only(key)

    def delete(self, key: str) -> None:
        raise self._read_only(key)

    # clock, urls -----------------------------------------------------------------------------
    def now(self) -> float:
        """The server's clock from the ``Date`` of its answers (local clock if it sends none)."""
        if self._clock_offset is None:
            import requests

            try:
                resp = self.session.head(self.base + "/", timeout=TIMEOUT)
            except requests.RequestException:
                pass
            else:
                resp.close()
                self._note_date(resp)
        if self._clock_offset is None:
            return time.time()
        return time.time() + self._clock_offset

    def public_url(self, key: str) -> str:
        return self._url(key)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
