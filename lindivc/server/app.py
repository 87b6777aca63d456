"""The zone gateway (`lindivc serve`): public reads, GitHub-token writes to ``zones/<login>/...``.

HTTP API (docs/gateway.md is the reference):

    GET  /api/now                              the store's clock: {"now": <epoch seconds>}
    GET  /api/whoami                           (auth) {"login": <github login>}
    GET  /zones/                               every zone: {"zones": [{"user", "zone"}, ...]}
    GET  /zones/<user>/<zone>/?list&prefix=P&after=K&limit=N
                                               {"objects": [{"key","size","mtime","etag"}], "truncated"}
    GET  /zones/<user>/<zone>/<key>            public read; one Range -> 206
    HEAD /zones/<user>/<zone>/<key>            public head
    PUT  /zones/<user>/<zone>/<key>            (auth, owner; pins/<id>: any user, create-only)
                                               If-None-Match: * / If-Match: <etag> -> 412 on conflict
    DELETE /zones/<user>/<zone>/<key>          (auth, owner)
"""
# --- CLI wiring (for cli.py; help texts proposed for click options) --------------------------
# @main.command()
# def serve(...):
#     """Run the zone gateway: public reads, GitHub-token writes to zones/<login>/ of BUCKET."""
#     --bucket TEXT          (required) "S3 bucket that holds the zones."
#     --endpoint-url TEXT    "S3 endpoint (MinIO, R2, moto...); default: AWS_ENDPOINT_URL or AWS."
#     --prefix TEXT          "Key prefix of the zones inside the bucket."  [default: zones]
#     --public-url TEXT      "Base URL where the bucket is publicly readable (CDN or bucket URL);
#                             reads are then redirected there instead of proxied."
#     --github-api-url TEXT  "GitHub API base URL that identifies tokens."  [default: https://api.github.com]
#     --host TEXT            "Interface to listen on."  [default: 127.0.0.1]
#     --port INTEGER         "Port to listen on."  [default: 8080]
#     --cache-ttl FLOAT      "Seconds a token's GitHub login is trusted before asking again."  [default: 300]
#   body: from lindivc.server.app import run_server; run_server(bucket, endpoint_url, prefix,
#         public_url, github_api_url, host, port, cache_ttl)
#
# @main.command()
# @click.option("--token", prompt=True, hide_input=True,
#               help="GitHub token (read from a prompt when not given; never echoed).")
# def login(token):
#     """Store a GitHub token for pushing through zone gateways (file mode 0600).
#
#     GITHUB_TOKEN, when set, takes precedence over the stored token."""
#   body: from lindivc.auth import login; path = login(token); click.echo(f"token stored in {path}")
# ---------------------------------------------------------------------------------------------
from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import InvalidKey
from ..layout import MAX_KEY, NAME_RE, sha1_from_object_key, validate_key
from .bucket import Bucket, BucketError, StoredObject
from .identity import GitHubIdentity, IdentityUnavailable, InvalidToken

log = logging.getLogger("lindivc.gateway")

DEFAULT_CACHE_TTL = 300.0
DEFAULT_NEGATIVE_TTL = 10.0
DEFAULT_MAX_UPLOAD = 64 << 30  # 64 GiB
SPOOL_IN_MEMORY = 8 << 20
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9._@+=,/-]*$")
AUTH_RE = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


@dataclass(frozen=True)
class GatewayConfig:
    prefix: str = "zones"
    public_url: str | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _object_headers(info: StoredObject) -> dict[str, str]:
    import email.utils

    h = {"Accept-Ranges": "bytes", "X-Lindivc-Mtime": repr(info.mtime),
         "Last-Modified": email.utils.formatdate(info.mtime, usegmt=True)}
    if info.etag:
        h["ETag"] = info.etag
    return h


def _content_type(key: str) -> str:
    return "application/json" if key.endswith(".json") else "application/octet-stream"


class Gateway:
    """The request handlers, bound to one bucket, one identity resolver, one config."""

    def __init__(self, bucket: Bucket, identity: GitHubIdentity, config: GatewayConfig) -> None:
        self.bucket = bucket
        self.identity = identity
        self.config = config
        p = config.prefix.strip("/")
        if p and any(not NAME_RE.match(s) for s in p.split("/")):
            raise InvalidKey(f"invalid bucket prefix {config.prefix!r}")
        self.root = p + "/" if p else ""

    # -- helpers -------------------------------------------------------------------------------
    def s3_key(self, user: str, zone: str, key: str = "") -> str:
        return f"{self.root}{user}/{zone}/{key}"

    @staticmethod
    def parse_path(rest: str) -> tuple[str, str, str]:
        """(user, zone, key) from the part of the path after /zones/; key "" for the zone itself."""
        parts = rest.split("/", 2)
        if len(parts) < 2:
            raise HTTPError(400, "expected /zones/<user>/<zone>/<key>")
        user, zone = parts[0], parts[1]
        if not NAME_RE.match(user) or not NAME_RE.match(zone):
            raise HTTPError(400, "invalid user or zone name (letters, digits, '.', '_', '-'; at most 100)")
        key = parts[2] if len(parts) == 3 else ""
        if key:
            if len(key) > MAX_KEY:
                raise HTTPError(400, f"key longer than {MAX_KEY} characters")
            try:
                validate_key(key)
            except InvalidKey as e:
                raise HTTPError(400, str(e)) from None
        return user, zone, key

    async def authenticate(self, request: Request) -> str:
        """The GitHub login of the request's token; HTTPError 401/503 otherwise."""
        h = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="lindivc"'}
        if not h:
            raise HTTPError(401, "authentication required: send 'Authorization: token <github token>'", challenge)
        m = AUTH_RE.match(h)
        if not m:
            raise HTTPError(401, "malformed Authorization header: use 'token <github token>' or 'Bearer <token>'",
                            challenge)
        token = m.group(1)
        try:
            login = self.identity.cached(token)
            if login is None:
                login = await run_in_threadpool(self.identity.login, token)
        except InvalidToken:
            raise HTTPError(401, "bad credentials: GitHub does not recognise this token", challenge) from None
        except IdentityUnavailable as e:
            raise HTTPError(503, f"cannot verify the token: {e}") from None
        return login

    # -- handlers ------------------------------------------------------------------------------
    async def now(self, request: Request) -> Response:
        t = await run_in_threadpool(self.bucket.now)
        return JSONResponse({"now": t})

    async def whoami(self, request: Request) -> Response:
        return JSONResponse({"login": await self.authenticate(request)})

    async def list_zones(self, request: Request) -> Response:
        def collect() -> list[dict[str, str]]:
            out = []
            for user in self.bucket.common_prefixes(self.root):
                if not NAME_RE.match(user):
                    continue
                for zone in self.bucket.common_prefixes(f"{self.root}{user}/"):
                    if NAME_RE.match(zone):
                        out.append({"user": user, "zone": zone})
            return out

        return JSONResponse({"zones": await run_in_threadpool(collect)})

    async def zone(self, request: Request) -> Response:
        user, zone, key = self.parse_path(request.path_params["rest"])
        m = request.method
        if not key:
            if m in ("GET", "HEAD"):
                return await self.list_keys(request, user, zone)
            raise HTTPError(405, f"{m} needs a key")
        if m in ("GET", "HEAD"):
            return await self.read(request, user, zone, key)
        if m == "PUT":
            return await self.write(request, user, zone, key)
        if m == "DELETE":
            return await self.delete(request, user, zone, key)
        raise HTTPError(405, f"method {m} not allowed")

    async def list_keys(self, request: Request, user: str, zone: str) -> Response:
        q = request.query_params
        prefix = q.get("prefix", "")
        after = q.get("after") or None
        try:
            limit = max(1, min(1000, int(q.get("limit", "1000"))))
        except ValueError:
            raise HTTPError(400, "limit must be an integer") from None
        for v in (prefix, after or ""):
            if len(v) > MAX_KEY or not PREFIX_RE.match(v) or ".." in v.split("/") or v.startswith("/"):
                raise HTTPError(400, "invalid prefix or after")
        base = self.s3_key(user, zone)
        objs, truncated = await run_in_threadpool(
            self.bucket.list, base + prefix, (base + after) if after else None, limit)
        return JSONResponse({
            "objects": [{"key": o.key[len(base):], "size": o.size, "mtime": o.mtime, "etag": o.etag} for o in objs],
            "truncated": truncated,
        })

    async def read(self, request: Request, user: str, zone: str, key: str) -> Response:
        s3key = self.s3_key(user, zone, key)
        if request.method == "HEAD":
            info = await run_in_threadpool(self.bucket.head, s3key)
            if info is None:
                raise HTTPError(404, f"{key} not found in zone {user}/{zone}")
            return Response(status_code=200, media_type=_content_type(key),
                            headers={**_object_headers(info), "Content-Length": str(info.size)})
        rng = request.headers.get("range")
        if rng is not None:
            rng = rng.strip()
            m = RANGE_RE.match(rng)
            if not m or (not m.group(1) and not m.group(2)):
                raise HTTPError(416, "only one byte range of the form bytes=a-b, bytes=a- or bytes=-n is served")
            if m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1)):
                raise HTTPError(416, "range end before its start")
        if self.config.public_url:
            return RedirectResponse(f"{self.config.public_url.rstrip('/')}/{s3key}", status_code=302)
        try:
            stream = await run_in_threadpool(self.bucket.open, s3key, rng)
        except BucketError as e:
            if e.status == 404:
                raise HTTPError(404, f"{key} not found in zone {user}/{zone}") from None
            raise
        headers = {**_object_headers(stream.info), "Content-Length": str(stream.length)}
        status = 200
        if stream.content_range:
            headers["Content-Range"] = stream.content_range
            status = 206
        return StreamingResponse(stream.body, status_code=status, headers=headers, media_type=_content_type(key))

    async def write(self, request: Request, user: str, zone: str, key: str) -> Response:
        login = await self.authenticate(request)
        owner = login.lower() == user.lower()
        is_pin = key.startswith("pins/")
        if not owner and not is_pin:
            raise HTTPError(403, f"{login} may not write under zones/{user}/ (only zones/{login}/..., and pins anywhere)")
        inm = request.headers.get("if-none-match")
        im = request.headers.get("if-match")
        if inm is not None and inm.strip() != "*":
            raise HTTPError(400, "If-None-Match must be '*'")
        if inm is not None and im is not None:
            raise HTTPError(400, "send at most one of If-None-Match and If-Match")
        if_none_match = inm is not None or (is_pin and not owner)  # others' pins: create-only
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPError(400, "invalid Content-Length")
            if int(declared) > self.config.max_upload:
                raise HTTPError(413, f"upload larger than {self.config.max_upload} bytes")
        want = sha1_from_object_key(key)
        h = hashlib.sha1() if want else None
        size = 0
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                size += len(chunk)
                if size > self.config.max_upload:
                    raise HTTPError(413, f"upload larger than {self.config.max_upload} bytes")
                if h is not None:
                    h.update(chunk)
                spool.write(chunk)
            if h is not None and h.hexdigest() != want:
                raise HTTPError(422, f"bytes hash to sha1 {h.hexdigest()}, not {want}: refused, nothing stored")
            spool.seek(0)
            etag = await run_in_threadpool(
                self.bucket.put, self.s3_key(user, zone, key), spool, size,
                if_none_match=if_none_match, if_match=im.strip() if im else None, content_type=_content_type(key))
        finally:
            spool.close()
        log.info("PUT %s/%s/%s by %s (%d bytes)", user, zone, key, login, size)
        return JSONResponse({"key": key, "size": size, "etag": etag}, headers={"ETag": etag})

    async def delete(self, request: Request, user: str, zone: str, key: str) -> Response:
        login = await self.authenticate(request)
        if login.lower() != user.lower():
            raise HTTPError(403, f"{login} may not delete under zones/{user}/")
        await run_in_threadpool(self.bucket.delete, self.s3_key(user, zone, key))
        log.info("DELETE %s/%s/%s by %s", user, zone, key, login)
        return Response(status_code=204)


def _wrap(fn: Callable) -> Callable:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except HTTPError as e:
            return _error(e.status, e.message, e.headers)
        except BucketError as e:
            if e.status >= 500:
                log.warning("bucket error: %s", e)
            return _error(e.status, str(e))

    return handler


def create_app(bucket: str | Bucket, endpoint_url: str | None = None, prefix: str = "zones",
               public_url: str | None = None, github_api_url: str = "https://api.github.com",
               cache_ttl: float = DEFAULT_CACHE_TTL, negative_ttl: float = DEFAULT_NEGATIVE_TTL,
               max_upload: int = DEFAULT_MAX_UPLOAD, identity: GitHubIdentity | None = None) -> Starlette:
    """The gateway as an ASGI app (run it with any ASGI server)."""
    b = bucket if isinstance(bucket, Bucket) else Bucket(bucket, endpoint_url)
    ident = identity or GitHubIdentity(github_api_url, ttl=cache_ttl, negative_ttl=negative_ttl)
    gw = Gateway(b, ident, GatewayConfig(prefix=prefix, public_url=public_url, max_upload=max_upload))
    routes = [
        Route("/api/now", _wrap(gw.now), methods=["GET"]),
        Route("/api/whoami", _wrap(gw.whoami), methods=["GET"]),
        Route("/zones", _wrap(gw.list_zones), methods=["GET"]),
        Route("/zones/", _wrap(gw.list_zones), methods=["GET"]),
        Route("/zones/{rest:path}", _wrap(gw.zone), methods=["GET", "HEAD", "PUT", "DELETE"]),
    ]
    middleware = [Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"],
                             allow_headers=["Range"],
                             expose_headers=["Content-Range", "Content-Length", "ETag", "Accept-Ranges"])]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.gateway = gw
    return app


def run_server(bucket: str, endpoint_url: str | None = None, prefix: str = "zones", public_url: str | None = None,
               github_api_url: str = "https://api.github.com", host: str = "127.0.0.1", port: int = 8080,
               cache_ttl: float = DEFAULT_CACHE_TTL) -> None:
    """Serve the gateway until interrupted (blocking). Credentials: the standard AWS chain."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(bucket, endpoint_url, prefix, public_url, github_api_url, cache_ttl=cache_ttl)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True, server_header=False)


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread (tests, benchmarks). ``url`` once started."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                     access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="lindivc-gateway")
        self.url = ""

    def start(self, timeout: float = 10.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
