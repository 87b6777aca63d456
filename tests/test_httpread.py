"""The one HTTP reader: whole, ranged and bounded reads against a real server on loopback, and
one-line errors that say the cause in words (through `lindivc import` too)."""
from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from lindivc import httpread
from lindivc.cli import cli
from lindivc.errors import (
    ConnectionRefused,
    HostUnresolvable,
    HttpError,
    HttpStatusError,
    HttpTimeout,
    IngestFailed,
    RangeNotHonoured,
    ResponseTooLarge,
)

BODY = bytes(range(256)) * 40  # 10240 bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: dict = {}

    def log_message(self, *a):  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path
        _Handler.hits[path] = _Handler.hits.get(path, 0) + 1
        rng = self.headers.get("Range")
        if path == "/file":  # honours Range
            if rng:
                a, b = (int(x) for x in rng.removeprefix("bytes=").split("-"))
                b = min(b, len(BODY) - 1)
                return self._send(206, BODY[a:b + 1], {"Content-Range": f"bytes {a}-{b}/{len(BODY)}"})
            return self._send(200, BODY)
        if path == "/ignores-range":
            return self._send(200, BODY)
        if path == "/wrong-range":
            return self._send(206, BODY[:10], {"Content-Range": f"bytes 0-9/{len(BODY)}"})
        if path == "/flaky":  # fails once, then answers: the retry hides it
            if _Handler.hits[path] == 1:
                return self._send(503, b"busy")
            return self._send(200, b"ok")
        if path == "/slow":
            time.sleep(3)
            return self._send(200, b"late")
        if path == "/chunked":  # no Content-Length: the bound is checked while reading
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(8):
                block = b"x" * 4096
                self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        return self._send(404, b"not found")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up on /slow: not news
        pass


@pytest.fixture
def server():
    _Handler.hits = {}
    srv = _QuietServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_whole_ranged_and_prefix_reads(server):
    assert httpread.get(f"{server}/file") == BODY
    assert httpread.get_range(f"{server}/file", 300, 1000) == BODY[300:1300]
    assert b"".join(httpread.iter_range(f"{server}/file", 5, 7)) == BODY[5:12]
    assert httpread.get_prefix(f"{server}/file", 8) == BODY[:8]
    assert httpread.get_prefix(f"{server}/ignores-range", 8) == BODY[:8]  # cut off after 8 bytes


def test_a_ranged_read_refuses_a_server_that_ignores_range(server):
    with pytest.raises(RangeNotHonoured, match="HTTP 200") as e:
        httpread.get_range(f"{server}/ignores-range", 100, 10)
    assert (e.value.offset, e.value.size) == (100, 10)
    # the whole body is the range asked for: nothing was ignored
    assert httpread.get_range(f"{server}/ignores-range", 0, len(BODY)) == BODY
    with pytest.raises(RangeNotHonoured, match="Content-Range 'bytes 0-9/10240'"):
        httpread.get_range(f"{server}/wrong-range", 20, 10)


def test_a_transient_5xx_is_retried(server):
    assert httpread.get(f"{server}/flaky") == b"ok"
    assert _Handler.hits["/flaky"] == 2


def test_the_size_bound_holds_with_and_without_content_length(server):
    assert len(httpread.get(f"{server}/file", max_bytes=len(BODY))) == len(BODY)
    with pytest.raises(ResponseTooLarge) as e:
        httpread.get(f"{server}/file", max_bytes=100)
    assert e.value.limit == 100 and "more than 100 bytes" in str(e.value)
    with pytest.raises(ResponseTooLarge):
        httpread.get(f"{server}/chunked", max_bytes=10_000)
    assert len(httpread.get(f"{server}/chunked")) == 8 * 4096


def test_errors_say_the_cause_in_one_line(server):
    with pytest.raises(HttpStatusError) as e:
        httpread.get(f"{server}/missing")
    assert e.value.status == 404 and str(e.value) == f"HTTP 404 for {server}/missing"

    with pytest.raises(HostUnresolvable) as e:
        httpread.get("http://nonexistent.invalid/f.lindi.json")
    assert e.value.host == "nonexistent.invalid"
    assert str(e.value) == "cannot read http://nonexistent.invalid/f.lindi.json: cannot resolve host nonexistent.invalid"

    port = _closed_port()
    with pytest.raises(ConnectionRefused) as e:
        httpread.get(f"http://127.0.0.1:{port}/x")
    assert e.value.address == f"127.0.0.1:{port}"
    assert str(e.value).endswith(f"connection refused by 127.0.0.1:{port}")

    t0 = time.monotonic()
    with pytest.raises(HttpTimeout) as e:
        httpread.get(f"{server}/slow", timeout=(2, 0.3))
    assert str(e.value) == f"timed out reading {server}/slow"
    assert time.monotonic() - t0 < 2.5  # three tries of 0.3 s, not the server's 3 s

    for err in (HostUnresolvable, ConnectionRefused, HttpTimeout, HttpStatusError):
        assert issubclass(err, HttpError)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


def _one_line_error(res, text):
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [f"Error: {text}"], res.output


def test_import_over_an_unreachable_network_names_the_cause(run, server, tmp_path):
    before = sorted(os.listdir(tmp_path))
    _one_line_error(run("import", "https://nonexistent.invalid/s.nwb.lindi.json"),
                    "cannot read https://nonexistent.invalid/s.nwb.lindi.json: cannot resolve host nonexistent.invalid")
    port = _closed_port()
    _one_line_error(run("import", f"http://127.0.0.1:{port}/s.nwb.lindi.json"),
                    f"cannot read http://127.0.0.1:{port}/s.nwb.lindi.json: connection refused by 127.0.0.1:{port}")
    _one_line_error(run("import", f"{server}/missing.lindi.json"), f"HTTP 404 for {server}/missing.lindi.json")
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
    assert "No commits yet" in run("status").output and "Changes to be committed" not in run("status").output


def test_ingest_of_url_ranges_reads_through_httpread(server, tmp_path):
    from lindivc.lindi_io import ingest
    from lindivc.objects import ObjectStore

    store = ObjectStore(str(tmp_path / "objects"))
    rfs = {"refs": {".zgroup": {"zarr_format": 2}, "a/0": [f"{server}/file", 100, 50]}}
    assert ingest(rfs, store, only_local=False) == 50
    path, off, n = rfs["refs"]["a/0"]
    assert (off, n) == (0, 50) and open(path, "rb").read() == BODY[100:150]
    bad = {"refs": {"a/0": [f"{server}/ignores-range", 100, 50]}}
    with pytest.raises(IngestFailed, match=r"^cannot ingest ref 'a/0': cannot read .*/ignores-range: the server "
                       r"does not honour Range for bytes 100\+50: it answered HTTP 200 without a range$"):
        ingest(bad, store, only_local=False)
