"""The Zone contract, run against every writable backend, plus backend-specific behaviour."""
from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
import urllib.request
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lindivc.errors import AccessDenied, InvalidKey, PreconditionFailed, ZoneError, ZoneKeyMissing, ZoneUnreachable
from lindivc.layout import object_key
from lindivc.rangeserver import serve_directory
from lindivc.zones import open_zone
from lindivc.zones.http import HttpZone
from lindivc.zones.local import LocalZone
from lindivc.zones.memory import MemoryZone
from lindivc.zones.s3 import S3Zone


def okey(data: bytes) -> str:
    return object_key(hashlib.sha1(data).hexdigest())


@pytest.fixture(params=["local", "s3", "memory"])
def zone(request, tmp_path):
    if request.param == "local":
        z = open_zone(str(tmp_path / "zone"))
        assert isinstance(z, LocalZone)
    elif request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        z = open_zone(f"s3://{bucket}/some/prefix")
        assert isinstance(z, S3Zone)
    else:
        z = open_zone(f"memory://t-{uuid.uuid4().hex[:8]}")
        assert isinstance(z, MemoryZone)
    yield z
    z.close()


# ---- the contract --------------------------------------------------------------------------

def test_put_get_head_roundtrip(zone):
    data = b"hello zone" * 100
    key = okey(data)
    etag = zone.put(key, data)
    assert etag == hashlib.md5(data).hexdigest()
    assert zone.get(key) == data
    info = zone.head(key)
    assert info.key == key and info.size == len(data) and info.etag == etag
    assert abs(info.mtime - zone.now()) < 120
    assert zone.exists(key)
    with zone.open_read(key) as f:
        assert f.read() == data


def test_get_range_returns_exact_bytes(zone):
    data = bytes(range(256)) * 40
    zone.put("f/a.lindi.json", data)
    assert zone.get_range("f/a.lindi.json", 0, 10) == data[:10]
    assert zone.get_range("f/a.lindi.json", 1000, 3000) == data[1000:4000]
    assert zone.get_range("f/a.lindi.json", len(data) - 1, 1) == data[-1:]
    assert zone.get_range("f/a.lindi.json", 5, 0) == b""


def test_get_range_past_end_is_an_error(zone):
    zone.put("f/a.lindi.json", b"0123456789")
    with pytest.raises(ZoneError):
        zone.get_range("f/a.lindi.json", 5, 10)


def test_missing_key_raises_zone_key_missing(zone):
    key = okey(b"nope")
    with pytest.raises(ZoneKeyMissing):
        zone.get(key)
    with pytest.raises(ZoneKeyMissing):
        zone.get_range(key, 0, 4)
    with pytest.raises(ZoneKeyMissing):
        zone.open_read(key)
    assert zone.head(key) is None
    assert not zone.exists(key)


def test_list_is_sorted_relative_and_filtered(zone):
    keys = ["git/HEAD", "git/refs/heads/main", "f/b.lindi.json", "f/a/x.lindi.json", "journal/j1"]
    for k in keys:
        zone.put(k, k.encode())
    assert [i.key for i in zone.list()] == sorted(keys)
    assert [i.key for i in zone.list("git/")] == ["git/HEAD", "git/refs/heads/main"]
    assert [i.key for i in zone.list("f/a")] == ["f/a/x.lindi.json"]
    assert [i.key for i in zone.list("pins/")] == []
    sizes = {i.key: i.size for i in zone.list()}
    assert sizes["journal/j1"] == len(b"journal/j1")


def test_delete_removes_and_tolerates_absent(zone):
    zone.put("pins/p1", b"x")
    zone.delete("pins/p1")
    assert zone.head("pins/p1") is None
    zone.delete("pins/p1")
    assert list(zone.list("pins/")) == []


def test_if_none_match_refuses_existing_key(zone):
    zone.put("git/refs/heads/main", b"a" * 40, if_none_match=True)
    with pytest.raises(PreconditionFailed):
        zone.put("git/refs/heads/main", b"b" * 40, if_none_match=True)
    assert zone.get("git/refs/heads/main") == b"a" * 40


def test_if_match_is_compare_and_swap(zone):
    e1 = zone.put("git/refs/heads/main", b"one")
    e2 = zone.put("git/refs/heads/main", b"two", if_match=e1)
    assert zone.get("git/refs/heads/main") == b"two"
    with pytest.raises(PreconditionFailed):
        zone.put("git/refs/heads/main", b"three", if_match=e1)  # stale
    assert zone.get("git/refs/heads/main") == b"two"
    assert zone.put("git/refs/heads/main", b"four", if_match=e2)
    with pytest.raises(PreconditionFailed):
        zone.put("git/HEAD", b"x", if_match=e2)  # absent key


def test_concurrent_compare_and_swap_has_one_winner(zone):
    e0 = zone.put("lease/gc", b"free")
    results = []

    def contender(i):
        try:
            zone.put("lease/gc", f"held by {i}".encode(), if_match=e0)
            results.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1
    assert zone.get("lease/gc") == f"held by {results[0]}".encode()


def test_put_file_streams_a_large_file(zone, tmp_path):
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    h = hashlib.sha1()
    with open(path, "wb") as f:
        for i in range(20):
            chunk = bytes([i]) + block[1:]
            f.write(chunk)
            h.update(chunk)
    key = object_key(h.hexdigest())
    sent = []
    etag = zone.put_file(key, str(path), progress=sent.append)
    assert sum(sent) == 20 << 20
    assert etag
    info = zone.head(key)
    assert info.size == 20 << 20
    assert hashlib.sha1(zone.get(key)).hexdigest() == h.hexdigest()
    assert zone.get_range(key, (5 << 20) - 3, 6) == (block[-3:] + bytes([5]) + block[1:3])


def test_put_stream_is_declared_by_a_capability(zone):
    data = os.urandom(3000)
    key = okey(data)
    if not zone.supports_put_stream:
        with pytest.raises(NotImplementedError):
            zone.put_stream(key, io.BytesIO(data), len(data))
        return
    stream = io.BytesIO(data)
    stream.read(10)  # the zone reads from the start whatever the position
    assert zone.put_stream(key, stream, len(data))
    assert zone.get(key) == data


def test_s3_declares_streamed_puts_and_the_others_do_not(zone):
    assert zone.supports_put_stream == isinstance(zone, S3Zone)


def test_now_is_sane(zone):
    assert abs(zone.now() - time.time()) < 60


def test_invalid_keys_are_refused(zone):
    for bad in ["../x", "f/../../etc/passwd", "/abs", "f//a", "other/thing", "sha1/zz", ""]:
        with pytest.raises(InvalidKey):
            zone.put(bad, b"x")
        with pytest.raises(InvalidKey):
            zone.get(bad)


def test_public_url_names_the_key(zone):
    key = okey(b"data")
    zone.put(key, b"data")
    url = zone.public_url(key)
    assert url.endswith(key)


# ---- local -----------------------------------------------------------------------------------

def test_local_public_url_is_an_absolute_path(tmp_path):
    z = LocalZone(str(tmp_path / "z"))
    z.put("f/a.lindi.json", b"{}")
    p = z.public_url("f/a.lindi.json")
    assert os.path.isabs(p) and not p.startswith("file:")
    assert open(p, "rb").read() == b"{}"


def test_local_file_url_and_path_open_the_same_zone(tmp_path):
    a = open_zone(str(tmp_path / "z"))
    b = open_zone("file://" + str(tmp_path / "z"))
    a.put("pins/x", b"1")
    assert b.get("pins/x") == b"1"


def test_local_leaves_no_temp_files(tmp_path):
    z = LocalZone(str(tmp_path / "z"))
    z.put("pins/x", b"1")
    with pytest.raises(PreconditionFailed):
        z.put("pins/x", b"2", if_none_match=True)
    assert os.listdir(tmp_path / "z" / ".lindivc-zone" / "tmp") == []
    assert [i.key for i in z.list()] == ["pins/x"]


def _cas_worker(root, n, out):
    import multiprocessing  # noqa: F401  (child process)

    z = LocalZone(root)
    wins = 0
    for _ in range(n):
        while True:
            info = z.head("lease/gc")
            value = int(z.get("lease/gc"))
            try:
                z.put("lease/gc", str(value + 1).encode(), if_match=info.etag)
                wins += 1
                break
            except PreconditionFailed:
                continue
    out.put(wins)


def test_local_compare_and_swap_across_processes(tmp_path):
    import multiprocessing

    root = str(tmp_path / "z")
    LocalZone(root).put("lease/gc", b"0")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_cas_worker, args=(root, 25, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sum(q.get() for _ in procs) == 100
    assert LocalZone(root).get("lease/gc") == b"100"


def test_local_siblings_are_the_other_zones_of_the_cloud(tmp_path):
    cloud = tmp_path / "cloud"
    for user, name in [("alice", "z1"), ("alice", "z2"), ("bob", "main")]:
        LocalZone(str(cloud / "zones" / user / name)).put("pins/p", b"1")
    (cloud / "zones" / "bob" / "stray.txt").write_text("not a zone")
    z = open_zone(str(cloud / "zones" / "alice" / "z1"))
    assert sorted(s.url for s in z.siblings()) == [
        str(cloud / "zones" / "alice" / "z2"), str(cloud / "zones" / "bob" / "main")]
    assert list(open_zone(str(tmp_path / "lonely")).siblings()) == []


# ---- memory ----------------------------------------------------------------------------------

def test_memory_zones_share_state_per_name_and_clock_is_settable():
    name = f"memory://m-{uuid.uuid4().hex[:8]}"
    a, b = open_zone(name), open_zone(name)
    a.clock = 1_000_000.0
    a.put("pins/x", b"1")
    assert b.head("pins/x").mtime == 1_000_000.0
    b.clock = lambda: 2_000_000.0
    assert a.now() == 2_000_000.0
    a.clock = None
    assert abs(a.now() - time.time()) < 5


def test_memory_siblings():
    root = f"memory://c{uuid.uuid4().hex[:8]}"
    z1 = open_zone(root + "/zones/alice/one")
    z2 = open_zone(root + "/zones/bob/two")
    open_zone(root + "x/zones/carol/other")  # another cloud
    assert [s.url for s in z1.siblings()] == [z2.url]


# ---- S3 --------------------------------------------------------------------------------------

def test_s3_public_url_is_path_style_on_custom_endpoint(s3_bucket, s3_env):
    z = open_zone(f"s3://{s3_bucket}/pre")
    assert z.public_url("f/a.lindi.json") == f"{s3_env}/{s3_bucket}/pre/f/a.lindi.json"
    z.put("f/a.lindi.json", b"{}")
    import boto3

    boto3.client("s3").put_object_acl(Bucket=s3_bucket, Key="pre/f/a.lindi.json", ACL="public-read")
    with urllib.request.urlopen(z.public_url("f/a.lindi.json")) as r:
        assert r.read() == b"{}"


def test_s3_public_url_on_aws_is_virtual_host_style(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    z = S3Zone("s3://my-bucket/zones/u/z")
    assert z.public_url("pins/x") == "https://my-bucket.s3.amazonaws.com/zones/u/z/pins/x"


def test_s3_put_sends_octet_stream(s3_bucket):
    import boto3

    z = open_zone(f"s3://{s3_bucket}")
    z.put("pins/x", b"abc")
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key="pins/x")
    assert head["ContentType"] == "application/octet-stream"
    assert z.get("pins/x") == b"abc"


def test_s3_multipart_upload_above_threshold(s3_bucket, tmp_path):
    path = tmp_path / "mp.bin"
    data = os.urandom(12 << 20)
    path.write_bytes(data)
    z = S3Zone(f"s3://{s3_bucket}/p", multipart_threshold=8 << 20, part_size=5 << 20)
    sent = []
    key = okey(data)
    etag = z.put_file(key, str(path), progress=sent.append)
    assert sum(sent) == len(data)
    assert etag.endswith("-3")  # three parts
    assert z.get(key) == data


def test_s3_missing_bucket_is_a_clear_error(s3_env):
    z = open_zone("s3://no-such-bucket-lvc/x")
    for op in (lambda: z.get("pins/a"), lambda: z.head("pins/a"), lambda: list(z.list()),
               lambda: z.put("pins/a", b"1")):
        with pytest.raises(ZoneError, match="bucket no-such-bucket-lvc does not exist") as ei:
            op()
        assert not isinstance(ei.value, ZoneKeyMissing)
        assert "s3://no-such-bucket-lvc/x" in str(ei.value)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_s3_unreachable_endpoint_fails_fast(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    z = open_zone("s3://some-bucket/x")
    t0 = time.monotonic()
    with pytest.raises(ZoneUnreachable, match="s3://some-bucket/x"):
        z.get("pins/a")
    assert time.monotonic() - t0 < 10


def test_s3_access_denied_maps_to_access_denied(s3_bucket, s3_env, monkeypatch):
    # moto accepts any credentials; a 403 it does give is an anonymous write
    z = S3Zone(f"s3://{s3_bucket}")
    z.put("pins/a", b"1")
    from botocore import UNSIGNED
    from botocore.config import Config
    import boto3

    anon = S3Zone(f"s3://{s3_bucket}", client=boto3.client("s3", config=Config(signature_version=UNSIGNED)))
    with pytest.raises(AccessDenied, match=s3_bucket):
        anon.get("pins/a")


def test_s3_now_follows_the_store_clock(s3_bucket):
    z = open_zone(f"s3://{s3_bucket}")
    z.now()
    assert z._clock_offset is not None
    z._clock_offset = 3600.0  # pretend the store runs an hour ahead
    z._clock_read_at = time.time()
    assert abs(z.now() - (time.time() + 3600)) < 5


def test_s3_siblings_are_the_other_zones_of_the_bucket(s3_bucket):
    for user, name in [("alice", "z1"), ("alice", "z2"), ("bob", "main")]:
        open_zone(f"s3://{s3_bucket}/root/zones/{user}/{name}").put("pins/p", b"1")
    open_zone(f"s3://{s3_bucket}/elsewhere/zones/carol/c").put("pins/p", b"1")
    z = open_zone(f"s3://{s3_bucket}/root/zones/alice/z1")
    sibs = list(z.siblings())
    assert sorted(s.url for s in sibs) == [f"s3://{s3_bucket}/root/zones/alice/z2",
                                            f"s3://{s3_bucket}/root/zones/bob/main"]
    assert sibs[0].get("pins/p") == b"1"
    top = open_zone(f"s3://{s3_bucket}/zones/dave/d")
    top.put("pins/p", b"1")
    assert list(top.siblings()) == []  # the root-level cloud has only dave/d


# ---- HTTP and the range server ---------------------------------------------------------------

@pytest.fixture
def served_zone(tmp_path):
    z = LocalZone(str(tmp_path / "z"))
    data = os.urandom(100_000)
    z.put("f/data.lindi.json", data)
    with serve_directory(str(tmp_path / "z")) as srv:
        yield z, srv, data


def test_http_zone_reads_ranges_over_rangeserver(served_zone):
    _, srv, data = served_zone
    hz = open_zone(srv.url)
    assert isinstance(hz, HttpZone)
    assert hz.get("f/data.lindi.json") == data
    assert hz.get_range("f/data.lindi.json", 1234, 5000) == data[1234:6234]
    assert hz.head("f/data.lindi.json").size == len(data)
    assert hz.head("f/missing.json") is None
    with pytest.raises(ZoneKeyMissing):
        hz.get_range("f/missing.json", 0, 1)
    with pytest.raises(ZoneError):
        hz.get_range("f/data.lindi.json", len(data) - 1, 10)
    with hz.open_read("f/data.lindi.json") as f:
        assert f.read() == data
    assert hz.public_url("f/data.lindi.json") == srv.url + "/f/data.lindi.json"
    assert abs(hz.now() - time.time()) < 60


def test_http_zone_is_read_only_and_unlistable(served_zone):
    _, srv, _ = served_zone
    hz = open_zone(srv.url)
    assert not hz.supports_writes and not hz.supports_listing and not hz.supports_deletes
    with pytest.raises(ZoneError, match="read-only"):
        hz.put("pins/x", b"1")
    with pytest.raises(ZoneError, match="read-only"):
        hz.delete("pins/x")
    with pytest.raises(ZoneError):
        list(hz.list())


def test_http_zone_refuses_a_server_that_ignores_range(tmp_path):
    z = LocalZone(str(tmp_path / "z"))
    z.put("f/a.lindi.json", b"0123456789" * 100)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "z"), **kw)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        hz = HttpZone(f"http://127.0.0.1:{httpd.server_address[1]}")
        assert hz.get("f/a.lindi.json") == b"0123456789" * 100
        with pytest.raises(ZoneError, match="server ignores Range requests"):
            hz.get_range("f/a.lindi.json", 3, 4)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_zone_unreachable(tmp_path):
    hz = HttpZone(f"http://127.0.0.1:{_closed_port()}/zone")
    t0 = time.monotonic()
    with pytest.raises(ZoneUnreachable):
        hz.get("pins/x")
    assert time.monotonic() - t0 < 10


def _raw_get(url_base: str, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url_base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", path, headers=headers or {})  # sent verbatim: no client-side normalisation
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.headers, body  # header names case-insensitive


def test_rangeserver_range_semantics(served_zone):
    _, srv, data = served_zone
    st, h, body = _raw_get(srv.url, "/f/data.lindi.json", {"Range": "bytes=10-19"})
    assert st == 206 and body == data[10:20] and h["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert h["Content-Length"] == "10"
    st, h, body = _raw_get(srv.url, "/f/data.lindi.json", {"Range": "bytes=-5"})
    assert st == 206 and body == data[-5:]
    st, h, body = _raw_get(srv.url, "/f/data.lindi.json", {"Range": f"bytes={len(data) - 2}-"})
    assert st == 206 and body == data[-2:]
    st, h, _ = _raw_get(srv.url, "/f/data.lindi.json", {"Range": f"bytes={len(data)}-"})
    assert st == 416 and h["Content-Range"] == f"bytes */{len(data)}"
    st, h, body = _raw_get(srv.url, "/f/data.lindi.json")
    assert st == 200 and body == data and h["Accept-Ranges"] == "bytes"


def test_rangeserver_refuses_path_traversal(tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.txt").write_text("ok")
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    with serve_directory(str(root)) as srv:
        assert _raw_get(srv.url, "/ok.txt")[2] == b"ok"
        for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/link.txt",
                     "/..%2fsecret.txt"]:
            st, _, body = _raw_get(srv.url, path)
            assert st in (403, 404), path
            assert b"secret" not in body


# ---- URLs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://host/x", "s3://A_BAD_BUCKET/x", "", "memory://", "memory://../x",
                                 "http://host/a/../b", "gs://bucket/x"])
def test_invalid_zone_urls_are_refused(url):
    with pytest.raises(InvalidKey):
        open_zone(url)


def test_open_zone_dispatch(tmp_path, s3_env):
    assert isinstance(open_zone(str(tmp_path)), LocalZone)
    assert isinstance(open_zone(f"file://{tmp_path}"), LocalZone)
    assert isinstance(open_zone("s3://bucket/prefix"), S3Zone)
    assert isinstance(open_zone("https://example.org/data"), HttpZone)
    assert isinstance(open_zone("memory://x"), MemoryZone)
    # a cloud zone over https without a token is read-only HTTP
    assert isinstance(open_zone("https://example.org/zones/alice/z"), HttpZone)


def test_a_body_cut_short_is_a_zone_error_naming_the_key():
    """A server that promises 100,000 bytes and hangs up after 1,000 (a reset connection, a
    proxy that gave up): reading the stream raises ZoneUnreachable naming the zone and the key,
    not the HTTP library's own exception (GC and borrowers read other users' documents so)."""
    from http.server import BaseHTTPRequestHandler

    class Short(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        z = HttpZone(f"http://127.0.0.1:{srv.server_address[1]}/zones/ada/acg/")
        with z.open_read("pins/ada.x") as f:
            with pytest.raises(ZoneUnreachable, match=r"reading pins/ada\.x failed"):
                while f.read(4096):
                    pass
    finally:
        srv.shutdown()
        srv.server_close()
