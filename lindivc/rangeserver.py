"""A small threaded HTTP server for a directory, with the Range support lindi needs.

``python -m http.server`` ignores ``Range`` and answers 200 with the whole file, which lindi
reads as the wrong bytes. This one answers a single ``bytes=`` range with ``206`` and
``Content-Range``, an unsatisfiable one with ``416``, supports HEAD, and refuses any path that
leaves the root (``..``, symlinks out). It serves local zones in tests and demos:

    with serve_directory("/data/zone") as srv:
        HttpZone(srv.url).get_range(key, 0, 100)
"""
from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
BLOCK = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    server_version = "lindivc-rangeserver"
    protocol_version = "HTTP/1.1"
    root: str  # set on a subclass per server

    def log_message(self, format, *args):  # quiet
        pass

    def _resolve(self) -> str | None:
        """The file for the request path, or None if it is missing or outside the root."""
        path = urllib.parse.urlsplit(self.path).path
        path = urllib.parse.unquote(path)
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
            return None
        full = os.path.realpath(os.path.join(self.root, *parts))
        if full != self.root and not full.startswith(self.root + os.sep):
            return None
        return full if os.path.isfile(full) else None

    def _send_error(self, status: HTTPStatus, headers: dict | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, with_body: bool) -> None:
        raw_path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if ".." in raw_path.split("/"):
            return self._send_error(HTTPStatus.FORBIDDEN)
        full = self._resolve()
        if full is None:
            return self._send_error(HTTPStatus.NOT_FOUND)
        try:
            f = open(full, "rb")
        except OSError:
            return self._send_error(HTTPStatus.NOT_FOUND)
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            start, end = 0, size - 1
            status = HTTPStatus.OK
            rng = self.headers.get("Range")
            if rng and "," not in rng:  # multiple ranges: RFC 9110 allows answering 200 with all
                m = RANGE_RE.match(rng.strip())
                if m and (m.group(1) or m.group(2)):
                    a, b = m.group(1), m.group(2)
                    if a:
                        start = int(a)
                        end = min(int(b), size - 1) if b else size - 1
                        bad = start >= size or (b and int(b) < start)
                    else:  # suffix: the last n bytes
                        n = int(b)
                        start, end = max(size - n, 0), size - 1
                        bad = n == 0 or size == 0
                    if bad:
                        return self._send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                                                {"Content-Range": f"bytes */{size}"})
                    status = HTTPStatus.PARTIAL_CONTENT
            length = max(end - start + 1, 0)
            self.send_response(status)
            ctype = mimetypes.guess_type(full)[0] or "application/octet-stream"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.send_header("ETag", f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"')
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges, ETag")
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not with_body or length == 0:
                return
            f.seek(start)
            remaining = length
            try:
                while remaining > 0:
                    block = f.read(min(BLOCK, remaining))
                    if not block:
                        break
                    self.wfile.write(block)
                    remaining -= len(block)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def do_GET(self) -> None:
        self._serve(True)

    def do_HEAD(self) -> None:
        self._serve(False)

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Range")
        self.send_header("Content-Length", "0")
        self.end_headers()


class RangeServer:
    """A running server; ``url`` is its base URL. Stop it with ``stop()`` or use it as a context manager."""

    def __init__(self, root: str, host: str = "127.0.0.1", port: int = 0) -> None:
        root = os.path.realpath(root)
        if not os.path.isdir(root):
            raise NotADirectoryError(root)
        self.root = root
        handler = type("Handler", (_Handler,), {"root": root})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        h, p = self.httpd.server_address[:2]
        self.url = f"http://{h}:{p}" if ":" not in h else f"http://[{h}]:{p}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="lindivc-rangeserver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def __enter__(self) -> "RangeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_directory(root: str, host: str = "127.0.0.1", port: int = 0) -> RangeServer:
    """Serve ``root`` over HTTP in a background thread; port 0 picks a free port."""
    return RangeServer(root, host, port)
