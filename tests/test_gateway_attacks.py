"""Issue 10's attacks on the gateway, each over real HTTP (uvicorn on loopback, moto S3, the GitHub
stand-in): each fails for the attacker and leaves honest use working."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import socket
import threading
import time
import urllib.parse

import boto3
import pytest
import requests

from lindivc.documents import Pin
from lindivc.errors import AccessDenied, ZoneError
from lindivc.layout import object_key
from lindivc.server.app import create_app
from lindivc.server.guard import RequestLimits
from lindivc.server.policy import DocumentLimits
from lindivc.server.runner import BackgroundServer, ServerLimits
from lindivc.zones.gateway import GatewayZone

ALICE, BOB = "tok-alice", "tok-bob"
A = "a" * 40


def bucket_keys(bucket: str, prefix: str = "") -> list[str]:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@contextlib.contextmanager
def serve(bucket: str, github: str, limits: ServerLimits | None = None, **kw):
    """A gateway with the given limits; yields (url, the Gateway object)."""
    app = create_app(bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"], github_api_url=github,
                     cache_ttl=30.0, negative_ttl=30.0, **kw)
    with BackgroundServer(app, limits=limits) as srv:
        yield srv.url, app.state.gateway


def pin_doc(by: str | None = "bob", label: str = "https://example.org/derived.lindi.json") -> bytes:
    return Pin("file", label, time.time(), by, chunks=(A,)).to_bytes()


def put(url: str, path: str, body: bytes, token: str | None = BOB, headers: dict | None = None) -> requests.Response:
    h = {"Content-Type": "application/octet-stream", **(headers or {})}
    if token:
        h["Authorization"] = "token " + token
    return requests.put(url + path, data=body, headers=h, timeout=30)


def connect(url: str) -> socket.socket:
    u = urllib.parse.urlparse(url)
    return socket.create_connection((u.hostname, u.port), timeout=10)


def closed_within(s: socket.socket, seconds: float) -> bool:
    """True if the server closes ``s`` within ``seconds`` (whatever it sends first)."""
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


@pytest.fixture
def zone_exists(gateway):
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        z.put("git/refs/heads/main", b"0" * 40 + b"\n")
        yield z


# ------------------------------------------------------------------ documents


@pytest.mark.parametrize("body", [b"[]", b'"x"', b'{"file": "/dev/zero"}', b'{"file": "http://169.254.169.254/"}',
                                  b'{"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": "x"}',
                                  b'{"format": "lindivc-pin/1", "by": "external", "file": "s3://other/secret", '
                                  b'"objects": [], "created": 1}',
                                  b"\xff\xfe not json"])
def test_junk_pins_are_refused_and_not_stored(gateway, zone_exists, s3_bucket, body):
    r = put(gateway, "/zones/alice/x/pins/bob.junk", body)
    assert r.status_code == 422 and "refused" in r.json()["error"]
    assert bucket_keys(s3_bucket, "zones/alice/x/pins/") == []
    assert put(gateway, "/zones/alice/x/pins/bob.ok", pin_doc()).status_code == 200  # honest pins still work


def test_pins_must_name_their_writer(gateway, zone_exists, s3_bucket):
    assert put(gateway, "/zones/alice/x/pins/bob.p", pin_doc(by="carol")).status_code == 422
    assert put(gateway, "/zones/alice/x/pins/carol.p", pin_doc()).status_code == 422
    assert put(gateway, "/zones/alice/x/pins/p", pin_doc()).status_code == 422
    assert put(gateway, "/zones/alice/x/pins/bob.p", pin_doc(by=None)).status_code == 422
    assert bucket_keys(s3_bucket, "zones/alice/x/pins/") == []
    # the owner writes any id, with or without "by"
    assert put(gateway, "/zones/alice/x/pins/mine", pin_doc(by=None), token=ALICE).status_code == 200


def test_pins_in_zones_that_do_not_exist_are_refused(gateway, s3_bucket):
    r = put(gateway, "/zones/torvalds/linux/pins/bob.x", pin_doc())
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    assert bucket_keys(s3_bucket) == []
    assert requests.get(gateway + "/zones/", timeout=10).json() == {"zones": []}


def test_oversized_pins_are_refused_before_they_are_read(s3_bucket, github_standin, zone_exists):
    with serve(s3_bucket, github_standin.url, documents=DocumentLimits(max_pin_bytes=64 << 10)) as (url, _):
        # declared too large: refused at once
        r = put(url, "/zones/alice/x/pins/bob.big", b"{" + b" " * (150 << 10) + b"}")
        assert r.status_code == 413
        # streamed without a length: cut off at the limit
        def body():
            yield b'{"format": "lindivc-pin/2", "label": "'
            for _ in range(64):
                yield b"x" * (16 << 10)
        r = requests.put(url + "/zones/alice/x/pins/bob.big", data=body(), timeout=30,
                         headers={"Authorization": "token " + BOB})
        assert r.status_code == 413
    assert bucket_keys(s3_bucket, "zones/alice/x/pins/") == []


def test_pin_count_is_limited_per_writer_per_zone(s3_bucket, github_standin, zone_exists):
    github_standin.add("tok-carol", "carol")
    with serve(s3_bucket, github_standin.url, documents=DocumentLimits(max_pins_per_user=3)) as (url, _):
        for i in range(3):
            assert put(url, f"/zones/alice/x/pins/bob.{i}", pin_doc()).status_code == 200
        r = put(url, "/zones/alice/x/pins/bob.3", pin_doc())
        assert r.status_code == 403 and "already has 3 pins" in r.json()["error"]
        with GatewayZone(url + "/zones/alice/x", BOB) as z, pytest.raises(AccessDenied, match="already has 3 pins"):
            z.put("pins/bob.4", pin_doc())
        # others are not affected: another user, and the owner
        assert put(url, "/zones/alice/x/pins/carol.0", pin_doc(by="carol"), token="tok-carol").status_code == 200
        assert put(url, "/zones/alice/x/pins/own", pin_doc(by="alice"), token=ALICE).status_code == 200
    assert len(bucket_keys(s3_bucket, "zones/alice/x/pins/")) == 5


def test_legacy_pin_documents_are_no_longer_written(gateway, zone_exists, s3_bucket):
    mine = gateway + "/zones/bob/y"
    tag = hashlib.sha1(mine.encode()).hexdigest()[:16]
    legacy = {"format": "lindivc-pin/1", "by": mine, "url": mine + "/f/", "objects": [A], "chunks": ["b" * 40],
              "created": time.time()}
    with GatewayZone(gateway + "/zones/bob/y", BOB) as bz:
        bz.put("git/refs/heads/main", b"1" * 40 + b"\n")
    r = put(gateway, f"/zones/alice/x/pins/{tag}-{'c' * 24}", json.dumps(legacy).encode())
    assert r.status_code == 422 and "no longer written" in r.json()["error"]
    r = put(gateway, "/zones/alice/x/pins/legacy", json.dumps(legacy).encode(), token=ALICE)
    assert r.status_code == 422
    assert bucket_keys(s3_bucket, "zones/alice/x/pins/") == []


def test_writers_rewrite_and_delete_their_own_pins_only(s3_bucket, github_standin, zone_exists):
    github_standin.add("tok-carol", "carol")
    with serve(s3_bucket, github_standin.url, documents=DocumentLimits(max_pins_per_user=2)) as (url, _):
        assert put(url, "/zones/alice/x/pins/bob.0", pin_doc()).status_code == 200
        assert put(url, "/zones/alice/x/pins/bob.1", pin_doc()).status_code == 200
        assert put(url, "/zones/alice/x/pins/bob.1", pin_doc(label="https://example.org/v2")).status_code == 200
        assert put(url, "/zones/alice/x/pins/bob.2", pin_doc()).status_code == 403  # rewriting added none
        assert put(url, "/zones/alice/x/pins/carol.0", pin_doc(by="carol"), token="tok-carol").status_code == 200
        h = {"Authorization": "token " + BOB}
        assert requests.delete(url + "/zones/alice/x/pins/carol.0", headers=h, timeout=10).status_code == 403
        assert requests.delete(url + "/zones/alice/x/git/refs/heads/main", headers=h, timeout=10).status_code == 403
        assert requests.delete(url + "/zones/alice/x/pins/bob.0", headers=h, timeout=10).status_code == 204
        assert requests.delete(url + "/zones/alice/x/pins/carol.0", timeout=10,
                               headers={"Authorization": "token " + ALICE}).status_code == 204
    assert bucket_keys(s3_bucket, "zones/alice/x/pins/") == ["zones/alice/x/pins/bob.1"]


def test_owner_documents_are_validated_too(gateway, s3_bucket):
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        with pytest.raises(ZoneError, match="422"):
            z.put("journal/17-abc", b'{"format": "lindivc-journal/1", "objects": "all"}')
        with pytest.raises(ZoneError, match="422"):
            z.put("borrow/x", b"[]")
        entry = {"format": "lindivc-journal/1", "id": "17-abc", "branch": "main", "commit": A, "objects": [A],
                 "created": 1.0}
        with pytest.raises(ZoneError, match="422"):  # id and key disagree
            z.put("journal/18-abc", json.dumps(entry).encode())
        z.put("journal/17-abc", json.dumps(entry).encode())
    assert bucket_keys(s3_bucket) == ["zones/alice/x/journal/17-abc"]


def test_gc_of_the_victims_zone_completes_after_the_attacks(tmp_path, gateway, monkeypatch, s3_bucket):
    from test_gc import HOUR, make_repo

    from lindivc import gc
    from lindivc.push import push
    from lindivc.zones import open_zone

    r, _ = make_repo(tmp_path / "a", seed=3, n_chunks=2)
    url = f"{gateway}/zones/alice/x"
    r.config.add_remote("origin", url)
    monkeypatch.setenv("GITHUB_TOKEN", ALICE)
    push(r)
    for body in (b"[]", b'{"file": "/dev/zero"}', b'{"file": "http://127.0.0.1:9/x"}', b'"x"'):
        assert put(gateway, "/zones/alice/x/pins/bob.junk", body).status_code == 422
    assert put(gateway, "/zones/alice/x/pins/bob.ok", pin_doc()).status_code == 200
    plan = gc.plan_zone(open_zone(url, token=ALICE), grace=HOUR, cache_dir=str(tmp_path / "c"))
    assert plan.invalid == [] and plan.roots.refs == 1 and plan.roots.pins == 1


# ------------------------------------------------------------------ connections and requests


def test_half_open_connections_are_closed_and_do_not_lock_out_honest_clients(s3_bucket, github_standin):
    limits = ServerLimits(header_timeout=1.0, max_connections=40)
    with serve(s3_bucket, github_standin.url, limits) as (url, _):
        idle = []
        for i in range(80):  # twice the cap: the oldest idle ones are closed to make room
            s = connect(url)
            s.sendall(b"GET /api/now HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            idle.append(s)
        t0 = time.monotonic()
        assert requests.get(url + "/api/now", timeout=10).status_code == 200
        assert time.monotonic() - t0 < 3
        assert all(closed_within(s, 5) for s in idle)
        for s in idle:
            s.close()


def test_slowloris_headers_time_out(s3_bucket, github_standin):
    with serve(s3_bucket, github_standin.url, ServerLimits(header_timeout=1.0)) as (url, _):
        s = connect(url)
        t0 = time.monotonic()
        closed = False
        for b in b"GET /api/now HTTP/1.1\r\nHost: example\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - t0 > 4:
                break
        assert closed or closed_within(s, 3)
        assert time.monotonic() - t0 < 6
        s.close()


def test_stalled_body_is_408_and_frees_its_slot(s3_bucket, github_standin):
    req = RequestLimits(body_timeout=1.0, max_requests=2)
    with serve(s3_bucket, github_standin.url, requests=req) as (url, gw):
        socks = []
        for i in range(2):
            s = connect(url)
            s.sendall(f"PUT /zones/alice/x/f/{i}.json HTTP/1.1\r\nHost: x\r\nAuthorization: token {ALICE}\r\n"
                      f"Content-Length: 1000\r\n\r\n{{".encode())
            socks.append(s)
        time.sleep(0.3)
        r = requests.get(url + "/api/now", timeout=10)  # both slots held by stalled uploads
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        for s in socks:
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 408")
            s.close()
        assert requests.get(url + "/api/now", timeout=10).status_code == 200
    assert bucket_keys(s3_bucket) == []


def test_slow_uploads_spool_to_disk_past_the_memory_budget(s3_bucket, github_standin):
    with serve(s3_bucket, github_standin.url, upload_memory=8 << 20, requests=RequestLimits(body_timeout=20)) as (url, gw):
        socks = []
        for i in range(6):  # each would like 8 MiB in memory
            s = connect(url)
            s.sendall(f"PUT /zones/alice/x/f/{i}.json HTTP/1.1\r\nHost: x\r\nAuthorization: token {ALICE}\r\n"
                      f"Content-Length: {16 << 20}\r\n\r\n".encode() + b" " * (2 << 20))
            socks.append(s)
        deadline = time.monotonic() + 10
        while gw.uploads.used < 8 << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.uploads.used == 8 << 20  # one upload in memory, the other five on disk
        with GatewayZone(url + "/zones/alice/x", ALICE) as z:  # honest uploads go on
            data = os.urandom(3 << 20)
            z.put(object_key(hashlib.sha1(data).hexdigest()), data)
        for s in socks:
            s.close()
        deadline = time.monotonic() + 10
        while gw.uploads.used and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gw.uploads.used == 0


def test_bogus_tokens_cost_one_github_call_each_and_do_not_delay_anonymous_reads(s3_bucket, github_standin):
    github_standin.delay = 1.0
    with serve(s3_bucket, github_standin.url) as (url, _):
        with GatewayZone(url + "/zones/alice/x", ALICE) as z:
            z.put("f/a.json", b"{}")  # (alice's token is now cached)
        github_standin.reset_count()
        results = []

        def bogus(i: int) -> None:
            results.append(put(url, "/zones/alice/x/f/b.json", b"{}", token=f"bogus-{i % 10}").status_code)

        threads = [threading.Thread(target=bogus, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        r = requests.get(url + "/zones/alice/x/f/a.json", timeout=10)
        anonymous = time.monotonic() - t0
        for t in threads:
            t.join()
        assert r.status_code == 200 and anonymous < 0.8
        assert set(results) <= {401, 503} and 401 in results
        assert github_standin.requests <= 10  # ten distinct tokens; refusals cached
        n = github_standin.requests
        assert put(url, "/zones/alice/x/f/b.json", b"{}", token="bogus-1").status_code == 401
        assert github_standin.requests == n


def test_token_checks_past_the_pool_are_503_with_retry_after(s3_bucket, github_standin):
    from lindivc.server.identity import GitHubIdentity

    github_standin.delay = 1.0
    ident = GitHubIdentity(github_standin.url, threads=1, max_pending=2)
    with serve(s3_bucket, github_standin.url, identity=ident) as (url, _):
        out = []
        threads = [threading.Thread(target=lambda i=i: out.append(put(url, "/zones/alice/x/f/a.json", b"{}",
                                                                         token=f"t{i}")))
                   for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    busy = [r for r in out if r.status_code == 503]
    assert busy and all(r.headers.get("Retry-After") == "1" for r in busy)


@pytest.mark.parametrize("rng", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 30, "bytes=" + "1" * 19 + "-"])
def test_huge_range_headers_are_416_not_500(gateway, rng):
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        z.put("f/a.json", b"{}")
    r = requests.get(gateway + "/zones/alice/x/f/a.json", headers={"Range": rng}, timeout=10)
    assert r.status_code == 416 and "Traceback" not in r.text


def test_content_length_with_transfer_encoding_is_refused(gateway, s3_bucket):
    s = connect(gateway)
    s.sendall(b"PUT /zones/alice/x/f/a.json HTTP/1.1\r\nHost: x\r\nAuthorization: token tok-alice\r\n"
              b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
              b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 400") and data.count(b"HTTP/1.1") == 1  # and the connection closed
    assert bucket_keys(s3_bucket) == []


@pytest.mark.parametrize("trusted", [(), ("127.0.0.1",)])
def test_forwarded_for_is_honoured_only_from_configured_proxies(s3_bucket, github_standin, caplog, trusted):
    caplog.set_level(logging.INFO, logger="lindivc.gateway")
    with serve(s3_bucket, github_standin.url, ServerLimits(forwarded_allow_ips=trusted)) as (url, _):
        r = put(url, "/zones/alice/x/f/a.json", b"{}", headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 403
    lines = [rec.getMessage() for rec in caplog.records if "refused" in rec.getMessage()]
    assert lines and "(login bob)" in lines[-1] and BOB not in lines[-1]
    assert ("from 203.0.113.9" in lines[-1]) == bool(trusted)
    assert ("from 127.0.0.1" in lines[-1]) == (not trusted)


def test_json_is_gzipped_unless_a_range_is_asked(gateway):
    doc = json.dumps({"refs": {f"k{i}": [f"{gateway}/zones/alice/x/sha1/aa/bb/cc/{A}", i, 1] for i in range(500)}})
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        z.put("f/a.lindi.json", doc.encode())
        z.put(object_key(hashlib.sha1(doc.encode()).hexdigest()), doc.encode())
    r = requests.get(gateway + "/zones/alice/x/f/a.lindi.json", headers={"Accept-Encoding": "gzip"}, timeout=10,
                     stream=True)
    raw = r.raw.read()
    assert r.headers["Content-Encoding"] == "gzip" and len(raw) < len(doc) / 4
    assert gzip.decompress(raw) == doc.encode()
    r = requests.get(gateway + "/zones/alice/x/f/a.lindi.json", headers={"Range": "bytes=0-9"}, timeout=10)
    assert r.status_code == 206 and "Content-Encoding" not in r.headers and r.content == doc.encode()[:10]
    r = requests.get(gateway + "/zones/alice/x/" + object_key(hashlib.sha1(doc.encode()).hexdigest()), timeout=10)
    assert "Content-Encoding" not in r.headers and r.content == doc.encode()
    r = requests.get(gateway + "/zones/alice/x/?list", timeout=10)
    assert r.headers.get("Content-Encoding") == "gzip" or len(r.content) < 500
