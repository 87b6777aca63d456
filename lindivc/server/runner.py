"""Serving an ASGI app (the gateway, a zone directory) with uvicorn, hardened for the internet.

uvicorn's h11 protocol bounds the size of request headers but not the time a client takes to
send them, and its ``limit_concurrency`` counts idle connections, so a few hundred half-open
connections would lock honest clients out. :func:`guarded_protocol` adds:

- a header timeout: a connection must complete its request line and headers within
  ``header_timeout`` seconds of opening (or of the end of its previous response), however
  slowly it trickles bytes; otherwise it is closed;
- a connection cap: past ``max_connections``, the connection that has waited longest for its
  headers is closed to make room (a busy connection is never closed for a new one).

Request concurrency, body timeouts and upload memory are the app's business (``guard.py``).
X-Forwarded-For is honoured only from the proxies listed in ``forwarded_allow_ips``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("lindivc.gateway")


@dataclass(frozen=True)
class ServerLimits:
    """Connection-level limits (seconds, counts, bytes)."""

    header_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 1000
    max_header_bytes: int = 16 << 10
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-For is trusted


def guarded_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """An h11 protocol class with the header timeout and connection cap of ``limits``
    (state shared by the connections of one server)."""
    waiting: dict[H11Protocol, None] = {}  # connections waiting for request headers, oldest first

    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _cycle_seen: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()
            if len(self.connections) > limits.max_connections:
                oldest = next(iter(waiting), None)
                if oldest is not None:
                    oldest._drop("connection limit reached: closed the connection idle the longest")

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._check_new_request()

        def on_response_complete(self) -> None:
            self._await_headers()
            super().on_response_complete()  # may start a pipelined request
            self._check_new_request()

        # ---------------------------------------------------------------------------------
        def _await_headers(self) -> None:
            self._headers_done()
            self._cycle_seen = self.cycle
            waiting[self] = None
            self._header_timer = self.loop.call_later(limits.header_timeout, self._drop,
                                                      f"no complete request headers within {limits.header_timeout:g} s")

        def _check_new_request(self) -> None:
            if self in waiting and self.cycle is not self._cycle_seen:
                self._headers_done()

        def _headers_done(self) -> None:
            waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _drop(self, why: str) -> None:
            self._headers_done()
            if self.transport is not None and not self.transport.is_closing():
                client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
                log.info("closed connection from %s: %s", client, why)
                if self.conn.our_state is h11.IDLE and self.conn.trailing_data[0]:
                    # headers partly sent: say why, as nginx does (408)
                    self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                                         b"content-length: 0\r\n\r\n")
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_config(app, host: str, port: int, limits: ServerLimits, *, log_level: str = "info",
                   access_log: bool = True) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` with ``limits`` applied."""
    trusted = list(limits.forwarded_allow_ips)
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, lifespan="off",
        http=guarded_protocol(limits), timeout_keep_alive=max(1, int(limits.keep_alive)),
        h11_max_incomplete_event_size=limits.max_header_bytes, server_header=False,
        proxy_headers=bool(trusted), forwarded_allow_ips=trusted or [],
    )


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread (tests, benchmarks). ``url`` once started;
    use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None) -> None:
        self._server = uvicorn.Server(uvicorn_config(app, host, port, limits or ServerLimits(),
                                                     log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="lindivc-http")
        self.url = ""

    def start(self, timeout: float = 10.0) -> "BackgroundServer":
        """Start serving (once; starting a started server does nothing) and set ``url``."""
        if self.url:
            return self
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("HTTP server did not start")
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(app, host: str, port: int, limits: ServerLimits) -> None:
    """Serve ``app`` in the foreground until interrupted, logging to stderr."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.Server(uvicorn_config(app, host, port, limits)).run()
