"""A zone behind a lindivc gateway (`lindivc serve`): ``http(s)://host/zones/<user>/<zone>``.

Reads are public range GETs to the gateway (which proxies or redirects to the bucket); writes,
deletes and listings go to the gateway too, writes and deletes with the user's GitHub token
(``Authorization: token ...``). The gateway's HTTP API is in docs/gateway.md.

Errors: 401/403 -> AccessDenied, 404 -> ZoneKeyMissing, 412 -> PreconditionFailed, connection
failures -> ZoneUnreachable (RedirectUnreachable, naming the URL, when the gateway answered with a
redirect to its ``--public-url`` and that failed), others -> ZoneError. Messages are one line and
never hold the token.
"""
from __future__ import annotations

import os
import urllib.parse
from typing import BinaryIO, Callable, Iterator

from ..errors import AccessDenied, InvalidKey, PreconditionFailed, ZoneError, ZoneKeyMissing
from ..layout import MAX_KEY, ZoneURL, parse_zone_url, validate_key
from .base import ObjectInfo, Zone
from ..httpread import make_session
from .http import HttpReads, unreachable

TIMEOUT = (10, 120)  # connect, read
UPLOAD_BLOCK = 1 << 20
SAFE = "/@+=,"


class _ProgressReader:
    """A file wrapper that reports bytes read (requests streams it with a Content-Length), after
    ``prefix`` (sent first, not reported)."""

    def __init__(self, f: BinaryIO, size: int, progress: Callable[[int], None] | None, prefix: bytes = b"") -> None:
        self._f = f
        self._size = size
        self._progress = progress
        self._prefix = prefix

    def __len__(self) -> int:
        return len(self._prefix) + self._size

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            b, self._prefix = self._prefix, b""
            return b
        b = self._f.read(UPLOAD_BLOCK if n is None or n < 0 else max(n, 1 << 16))
        if b and self._progress:
            self._progress(len(b))
        return b


class GatewayZone(HttpReads, Zone):
    """A zone ``<root>/zones/<user>/<zone>`` served by a lindivc gateway at ``<root>``.

    ``token``: the GitHub token for writes; None means lindivc.auth.load_token() (GITHUB_TOKEN,
    else the token stored by `lindivc login`). Reads need no token.
    """

    RANGE_KW = {"expect": (200, 206, 416)}  # ranged_body turns 200/416 into clear errors

    def __init__(self, url: str | ZoneURL, token: str | None = None, *, session=None) -> None:
        self.location = url if isinstance(url, ZoneURL) else parse_zone_url(url)
        if self.location.scheme not in ("http", "https") or not self.location.in_cloud:
            raise InvalidKey(f"not a gateway zone URL (expected http(s)://host/zones/<user>/<zone>): {self.location.url}")
        self.base = self.location.url.rstrip("/")
        self.root = self.location.cloud_root.rstrip("/")
        self.user = self.location.user
        self.name = self.location.name
        self._token = token
        self._owns_session = session is None
        self.session = session if session is not None else make_session(16)

    # helpers -------------------------------------------------------------------------------
    def _url(self, key: str) -> str:
        try:
            validate_key(key)
        except InvalidKey as e:
            raise InvalidKey(f"{self.url}: {e}") from None
        return self.base + "/" + urllib.parse.quote(key, safe=SAFE)

    def _auth(self) -> dict[str, str]:
        token = self._token
        if token is None:
            from ..auth import load_token

            token = load_token()
        if not token:
            raise AccessDenied(f"{self.url}: no GitHub token (run `lindivc login` or set GITHUB_TOKEN)")
        return {"Authorization": f"token {token}"}

    def _clean(self, text: str) -> str:
        """One line, at most 300 characters, with the token (if any) removed."""
        from ..auth import load_token, redact

        text = " ".join(str(text).split())[:300]
        for t in {self._token, load_token() if self._token is None else None}:
            text = redact(text, t)
        return text

    @staticmethod
    def _server_message(resp) -> str:
        try:
            return str(resp.json().get("error", "")) or resp.reason or ""
        except ValueError:
            return resp.reason or ""

    def _request(self, method: str, key: str | None, url: str, *, expect=(200,), auth: bool = False, **kw):
        import requests

        headers = kw.pop("headers", {}) or {}
        if auth:
            headers.update(self._auth())
        try:
            resp = self.session.request(method, url, headers=headers, timeout=TIMEOUT, **kw)
        except (requests.ConnectionError, requests.Timeout) as e:
            if auth and method in ("PUT", "DELETE"):
                self._diagnose_refusal(method, key)
            raise unreachable(self.url, url, e, "gateway") from None
        except requests.RequestException as e:
            raise ZoneError(self._clean(f"{self.url}: {type(e).__name__}")) from None
        if resp.status_code in expect:
            return resp
        what = key or url
        # an answer of the URL the gateway redirected to (its --public-url) names that URL
        via = f" at {resp.url} (the gateway redirected there)" if resp.history else ""
        msg = self._clean(self._server_message(resp)) if method != "HEAD" else ""
        resp.close()
        s = resp.status_code
        if s == 404:
            raise ZoneKeyMissing(what, self.url)
        if s == 412:
            raise PreconditionFailed(what)
        if s in (401, 403):
            raise AccessDenied(self._clean(f"{self.url}: {method} {what}{via} refused ({s}): {msg}".rstrip(": ")))
        raise ZoneError(self._clean(f"{self.url}: {method} {what}{via} failed (HTTP {s}): {msg}".rstrip(": ")))

    def _diagnose_refusal(self, method: str, key: str | None) -> None:
        """After a write whose connection broke (a gateway refusing a large body answers before
        reading it), raise AccessDenied if the token is the reason; else return."""
        import requests

        try:
            r = self.session.get(self.root + "/api/whoami", headers=self._auth(), timeout=TIMEOUT)
        except requests.RequestException:
            return
        if r.status_code == 401:
            raise AccessDenied(f"{self.url}: {method} {key} refused (401): bad credentials")
        if r.status_code == 200:
            login = str(r.json().get("login", ""))
            if login.lower() != (self.user or "").lower() and not (method == "PUT" and (key or "").startswith("pins/")):
                raise AccessDenied(f"{self.url}: {method} {key} refused (403): {login} may not write here")

    @staticmethod
    def _etag(resp) -> str | None:
        e = resp.headers.get("ETag")
        return e.removeprefix("W/").strip('"') if e else None

    # reads ---------------------------------------------------------------------------------
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not isinstance(prefix, str) or prefix.startswith("/") or len(prefix) > MAX_KEY or \
                any(p in (".", "..") for p in prefix.split("/")):
            raise InvalidKey(f"invalid prefix: {prefix!r}")
        after = None
        while True:
            params = {"list": "", "prefix": prefix}
            if after:
                params["after"] = after
            resp = self._request("GET", None, self.base + "/", params=params)
            body = resp.json()
            objs = body.get("objects", [])
            for o in objs:
                yield ObjectInfo(o["key"], int(o["size"]), float(o["mtime"]),
                                 (o.get("etag") or "").strip('"') or None)
            if not body.get("truncated") or not objs:
                return
            after = objs[-1]["key"]

    # writes --------------------------------------------------------------------------------
    @staticmethod
    def _conditions(if_none_match: bool, if_match: str | None) -> dict[str, str]:
        h = {"Content-Type": "application/octet-stream"}
        if if_none_match:
            h["If-None-Match"] = "*"
        if if_match is not None:
            h["If-Match"] = '"' + if_match.strip('"') + '"'
        return h

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        resp = self._request("PUT", key, self._url(key), auth=True, data=bytes(data),
                             headers=self._conditions(if_none_match, if_match))
        return self._etag(resp) or ""

    def put_file(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        url = self._url(key)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            resp = self._request("PUT", key, url, auth=True, data=_ProgressReader(f, size, progress),
                                 headers={**self._conditions(False, None), "Content-Length": str(size)})
        return self._etag(resp) or ""

    def put_pack(self, key: str, path: str, manifest: bytes, *,
                 progress: "Callable[[int], None] | None" = None) -> str:
        """Store the pack file at ``path``, sent after its manifest so that the gateway checks it
        (header ``X-Lindivc-Manifest``, docs/gateway.md)."""
        url = self._url(key)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            resp = self._request("PUT", key, url, auth=True, data=_ProgressReader(f, size, progress, manifest),
                                 headers={**self._conditions(False, None), "Content-Length": str(len(manifest) + size),
                                          "X-Lindivc-Manifest": str(len(manifest))})
        return self._etag(resp) or ""

    def delete(self, key: str) -> None:
        self._request("DELETE", key, self._url(key), auth=True, expect=(200, 204, 404))

    # clock, urls, cloud ----------------------------------------------------------------------
    def now(self) -> float:
        """The bucket's clock, as the gateway reads it."""
        return float(self._request("GET", None, self.root + "/api/now").json()["now"])

    def public_url(self, key: str) -> str:
        return self._url(key)

    def whoami(self) -> str:
        """The GitHub login the gateway sees for this zone's token."""
        return str(self._request("GET", None, self.root + "/api/whoami", auth=True).json()["login"])

    def login(self) -> str | None:
        return self.whoami()

    def siblings(self) -> Iterator[Zone]:
        resp = self._request("GET", None, self.root + "/zones/")
        for z in resp.json().get("zones", []):
            if (z["user"], z["zone"]) == (self.user, self.name):
                continue
            yield GatewayZone(f"{self.root}/zones/{z['user']}/{z['zone']}", self._token, session=self.session)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()
