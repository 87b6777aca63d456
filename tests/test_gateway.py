"""The zone gateway over real HTTP on loopback: moto S3, a stand-in GitHub API, uvicorn."""
from __future__ import annotations

import hashlib
import http.client
import os
import stat
import time
import urllib.parse

import boto3
import pytest
import requests

from lindivc import auth
from lindivc.errors import AccessDenied, InvalidKey, PreconditionFailed, ZoneKeyMissing, ZoneUnreachable
from lindivc.layout import object_key
from lindivc.server.app import BackgroundServer, create_app
from lindivc.zones.gateway import GatewayZone

ALICE = "tok-alice"
BOB = "tok-bob"


def obj(data: bytes) -> tuple[str, bytes]:
    return object_key(hashlib.sha1(data).hexdigest()), data


def bucket_keys(bucket: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def raw(url: str, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    """Send ``path`` byte for byte (no client-side normalisation of '..' or '%2e')."""
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        h = {"Content-Type": "application/octet-stream", **(headers or {})}
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture
def alice(gateway):
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        yield z


@pytest.fixture
def bob_view(gateway):
    """zones/alice/x as bob sees it (bob's token)."""
    with GatewayZone(gateway + "/zones/alice/x", BOB) as z:
        yield z


def test_owner_writes_and_others_read(alice, bob_view, gateway, s3_bucket):
    k, data = obj(b"chunk bytes" * 1000)
    alice.put(k, data)
    alice.put("f/data/sub.lindi.json", b'{"refs": {}}')
    etag = alice.put("git/refs/heads/main", b"a" * 40 + b"\n", if_none_match=True)
    assert etag
    anonymous = GatewayZone(gateway + "/zones/alice/x", token="")
    for reader in (bob_view, anonymous):
        assert reader.get(k) == data
        assert reader.get("f/data/sub.lindi.json") == b'{"refs": {}}'
        assert reader.head(k).size == len(data)
        assert reader.head(k).mtime == pytest.approx(time.time(), abs=120)
        assert reader.head("idx/" + "0" * 40) is None
    assert [o.key for o in bob_view.list()] == sorted([k, "f/data/sub.lindi.json", "git/refs/heads/main"])
    assert [o.key for o in bob_view.list("git/")] == ["git/refs/heads/main"]
    with bob_view.open_read(k) as f:
        assert f.read() == data
    assert sorted(bucket_keys(s3_bucket)) == sorted("zones/alice/x/" + key for key in
                                                    [k, "f/data/sub.lindi.json", "git/refs/heads/main"])
    assert bob_view.public_url(k) == gateway + "/zones/alice/x/" + k
    assert requests.get(bob_view.public_url(k)).content == data


def test_range_reads_return_206_with_exact_bytes(alice, gateway):
    k, data = obj(bytes(range(256)) * 100)
    alice.put(k, data)
    assert alice.get_range(k, 1000, 17) == data[1000:1017]
    assert alice.get_range(k, len(data) - 5, 5) == data[-5:]
    r = requests.get(alice.public_url(k), headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = requests.get(alice.public_url(k), headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == data[-4:]
    assert requests.get(alice.public_url(k), headers={"Range": "bytes=0-1,5-6"}).status_code == 416
    assert requests.get(alice.public_url(k), headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416


def test_large_upload_streams_and_verifies(alice, tmp_path):
    data = os.urandom(9 << 20)  # above the gateway's in-memory spool
    k, _ = obj(data)
    p = tmp_path / "big"
    p.write_bytes(data)
    seen = []
    alice.put_file(k, str(p), progress=seen.append)
    assert sum(seen) == len(data)
    assert alice.head(k).size == len(data)
    assert hashlib.sha1(alice.get(k)).hexdigest() == k.rsplit("/", 1)[1]


def test_conditional_writes_conflict_with_412(alice):
    e1 = alice.put("git/refs/heads/main", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        alice.put("git/refs/heads/main", b"2", if_none_match=True)
    e2 = alice.put("git/refs/heads/main", b"2", if_match=e1)
    with pytest.raises(PreconditionFailed):
        alice.put("git/refs/heads/main", b"3", if_match=e1)
    assert alice.get("git/refs/heads/main") == b"2"
    assert alice.head("git/refs/heads/main").etag == e2


def test_other_user_cannot_write_or_delete(alice, bob_view, gateway, s3_bucket):
    k, data = obj(b"precious")
    alice.put(k, data)
    with pytest.raises(AccessDenied) as e:
        bob_view.put("f/evil.lindi.json", b"{}")
    assert "403" in str(e.value)
    with pytest.raises(AccessDenied):
        bob_view.delete(k)
    with pytest.raises(AccessDenied):
        bob_view.put_file("f/evil.json", __file__)
    assert bob_view.get(k) == data
    assert raw(gateway, "DELETE", "/zones/alice/x/" + k, headers={"Authorization": "token " + BOB})[0] == 403
    assert bucket_keys(s3_bucket) == ["zones/alice/x/" + k]
    # bob's own zone is his
    with GatewayZone(gateway + "/zones/bob/y", BOB) as bob:
        bob.put(k, data)
        bob.delete(k)
        assert bob.head(k) is None


def test_login_compared_case_insensitively(gateway):
    with GatewayZone(gateway + "/zones/Alice/x", ALICE) as z:
        z.put("f/a.json", b"{}")
        assert z.get("f/a.json") == b"{}"


def test_any_user_may_add_a_pin_and_rewrite_or_remove_only_its_own(alice, bob_view):
    from lindivc.documents import Pin, parse_pin

    alice.put("git/refs/heads/main", b"a" * 40 + b"\n")  # the zone exists
    pin = Pin("file", "https://example.org/derived.lindi.json", 1.0, "bob", chunks=("c" * 40,)).to_bytes()
    bob_view.put("pins/bob.derived", pin)
    assert parse_pin(alice.get("pins/bob.derived")).by == "bob"
    newer = Pin("file", "https://example.org/derived.lindi.json", 2.0, "bob", chunks=("d" * 40,)).to_bytes()
    bob_view.put("pins/bob.derived", newer)  # `lindivc pin --refresh`
    assert parse_pin(alice.get("pins/bob.derived")).chunks == ("d" * 40,)
    with pytest.raises(PreconditionFailed):
        bob_view.put("pins/bob.derived", pin, if_none_match=True)
    alice.put("pins/alice.mine", Pin("file", "https://example.org/a", 1.0, "alice", chunks=("e" * 40,)).to_bytes())
    with pytest.raises(AccessDenied):
        bob_view.delete("pins/alice.mine")
    bob_view.delete("pins/bob.derived")
    assert alice.head("pins/bob.derived") is None
    alice.delete("pins/alice.mine")  # the owner removes any pin (its GC drops stale borrow pins)
    assert alice.head("pins/alice.mine") is None


def test_missing_or_bad_token_is_401(gateway, s3_bucket):
    assert raw(gateway, "PUT", "/zones/alice/x/f/a.json", b"{}")[0] == 401
    assert raw(gateway, "PUT", "/zones/alice/x/f/a.json", b"{}", {"Authorization": "token nope"})[0] == 401
    assert raw(gateway, "PUT", "/zones/alice/x/f/a.json", b"{}", {"Authorization": "Basic abc"})[0] == 401
    assert raw(gateway, "DELETE", "/zones/alice/x/f/a.json")[0] == 401
    assert raw(gateway, "PUT", "/zones/alice/x/f/a.json", b"{}", {"Authorization": "Bearer " + ALICE})[0] == 200
    with GatewayZone(gateway + "/zones/alice/x", "ghp_notAValidToken123") as z:
        with pytest.raises(AccessDenied) as e:
            z.put("f/b.json", b"{}")
    assert "401" in str(e.value) and "ghp_notAValidToken123" not in str(e.value)
    assert bucket_keys(s3_bucket) == ["zones/alice/x/f/a.json"]


def test_wrong_bytes_under_sha1_key_are_refused_and_not_stored(alice, gateway, s3_bucket, tmp_path):
    k, _ = obj(b"the real bytes")
    with pytest.raises(Exception) as e:
        alice.put(k, b"other bytes")
    assert "422" in str(e.value)
    p = tmp_path / "big"
    p.write_bytes(os.urandom(9 << 20))
    with pytest.raises(Exception):
        alice.put_file(k, str(p))
    status, body = raw(gateway, "PUT", "/zones/alice/x/" + k, b"x", {"Authorization": "token " + ALICE})
    assert status == 422 and b"nothing stored" in body
    assert bucket_keys(s3_bucket) == []
    assert alice.head(k) is None


@pytest.mark.parametrize("path", [
    "/zones/alice/x/../y/f/a.json",
    "/zones/alice/x/%2e%2e/y/f/a.json",
    "/zones/alice/x/f/%2E%2E/%2E%2E/secret",
    "/zones/alice/x/f//a.json",
    "/zones/alice/x//f/a.json",
    "/zones/alice/x/f/./a.json",
    "/zones/alice/x/f%2F..%2Fa.json",
    "/zones/alice/../bob/f/a.json",
    "/zones/../alice/x/f/a.json",
    "/zones/al%20ice/x/f/a.json",
    "/zones/.alice/x/f/a.json",
    "/zones/alice/x/secret.txt",
    "/zones/alice/x/sha1/ab/cd/ef/nothex",
    "/zones/alice/x/sha1/00/00/00/" + "1" * 40,
    "/zones/alice/x/idx/" + "a" * 39,
    "/zones/alice/x/lease/other",
    "/zones/alice/x/f/" + "a" * 1100,
    "/zones/" + "a" * 101 + "/x/f/a.json",
    "/zones/alice",
])
def test_malformed_and_traversal_keys_are_refused(gateway, s3_bucket, path):
    for method in ("PUT", "GET"):
        status, _ = raw(gateway, method, path, b"{}", {"Authorization": "token " + ALICE})
        assert status in (400, 404 if path == "/zones/alice" else 400), (method, path, status)
    assert bucket_keys(s3_bucket) == []


def test_client_refuses_malformed_keys_before_sending(alice):
    for key in ("../x", "f/../../x", "/abs", "", "f//a", "nope/x"):
        with pytest.raises(InvalidKey):
            alice.put(key, b"x")


def test_revoked_token_works_until_cache_ttl_then_401(s3_bucket, github_standin):
    app = create_app(s3_bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                     github_api_url=github_standin.url, cache_ttl=1.5, negative_ttl=0.5)
    with BackgroundServer(app) as srv:
        github_standin.add("tok-carol", "carol")
        with GatewayZone(srv.url + "/zones/carol/z", "tok-carol") as z:
            github_standin.reset_count()
            for i in range(5):
                z.put(f"f/{i}.json", b"{}")
            assert github_standin.requests == 1  # cached
            github_standin.revoke("tok-carol")
            z.put("f/after-revoke.json", b"{}")  # still cached
            time.sleep(1.7)
            with pytest.raises(AccessDenied) as e:
                z.put("f/too-late.json", b"{}")
            assert "401" in str(e.value)
            n = github_standin.requests
            with pytest.raises(AccessDenied):
                z.put("f/too-late.json", b"{}")
            assert github_standin.requests == n  # refusal cached briefly too
            assert z.head("f/too-late.json") is None


def test_github_unreachable_is_503_not_401(s3_bucket):
    app = create_app(s3_bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"], github_api_url="http://127.0.0.1:9")
    with BackgroundServer(app) as srv:
        status, body = raw(srv.url, "PUT", "/zones/alice/x/f/a.json", b"{}", {"Authorization": "token " + ALICE})
        assert status == 503 and ALICE.encode() not in body


def test_store_clock_and_siblings(alice, gateway):
    assert alice.now() == pytest.approx(time.time(), abs=5)
    alice.put("f/a.json", b"{}")
    with GatewayZone(gateway + "/zones/bob/y", BOB) as bob:
        bob.put("f/b.json", b"{}")
        assert [s.url for s in bob.siblings()] == [gateway + "/zones/alice/x"]
    assert alice.whoami() == "alice"


def test_unreachable_gateway_raises_zone_unreachable():
    with GatewayZone("http://127.0.0.1:9/zones/alice/x", "ghp_secretsecret") as z:
        for call in (lambda: z.get("f/a.json"), lambda: z.put("f/a.json", b"{}")):
            with pytest.raises(ZoneUnreachable) as e:
                call()
            assert "ghp_secretsecret" not in str(e.value) and "\n" not in str(e.value)


def test_missing_key_raises_zone_key_missing(alice):
    with pytest.raises(ZoneKeyMissing):
        alice.get("f/none.json")
    alice.delete("f/none.json")  # absent: not an error


def test_token_never_in_error_messages(gateway, monkeypatch, tmp_path):
    secret = "ghp_TopSecretToken0123456789"
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    with GatewayZone(gateway + "/zones/alice/x") as z:  # token from the environment
        errors = []
        for call in (lambda: z.put("f/a.json", b"{}"), lambda: z.delete("f/a.json"),
                     lambda: z.whoami()):
            with pytest.raises(AccessDenied) as e:
                call()
            errors.append(str(e.value))
    assert errors and all(secret not in m and "\n" not in m for m in errors)


def test_login_file_is_0600_and_github_token_takes_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("LINDIVC_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert auth.load_token() is None
    p = auth.login("ghp_stored")
    assert p == tmp_path / "cfg" / "token"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert auth.load_token() == "ghp_stored"
    auth.login("ghp_second")
    assert auth.load_token() == "ghp_second" and stat.S_IMODE(os.stat(p).st_mode) == 0o600
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_env")
    assert auth.load_token() == "ghp_env"
    for bad in ("", "two words", "line\nbreak"):
        with pytest.raises(Exception) as e:
            auth.login(bad)
        assert "\n" not in str(e.value)
    assert auth.logout() and not p.exists()


def test_public_url_redirects_reads_to_the_bucket(s3_bucket, github_standin):
    public = os.environ["AWS_ENDPOINT_URL"] + "/" + s3_bucket
    app = create_app(s3_bucket, endpoint_url=os.environ["AWS_ENDPOINT_URL"], github_api_url=github_standin.url,
                     public_url=public)
    with BackgroundServer(app) as srv, GatewayZone(srv.url + "/zones/alice/x", ALICE) as z:
        k, data = obj(b"redirected")
        z.put(k, data)
        r = requests.get(z.public_url(k), headers={"Range": "bytes=0-3"}, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"] == f"{public}/zones/alice/x/{k}"


def test_large_upload_goes_multipart_and_verifies(s3_bucket, github_standin, tmp_path):
    from lindivc.server.bucket import Bucket

    b = Bucket(s3_bucket, os.environ["AWS_ENDPOINT_URL"], multipart_threshold=6 << 20, multipart_chunksize=5 << 20)
    app = create_app(b, github_api_url=github_standin.url)
    data = os.urandom(13 << 20)
    k, _ = obj(data)
    (tmp_path / "pack").write_bytes(data)
    with BackgroundServer(app) as srv, GatewayZone(srv.url + "/zones/alice/x", ALICE) as z:
        etag = z.put_file(k, str(tmp_path / "pack"))
        assert etag.endswith("-3")  # three parts
        assert hashlib.sha1(z.get(k)).hexdigest() == k.rsplit("/", 1)[1]


def test_lindivc_serve_command_runs_a_gateway(s3_bucket, github_standin, tmp_path):
    """The `lindivc serve` command as a user runs it: a real process answering on loopback."""
    import socket
    import subprocess
    import sys
    import time

    import requests

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "lindivc.cli", "serve", "--bucket", s3_bucket,
                             "--endpoint-url", os.environ["AWS_ENDPOINT_URL"], "--port", str(port),
                             "--github-api-url", github_standin.url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                r = requests.get(f"{base}/api/now", timeout=1)
                break
            except requests.ConnectionError:
                assert time.time() < deadline and proc.poll() is None, "lindivc serve did not start"
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["now"] > 0
        who = requests.get(f"{base}/api/whoami", headers={"Authorization": "token tok-alice"}, timeout=5)
        assert who.json()["login"] == "alice"
        assert requests.put(f"{base}/zones/bob/x/pins/p1", data=b"{}", timeout=5).status_code == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "tok-alice" not in out  # tokens never reach the log
