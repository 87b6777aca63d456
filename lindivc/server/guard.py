"""ASGI middleware in front of the gateway and the zone-directory server: request-level limits.

- A cap on concurrent requests inside the app: past it, **503** with ``Retry-After`` at once
  (idle or half-open connections do not count; runner.py bounds those).
- Ambiguous framing refused: a request with both ``Content-Length`` and ``Transfer-Encoding``
  is answered **400** and its connection closed (request smuggling through a proxy that reads
  the other header).
- A ``Range`` header longer than ``max_range_header`` bytes is answered **416** (parsing it
  could cost more than the answer).
- A body read timeout: the app waits at most ``body_timeout`` seconds for each next piece of a
  request body; past it, reading raises :class:`BodyTimeout` (the gateway answers 408).
- gzip (Starlette's GZipMiddleware) for ``GET`` answers that are not ``application/octet-stream``
  (JSON: published files, listings) when the client accepts it and asked no ``Range``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("lindivc.gateway")


@dataclass(frozen=True)
class RequestLimits:
    """Request-level limits (counts, seconds, bytes)."""

    max_requests: int = 256
    body_timeout: float = 30.0
    retry_after: int = 1
    gzip: bool = True
    max_range_header: int = 200


class HTTPError(Exception):
    """A refusal the gateway answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


class BodyTimeout(Exception):
    """The client sent no part of its request body for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no request body received for {seconds:g} s")


def client_of(scope: Scope) -> str:
    """``host:port`` of the request's client (after trusted proxy headers), for logs."""
    c = scope.get("client")
    return f"{c[0]}:{c[1]}" if c else "?"


async def send_refusal(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A complete JSON error answer ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The middleware; ``active`` is the number of requests inside the app now."""

    def __init__(self, app: ASGIApp, limits: RequestLimits | None = None) -> None:
        self.app = app
        self.limits = limits or RequestLimits()
        self.active = 0
        excluded = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream")
        self._gzip = GZipMiddleware(app, minimum_size=500, compresslevel=6, exclude_content_types=excluded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {k for k, _ in scope["headers"]}
        where = f"{scope['method']} {scope['path']} from {client_of(scope)}"
        if b"content-length" in names and b"transfer-encoding" in names:
            log.warning("refused %s: 400 Content-Length with Transfer-Encoding", where)
            await send_refusal(send, 400, "a request may not carry both Content-Length and Transfer-Encoding",
                               {"Connection": "close"})
            return
        rng = next((v for k, v in scope["headers"] if k == b"range"), None)
        if rng is not None and len(rng) > self.limits.max_range_header:
            log.warning("refused %s: 416 Range header of %d bytes", where, len(rng))
            await send_refusal(send, 416, f"Range header longer than {self.limits.max_range_header} bytes")
            return
        if self.active >= self.limits.max_requests:
            log.warning("refused %s: 503 %d requests in progress", where, self.active)
            await send_refusal(send, 503, "the server is busy; try again", {"Retry-After": str(self.limits.retry_after)})
            return
        timeout = self.limits.body_timeout
        body_done = False

        async def timed_receive() -> Message:
            # only the body is timed: afterwards receive() waits for a disconnect, as long as
            # the response takes
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout(timeout) from None
            body_done = msg["type"] != "http.request" or not msg.get("more_body", False)
            return msg

        app = self.app
        if self.limits.gzip and scope["method"] == "GET" and b"range" not in names:
            app = self._gzip
        self.active += 1
        try:
            await app(scope, timed_receive, send)
        finally:
            self.active -= 1
