"""Serve a local zone directory read-only over HTTP, as lindi, fsspec and browsers read it.

``python -m http.server`` ignores ``Range`` and answers 200 with the whole file, which lindi
reads as the wrong bytes. This server (Starlette's StaticFiles on uvicorn, behind the same
limits as the gateway) answers ``Range`` with ``206`` (``If-Range`` too), an unsatisfiable range
with ``416``, ``HEAD``, CORS for any origin (``Range`` allowed, ``Content-Range`` exposed), gzip
for JSON when no range is asked; it refuses any path that leaves the directory (``..``,
symlinks out) and hides dot-directories (a local zone's ``.lindivc-zone/`` bookkeeping).

    lindivc serve --dir ZONE_DIR --port 8000            (the command)
    with serve_directory("/data/zone") as srv:          (tests, demos)
        HttpZone(srv.url).get_range(key, 0, 100)
"""
from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .server.guard import Guard, RequestLimits
from .server.runner import BackgroundServer, ServerLimits, serve_forever


class _ZoneFiles(StaticFiles):
    """StaticFiles that never serves a dot-file or a dot-directory."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if any(part.startswith(".") for part in scope["path"].split("/") if part):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def directory_app(root: str, requests: RequestLimits | None = None) -> Starlette:
    """The read-only ASGI app for directory ``root``."""
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(root)
    middleware = [Middleware(Guard, limits=requests or RequestLimits()),
                  Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "HEAD"],
                             allow_headers=["Range"],
                             expose_headers=["Content-Range", "Content-Length", "Accept-Ranges", "ETag"])]
    return Starlette(routes=[Mount("/", _ZoneFiles(directory=root, follow_symlink=False))], middleware=middleware)


def serve_directory(root: str, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Serve ``root`` in a background thread (port 0 picks a free port); returns the started
    server (``url``, ``stop()``, a context manager)."""
    return BackgroundServer(directory_app(root), host, port).start()


def run_directory_server(root: str, host: str = "127.0.0.1", port: int = 8000, *,
                         limits: ServerLimits | None = None, requests: RequestLimits | None = None) -> None:
    """Serve ``root`` in the foreground until interrupted (``lindivc serve --dir``)."""
    serve_forever(directory_app(root, requests), host, port, limits or ServerLimits())
