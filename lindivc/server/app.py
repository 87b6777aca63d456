"""The zone gateway (`lindivc serve`): public reads, GitHub-token writes to ``zones/<login>/...``.

HTTP API (docs/gateway.md is the reference):

    GET  /api/now                              the store's clock: {"now": <epoch seconds>}
    GET  /api/whoami                           (auth) {"login": <github login>}
    GET  /zones/                               every zone: {"zones": [{"user", "zone"}, ...]}
    GET  /zones/<user>/<zone>/?list&prefix=P&after=K&limit=N
                                               {"objects": [{"key","size","mtime","etag"}], "truncated"}
    GET  /zones/<user>/<zone>/<key>            public read; one Range -> 206
    HEAD /zones/<user>/<zone>/<key>            public head
    PUT  /zones/<user>/<zone>/<key>            (auth, owner; pins/<login>.<name>: that login too)
                                               If-None-Match: * / If-Match: <etag> -> 412 on conflict
                                               sha1/ keys: the bytes hash to the name, or (header
                                               X-Lindivc-Manifest: N) the body is the pack's
                                               manifest (N bytes, hashing to the name) then the pack
    DELETE /zones/<user>/<zone>/<key>          (auth, owner; pins/<login>.<name>: that login too)

Documents (pins, journal entries, borrow records) are validated before they are stored
(policy.py); connection and request limits live in runner.py and guard.py. Every refusal is
logged with the login (never the token) and the client address.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
from dataclasses import dataclass, field
from typing import IO, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..documents import pin_writer
from ..errors import ChecksumMismatch, InvalidKey
from ..layout import MAX_KEY, NAME_RE, sha1_from_object_key, validate_key
from ..packs import ChunkChecker, parse_manifest
from .bucket import Bucket, BucketError, StoredObject
from .guard import BodyTimeout, Guard, HTTPError, RequestLimits, client_of
from .identity import GitHubIdentity, IdentityBusy, IdentityUnavailable, InvalidToken
from .policy import DocumentLimits, DocumentPolicy, Write
from .runner import BackgroundServer, ServerLimits, serve_forever

__all__ = ["BackgroundServer", "Gateway", "GatewayConfig", "create_app", "run_server"]

log = logging.getLogger("lindivc.gateway")

DEFAULT_CACHE_TTL = 300.0
DEFAULT_NEGATIVE_TTL = 10.0
DEFAULT_MAX_UPLOAD = 64 << 30  # 64 GiB
DEFAULT_UPLOAD_MEMORY = 64 << 20  # upload bodies held in memory at once, all requests together
SPOOL_IN_MEMORY = 8 << 20  # at most this much of one upload in memory, the rest on disk
MAX_RANGE_HEADER = 100
RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9._@+=,/-]*$")
AUTH_RE = re.compile(r"^(?:token|bearer)\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class GatewayConfig:
    prefix: str = "zones"
    public_url: str | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD
    upload_memory: int = DEFAULT_UPLOAD_MEMORY
    documents: DocumentLimits = field(default_factory=DocumentLimits)


class UploadMemory:
    """How many bytes of upload bodies may sit in memory at once, across all requests; an
    upload that finds no room spools to disk from its first byte. Event-loop only."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def spool(self, declared: int | None) -> tuple[IO[bytes], int]:
        """A spool file for one upload and the memory it holds (give it back with ``release``)."""
        want = min(SPOOL_IN_MEMORY, declared if declared is not None else SPOOL_IN_MEMORY)
        grant = max(0, min(want, self.total - self.used))
        self.used += grant
        if grant == 0:
            return tempfile.TemporaryFile(), 0
        return tempfile.SpooledTemporaryFile(max_size=grant), grant

    def release(self, grant: int) -> None:
        self.used -= grant


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
        self.uploads = UploadMemory(config.upload_memory)
        self.policy = DocumentPolicy(bucket, config.documents)
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
            login = await self.identity.verify(token)
        except InvalidToken:
            raise HTTPError(401, "bad credentials: GitHub does not recognise this token", challenge) from None
        except IdentityBusy as e:
            raise HTTPError(503, f"cannot verify the token now: {e}", {"Retry-After": "1"}) from None
        except IdentityUnavailable as e:
            raise HTTPError(503, f"cannot verify the token: {e}") from None
        request.state.login = login
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
            m = RANGE_RE.match(rng) if len(rng) <= MAX_RANGE_HEADER else None
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
        if_none_match = inm is not None
        declared = request.headers.get("content-length")
        doc_limit = self.policy.max_bytes(key)
        limit = self.config.max_upload if doc_limit is None else doc_limit
        if declared is not None:
            if not declared.isdigit() or len(declared) > 19:
                raise HTTPError(400, "invalid Content-Length")
            if int(declared) > limit:
                raise HTTPError(413, f"{key}: larger than the limit of {limit} bytes")
        want = sha1_from_object_key(key)
        m_len = _manifest_length(request, want, declared)  # a pack sent after its manifest
        h = hashlib.sha1() if want and m_len is None else None
        head, checker = bytearray(), None
        size = 0
        if doc_limit is not None:  # a small document, checked whole before it is stored
            spool, grant = io.BytesIO(), 0
        else:
            spool, grant = self.uploads.spool(int(declared) - (m_len or 0) if declared is not None else None)
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                if m_len is not None and checker is None:  # the manifest, held in memory
                    take = m_len - len(head)
                    head += chunk[:take]
                    chunk = chunk[take:]
                    if len(head) == m_len:
                        checker = _manifest_checker(bytes(head), want, key)
                    if not chunk:
                        continue
                size += len(chunk)
                if size > limit:
                    raise HTTPError(413, f"{key}: larger than the limit of {limit} bytes")
                if h is not None:
                    h.update(chunk)
                if checker is not None:
                    _check(key, checker.update, chunk)
                spool.write(chunk)
            if h is not None and h.hexdigest() != want:
                raise HTTPError(422, f"bytes hash to sha1 {h.hexdigest()}, not {want}: refused, nothing stored")
            if m_len is not None:
                if checker is None:
                    raise HTTPError(422, f"{key}: the body ended inside its manifest: refused, nothing stored")
                _check(key, checker.finish)
            if doc_limit is not None:
                w = Write(user, zone, self.s3_key(user, zone), key, login, owner)
                await run_in_threadpool(self.policy.admit, w, spool.getvalue())
            spool.seek(0)
            etag = await run_in_threadpool(
                self.bucket.put, self.s3_key(user, zone, key), spool, size,
                if_none_match=if_none_match, if_match=im.strip() if im else None, content_type=_content_type(key))
        finally:
            spool.close()
            self.uploads.release(grant)
        log.info("PUT %s/%s/%s by %s (%d bytes)", user, zone, key, login, size)
        return JSONResponse({"key": key, "size": size, "etag": etag}, headers={"ETag": etag})

    async def delete(self, request: Request, user: str, zone: str, key: str) -> Response:
        login = await self.authenticate(request)
        own_pin = key.startswith("pins/") and pin_writer(key[len("pins/"):]) == login
        if login.lower() != user.lower() and not own_pin:
            raise HTTPError(403, f"{login} may not delete under zones/{user}/ (only its own pins there)")
        await run_in_threadpool(self.bucket.delete, self.s3_key(user, zone, key))
        log.info("DELETE %s/%s/%s by %s", user, zone, key, login)
        return Response(status_code=204)


MAX_MANIFEST = 16 << 20  # bytes of a pack's manifest a gateway holds in memory (~270,000 chunks)


def _manifest_length(request: Request, want: str | None, declared: str | None) -> int | None:
    """The length of the manifest that starts the body (header ``X-Lindivc-Manifest``), or None
    when the body is the object alone; 400 when the header is malformed or misplaced."""
    raw = request.headers.get("x-lindivc-manifest")
    if raw is None:
        return None
    if not want:
        raise HTTPError(400, "X-Lindivc-Manifest is only for sha1/ keys")
    if not raw.isdigit() or len(raw) > 9 or int(raw) > MAX_MANIFEST:
        raise HTTPError(400, f"invalid X-Lindivc-Manifest (a length of at most {MAX_MANIFEST} bytes)")
    if declared is not None and int(declared) < int(raw):
        raise HTTPError(400, "X-Lindivc-Manifest is longer than the body")
    return int(raw)


def _manifest_checker(manifest: bytes, want: str, key: str) -> ChunkChecker:
    """A checker of the pack bytes that follow ``manifest``; 422 unless the manifest is well formed
    and its SHA-1 is the pack's name ``want`` (docs/format.md section 5)."""
    got = hashlib.sha1(manifest).hexdigest()
    if got != want:
        raise HTTPError(422, f"the manifest hashes to sha1 {got}, not {want}: refused, nothing stored")
    try:
        chunks = parse_manifest(manifest)
    except ValueError as e:
        raise HTTPError(422, f"{key}: {e}: refused, nothing stored") from None
    return ChunkChecker(chunks, key)


def _check(key: str, fn: Callable, *args: object) -> None:
    """Run a ChunkChecker step; bytes that do not match the manifest are 422."""
    try:
        fn(*args)
    except ChecksumMismatch as e:
        raise HTTPError(422, f"{key}: the pack does not match its manifest (chunk {e.expected}: {e.got}): "
                        "refused, nothing stored") from None


def _wrap(fn: Callable) -> Callable:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except HTTPError as e:
            status, message, headers = e.status, e.message, e.headers
        except BucketError as e:
            status, message, headers = e.status, str(e), {}
        except BodyTimeout as e:
            status, message, headers = 408, str(e), {"Connection": "close"}
        except ClientDisconnect:
            status, message, headers = 400, "the client went away mid-request", {"Connection": "close"}
        if not (request.method in ("GET", "HEAD") and status in (404, 416)):
            log.warning("refused %s %s from %s (login %s): %d %s", request.method, request.url.path,
                        client_of(request.scope), getattr(request.state, "login", None) or "-", status, message)
        return _error(status, message, headers)

    return handler


def create_app(bucket: str | Bucket, endpoint_url: str | None = None, prefix: str = "zones",
               public_url: str | None = None, github_api_url: str = "https://api.github.com",
               cache_ttl: float = DEFAULT_CACHE_TTL, negative_ttl: float = DEFAULT_NEGATIVE_TTL,
               max_upload: int = DEFAULT_MAX_UPLOAD, identity: GitHubIdentity | None = None, *,
               upload_memory: int = DEFAULT_UPLOAD_MEMORY, documents: DocumentLimits | None = None,
               requests: RequestLimits | None = None, identity_threads: int = 4) -> Starlette:
    """The gateway as an ASGI app (run it with any ASGI server; :func:`run_server` adds the
    connection limits of runner.py)."""
    b = bucket if isinstance(bucket, Bucket) else Bucket(bucket, endpoint_url)
    ident = identity or GitHubIdentity(github_api_url, ttl=cache_ttl, negative_ttl=negative_ttl,
                                       threads=identity_threads)
    gw = Gateway(b, ident, GatewayConfig(prefix=prefix, public_url=public_url, max_upload=max_upload,
                                         upload_memory=upload_memory, documents=documents or DocumentLimits()))
    routes = [
        Route("/api/now", _wrap(gw.now), methods=["GET"]),
        Route("/api/whoami", _wrap(gw.whoami), methods=["GET"]),
        Route("/zones", _wrap(gw.list_zones), methods=["GET"]),
        Route("/zones/", _wrap(gw.list_zones), methods=["GET"]),
        Route("/zones/{rest:path}", _wrap(gw.zone), methods=["GET", "HEAD", "PUT", "DELETE"]),
    ]
    middleware = [Middleware(Guard, limits=requests or RequestLimits()),
                  Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"],
                             allow_headers=["Range"],
                             expose_headers=["Content-Range", "Content-Length", "ETag", "Accept-Ranges"])]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.gateway = gw
    return app


def run_server(bucket: str, endpoint_url: str | None = None, prefix: str = "zones", public_url: str | None = None,
               github_api_url: str = "https://api.github.com", host: str = "127.0.0.1", port: int = 8080,
               cache_ttl: float = DEFAULT_CACHE_TTL, *, limits: ServerLimits | None = None,
               requests: RequestLimits | None = None, documents: DocumentLimits | None = None,
               upload_memory: int = DEFAULT_UPLOAD_MEMORY) -> None:
    """Serve the gateway until interrupted (blocking). Credentials: the standard AWS chain."""
    app = create_app(bucket, endpoint_url, prefix, public_url, github_api_url, cache_ttl=cache_ttl,
                     upload_memory=upload_memory, documents=documents, requests=requests)
    serve_forever(app, host, port, limits or ServerLimits())
