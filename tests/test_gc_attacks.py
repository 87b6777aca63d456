"""Issue 10's attacks on zone GC, each over real HTTP (the gateway under uvicorn on loopback, moto
S3, the GitHub stand-in): documents other users wrote can only add roots. GC never crashes on
them, never fetches a URL or opens a path they name, never uses the runner's credentials for
them, reports each one it cannot use, and still deletes the true garbage."""
from __future__ import annotations

import builtins
import contextlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.client
import numpy as np
import pytest
from click.testing import CliRunner

import lindivc
from lindivc import gc, pinning
from lindivc.cli import cli
from lindivc.catalog import update_info
from lindivc.documents import BorrowedChunk, BorrowRecord, ByteRange, Pin, parse_pin
from lindivc.fetch import clone
from lindivc.layout import index_key, object_key
from lindivc.packs import PackIndex
from lindivc.push import push
from lindivc.zones import open_zone
from lindivc.zones.gateway import GatewayZone
from test_gc import make_repo, orphan, read_all

ALICE, BOB = "tok-alice", "tok-bob"
NOW = ["--grace", "now", "--i-know-grace-now"]


def s3():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def keys(bucket: str, prefix: str) -> set[str]:
    out, token = set(), None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        resp = s3().list_objects_v2(**kw)
        out |= {o["Key"] for o in resp.get("Contents", [])}
        if not resp.get("IsTruncated"):
            return out
        token = resp["NextContinuationToken"]


def put_raw(bucket: str, key: str, body: bytes) -> None:
    """Write straight to S3, past the gateway (what an attacker with bucket access could do)."""
    s3().put_object(Bucket=bucket, Key=key, Body=body)


class Victim:
    """Alice's repository pushed to ``zones/alice/x`` through the gateway (one object per chunk),
    then rewritten and force-pushed: the objects of its first push are garbage."""

    def __init__(self, tmp_path, gateway: str, bucket: str, monkeypatch) -> None:
        monkeypatch.setenv("GITHUB_TOKEN", ALICE)
        self.bucket, self.gateway = bucket, gateway
        self.url = f"{gateway}/zones/alice/x"
        self.repo, self.name = make_repo(tmp_path / "alice", seed=31, n_chunks=4, pack_size=50_000)
        self.repo.config.add_remote("origin", self.url)
        push(self.repo)
        self.garbage = self.objects()
        with lindivc.open(self.repo.abspath(self.name), "r+") as f:
            f["d"][:] = np.random.default_rng(32).standard_normal(f["d"].shape[0])
        self.repo.commit("new data", all=True)
        orphan(self.repo)
        push(self.repo, force=True)
        self.live = self.objects() - self.garbage
        assert len(self.garbage) == 4 and len(self.live) == 4
        monkeypatch.chdir(self.repo.root)

    def objects(self) -> set[str]:
        return {k.rsplit("/", 1)[1] for k in keys(self.bucket, "zones/alice/x/sha1/")}

    def zone(self):
        return open_zone(self.url, token=ALICE)

    def gc(self, *args: str) -> dict:
        """Alice's `lindivc gc --remote origin --prune` (all garbage is old: grace now); its JSON report."""
        time.sleep(1.1)  # S3 LastModified has one-second resolution
        res = CliRunner().invoke(cli, ["gc", "--remote", "origin", "--prune", "--json", *NOW, *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    def file_referencing(self, sha: str, templated: bool = False) -> bytes:
        """A LINDI file (of another user) reading all of Alice's object ``sha`` by byte range."""
        size = s3().head_object(Bucket=self.bucket, Key=f"zones/alice/x/{object_key(sha)}")["ContentLength"]
        if templated:
            return json.dumps({"refs": {".zgroup": {"zarr_format": 2}, "d/0": ["{{a}}/" + object_key(sha), 0, size]},
                               "templates": {"a": self.url}}).encode()
        return json.dumps({"refs": {"d/0": [f"{self.url}/{object_key(sha)}", 0, size]}}).encode()


@pytest.fixture
def victim(tmp_path, gateway, s3_bucket, monkeypatch):
    return Victim(tmp_path, gateway, s3_bucket, monkeypatch)


class Counting(ThreadingHTTPServer):
    """A loopback HTTP server that answers every request 200 and counts them."""

    def __init__(self) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_HEAD = do_POST = do_PUT = do_GET

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@contextlib.contextmanager
def watch_io(monkeypatch):
    """Record every path this process opens and every S3 call it makes (the gateway's included)."""
    opened: list[str] = []
    calls: list[tuple[str, dict]] = []
    real_open, real_call = builtins.open, botocore.client.BaseClient._make_api_call

    def rec_open(file, *a, **k):
        opened.append(os.fspath(file) if isinstance(file, (str, bytes, os.PathLike)) else repr(file))
        return real_open(file, *a, **k)

    def rec_call(self, op, params):
        calls.append((op, dict(params)))
        return real_call(self, op, params)

    monkeypatch.setattr(builtins, "open", rec_open)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", rec_call)
    try:
        yield opened, calls
    finally:
        monkeypatch.setattr(builtins, "open", real_open)
        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", real_call)


# ------------------------------------------------------------------ published files


MALFORMED = {
    "template-not-a-string.lindi.json": b'{"refs":{"a":["{{u}}sha1/00",0,1]},"templates":{"u":5}}',
    "templates-a-list.lindi.json": b'{"refs":{"a":["x",0,1]},"templates":[1]}',
    "refs-not-lists.lindi.json": b'{"refs":{"a":{"b":1},"c":5,"d":[1,2],"e":["u",0.5,1],"f":[null,0,1]}}',
    "refs-a-list.lindi.json": b'{"refs":[["x",0,1]]}',
    "not-json.lindi.json": b"\xff\xfe{{{",
    "deep.lindi.json": b"[" * 100_000 + b"]" * 100_000,
}


def test_bobs_malformed_published_files_do_not_stop_alices_gc(victim):
    with GatewayZone(victim.gateway + "/zones/bob/p", BOB) as bob:
        for name, body in MALFORMED.items():
            bob.put(f"f/{name}", body)
        kept = sorted(victim.garbage)[0]
        bob.put("f/honest.lindi.json", victim.file_referencing(kept, templated=True))
    report = victim.gc()
    invalid = {(d["zone"], d["key"]) for d in report["invalid"]}
    assert invalid == {(victim.gateway + "/zones/bob/p", f"f/{n}") for n in MALFORMED}
    assert all(d["reason"] and "\n" not in d["reason"] for d in report["invalid"])
    assert victim.objects() == victim.live | {kept}  # true garbage gone, what Bob's honest file reads kept
    read_all(victim.repo.abspath(victim.name))
    # the text report names each too, one line each
    res = CliRunner().invoke(cli, ["gc", "--remote", "origin"])
    assert res.exit_code == 0 and res.output.count("invalid: ") == len(MALFORMED)
    assert "template-not-a-string" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------ pins GC must never follow


def test_pins_naming_urls_and_paths_are_never_followed(victim, monkeypatch):
    trap = Counting()
    targets = ["/dev/zero", f"{trap.url}/x.lindi.json", "s3://other/secret", "/etc/hostname",
               f"file://{trap.url}", "http://169.254.169.254/latest/meta-data/"]
    some = sorted(victim.garbage)[1]
    for i, target in enumerate(targets):
        base = f"zones/alice/x/pins/bob.t{i}"
        put_raw(victim.bucket, base + "-old", json.dumps({"file": target}).encode())  # the documents
        put_raw(victim.bucket, base + "-v1", json.dumps({"format": "lindivc-pin/1", "by": "external", "file": target,
                                                         "objects": [], "created": 1}).encode())
        put_raw(victim.bucket, base + "-v2", Pin("file", target, time.time(), "bob", chunks=("0" * 40,)).to_bytes())
    # a legacy pin/1 that lists an object keeps that object, and its URL is still not read
    put_raw(victim.bucket, "zones/alice/x/pins/url-legacy",
            json.dumps({"format": "lindivc-pin/1", "by": "external", "file": f"{trap.url}/legacy",
                        "objects": [some], "created": 1}).encode())
    with watch_io(monkeypatch) as (opened, calls):
        dry = CliRunner().invoke(cli, ["gc", "--remote", "origin", "--json", *NOW])
        assert dry.exit_code == 0, dry.output
        report = victim.gc()
    assert trap.hits == 0
    assert not {"/dev/zero", "/etc/hostname"} & set(opened)
    assert not [c for c in calls if c[1].get("Bucket") == "other"]
    invalid = {d["key"] for d in report["invalid"]}
    assert invalid == {f"pins/bob.t{i}-{v}" for i in range(len(targets)) for v in ("old", "v1")}
    assert any("lindivc-pin/1" in n for n in report["notes"])
    assert victim.objects() == victim.live | {some}


# ------------------------------------------------------------------ junk pins


JUNK_PINS = {
    "bob.list": b"[]",
    "bob.str": b'"x"',
    "bob.created": b'{"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": "x", "chunks": ["' +
                   b"a" * 40 + b'"]}',
    "bob.chunks": b'{"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "chunks": "all"}',
    "bob.kind": b'{"format": "lindivc-pin/2", "kind": 7, "label": "u", "created": 1, "chunks": []}',
    "bob.ranges": b'{"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "ranges": [["x", -1]]}',
    "bob.bytes": b"\xff\xfe\x00",
    "bob.null": b"null",
}


def test_junk_pins_are_reported_and_keep_nothing(victim):
    for pid, body in JUNK_PINS.items():
        put_raw(victim.bucket, f"zones/alice/x/pins/{pid}", body)
    put_raw(victim.bucket, "zones/alice/x/pins/bob.huge", b"{" + b" " * (gc.MAX_PIN_BYTES + 1) + b"}")
    res = CliRunner().invoke(cli, ["pin", "--list"])
    assert res.exit_code == 0 and "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == len(JUNK_PINS) + 1 and all("keeps nothing: " in line for line in lines)
    assert "bob.huge\tkeeps nothing: invalid: larger than the limit" in res.output
    listed = json.loads(CliRunner().invoke(cli, ["pin", "--list", "--json"]).output)
    assert {p["id"] for p in listed if p["problem"]} == set(JUNK_PINS) | {"bob.huge"}
    report = victim.gc()
    assert {d["key"] for d in report["invalid"]} == {f"pins/{p}" for p in JUNK_PINS} | {"pins/bob.huge"}
    assert victim.objects() == victim.live
    # the owner removes them; recreating them under new ids changes nothing either
    for pid in list(JUNK_PINS)[:2]:
        assert CliRunner().invoke(cli, ["pin", "--remove", pid]).exit_code == 0
    put_raw(victim.bucket, "zones/alice/x/pins/bob.again", b"[]")
    assert victim.gc()["deleted"] == 0  # nothing left to delete, and GC still completes


def test_pin_count_limit_reads_the_oldest_pins_of_each_writer(victim, monkeypatch):
    monkeypatch.setattr(gc.pins, "MAX_PINS_PER_WRITER", 3)
    garbage = sorted(victim.garbage)
    carol = Pin("file", "https://carol.example/f", 1.0, "carol", chunks=(garbage[0],)).to_bytes()
    put_raw(victim.bucket, "zones/alice/x/pins/carol.0", carol)
    for i in range(5):  # bob's first three are read, the two newest skipped
        put_raw(victim.bucket, f"zones/alice/x/pins/bob.{i}",
                Pin("file", "https://bob.example/f", 1.0, "bob", chunks=(garbage[1 + (i % 3)],)).to_bytes())
        time.sleep(1.05)
    report = victim.gc()
    skipped = {d["key"] for d in report["invalid"]}
    assert skipped == {"pins/bob.3", "pins/bob.4"}
    assert all("limit of 3 pins per writer" in d["reason"] for d in report["invalid"])
    assert victim.objects() == victim.live | set(garbage)


# ------------------------------------------------------------------ pins carry their roots


def test_pin_refresh_list_remove_through_the_gateway(victim):
    """Bob pins his derivative (served from his own web server) into Alice's zone: the pin carries
    the byte ranges; GC keeps them without asking Bob's server; --refresh follows a change."""
    garbage, live = sorted(victim.garbage), sorted(victim.live)
    page = {"body": victim.file_referencing(garbage[0]), "hits": 0}
    gone_body = victim.file_referencing(garbage[1])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a) -> None:
            pass

        def do_GET(self) -> None:
            page["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(page["body"])))
            self.end_headers()
            self.wfile.write(page["body"])

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/derived.lindi.json"
    bob = GatewayZone(victim.url, BOB)
    res = pinning.pin(bob, url)
    assert res.id.startswith("bob.url-") and res.pin.by == "bob" and res.pin.ranges[0].object == garbage[0]
    assert page["hits"] == 1
    assert victim.gc()["invalid"] == [] and victim.objects() == victim.live | {garbage[0]}
    assert page["hits"] == 1  # GC never asked Bob's server
    # the file changes: bob refreshes, and the pin keeps what it reads now
    page["body"] = victim.file_referencing(live[0])
    (done,) = pinning.refresh_pins(bob)
    assert done.error is None and done.result.id == res.id and done.result.pin.ranges[0].object == live[0]
    victim.gc()
    assert victim.objects() == victim.live
    # a file that reads only what is gone: the refresh fails and says so, the pin stays as it was
    page["body"] = gone_body
    (done,) = pinning.refresh_pins(bob, url)
    assert done.result is None and "references no object" in done.error
    # alice lists it; bob removes it (his own pin), through the CLI's library calls
    listed = CliRunner().invoke(cli, ["pin", "--list"])
    assert listed.exit_code == 0 and f"{res.id}\tfile {url}\t1 range" in listed.output
    gc.unpin(bob, res.id)
    assert CliRunner().invoke(cli, ["pin", "--list"]).output.strip() == "no pins"
    srv.shutdown()


def test_borrowing_through_the_gateway_leaves_a_pin_that_gc_keeps_then_drops(victim, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", BOB)
    b = clone(victim.url, str(tmp_path / "b"), objects=True)
    b.config.add_remote("mine", victim.gateway + "/zones/bob/y")
    with lindivc.open(b.abspath(victim.name), "r+") as f:
        f.attrs["derived"] = "yes"
    b.commit("derivative", all=True)
    assert push(b, "mine").chunks_borrowed == 4
    (key,) = keys(victim.bucket, "zones/alice/x/pins/")
    pid = key.rsplit("/", 1)[1]
    pin = parse_pin(s3().get_object(Bucket=victim.bucket, Key=key)["Body"].read())
    assert pid.startswith("bob.") and pin.kind == "borrow" and pin.by == "bob" and len(pin.ranges) == 4
    assert pin.label == victim.gateway + "/zones/bob/y"
    zone = victim.zone()
    plan = gc.plan_zone(zone, grace=3600, use_cache=False, cache_dir=str(tmp_path / "c"))
    assert plan.invalid == [] and "pin" not in plan.counts()
    # past the grace period bob's published file speaks for the borrowed chunks: the pin goes
    plan = gc.plan_zone(zone, grace=3600, now=zone.now() + 7200, use_cache=False, cache_dir=str(tmp_path / "c"))
    assert [d.key for d in plan.delete if d.kind == "pin"] == [f"pins/{pid}"]
    gc.sweep_zone(zone, plan)
    assert keys(victim.bucket, "zones/alice/x/pins/") == set()
    read_all(os.path.join(str(tmp_path / "b"), victim.name))
    c = clone(victim.gateway + "/zones/bob/y", str(tmp_path / "carol"))  # its borrow record names a lender of the cloud
    assert c.catalogs()[0].invalid == [] and c.catalogs()[0].borrowed
    read_all(c.abspath(victim.name))
    monkeypatch.setenv("GITHUB_TOKEN", ALICE)
    assert victim.gc()["invalid"] == [] and victim.objects() == victim.live


def test_a_borrow_record_naming_a_lender_outside_the_cloud_is_left_out(victim, tmp_path, monkeypatch):
    """Bob's zone claims to borrow from a host of his choosing: a clone never sends it anything
    (not the cloner's token either); the record is left out of the catalog."""
    trap = Counting()
    monkeypatch.setenv("GITHUB_TOKEN", BOB)
    b = clone(victim.url, str(tmp_path / "b"), objects=True)
    b.config.add_remote("mine", victim.gateway + "/zones/bob/y")
    push(b, "mine", borrow=False)
    rec = BorrowRecord(f"{trap.url}/zones/evil/z", f"{trap.url}/zones/evil/z/",
                       (BorrowedChunk("a" * 40, "b" * 40, 0, 10),), 1.0)
    with GatewayZone(victim.gateway + "/zones/bob/y", BOB) as z:
        z.put("borrow/" + "c" * 40, rec.to_bytes())
        update_info(z, "borrow", ["c" * 40])
    monkeypatch.setenv("GITHUB_TOKEN", ALICE)
    c = clone(victim.gateway + "/zones/bob/y", str(tmp_path / "carol"))
    cat = c.catalogs()[0]
    assert [e.key for e in cat.invalid] == ["borrow/" + "c" * 40] and "not a zone of the cloud" in cat.invalid[0].reason
    read_all(c.abspath(victim.name))
    assert trap.hits == 0


# ------------------------------------------------------------------ churn


def test_gc_finishes_under_pin_churn_and_keeps_what_new_pins_name(tmp_path, s3_bucket, monkeypatch):
    """A new pin every 0.1-0.25 s while GC runs over a moto zone: GC completes, deletes the true
    garbage, and keeps every object a pin named while its index was still there (a pinner that
    writes its pin, then sees the index, may rely on the object: `lindivc pin` checks so)."""
    url = f"s3://{s3_bucket}/zones/alice/x"
    r, name = make_repo(tmp_path / "a", seed=41, n_chunks=2)
    r.config.add_remote("origin", url)
    push(r)
    zone = open_zone(url)
    garbage = []
    for i in range(60):
        data = f"garbage {i}".encode() * 50
        sha = lindivc.objects.sha1_bytes(data)
        zone.put(object_key(sha), data)
        zone.put(index_key(sha), PackIndex.single(sha, len(data)).to_bytes())
        garbage.append(sha)
    time.sleep(1.1)
    real_delete = zone.delete

    def slow_delete(key):  # a slower store: the sweep takes a few seconds
        time.sleep(0.03)
        real_delete(key)

    zone.delete = slow_delete
    pinned: list[tuple[str, bool]] = []
    stop = threading.Event()
    churner = open_zone(url)

    def churn():
        rng = np.random.default_rng(5)
        i = 0
        while not stop.is_set():
            sha = garbage[int(rng.integers(0, 40))]
            pin = Pin("file", f"https://bob.example/{i}", time.time(), "bob",
                      ranges=(ByteRange(sha, 0, 10),) if i % 2 else (), chunks=() if i % 2 else (sha,))
            churner.put(f"pins/bob.churn{i}", pin.to_bytes())
            pinned.append((sha, churner.exists(index_key(sha))))
            i += 1
            stop.wait(float(rng.uniform(0.1, 0.25)))

    t = threading.Thread(target=churn)
    t.start()
    try:
        time.sleep(0.3)
        plan = gc.gc_zone(zone, prune=True, grace=gc.parse_grace("now", allow_now=True),
                          cache_dir=str(tmp_path / "c"))
    finally:
        stop.set()
        t.join()
    assert plan.swept and plan.roots.late >= 3, plan.roots
    assert any("a root that appeared while GC ran" in n for n in plan.notes)  # late pins did keep objects
    relied = {sha for sha, seen in pinned if seen}
    left = {k.rsplit("/", 1)[1] for k in keys(s3_bucket, "zones/alice/x/sha1/")}
    left_idx = {k.rsplit("/", 1)[1] for k in keys(s3_bucket, "zones/alice/x/idx/")}
    assert relied <= left and relied <= left_idx, relied - left
    assert not (set(garbage[40:]) & left)  # never pinned: deleted
    read_all(r.abspath(name))


# ------------------------------------------------------------------ pins under zones that do not exist


def test_pins_under_zones_that_do_not_exist_do_not_slow_gc(victim, monkeypatch):
    zone = victim.zone()

    def timed() -> float:
        t = time.perf_counter()
        plan = gc.plan_zone(zone, grace=0, use_cache=False, cache_dir=str(victim.repo.root) + "/.c")
        assert plan.invalid == []
        return time.perf_counter() - t

    timed()  # warm: the history mirror
    base = min(timed() for _ in range(3))
    pin = Pin("file", "https://x.example/f", 1.0, "bob", chunks=("a" * 40,)).to_bytes()
    with GatewayZone(victim.gateway + "/zones/torvalds/linux", BOB) as z:
        for i in range(400):  # through the gateway: refused, nothing stored
            with pytest.raises(lindivc.errors.ZoneKeyMissing):
                z.put(f"pins/bob.x{i}", pin)
    assert keys(victim.bucket, "zones/torvalds/") == set()
    after = min(timed() for _ in range(3))
    assert after < 1.5 * base + 0.2, (base, after)
    # past the gateway (straight to the bucket): GC never reads another zone's pins; such a
    # "zone" costs two listings (f/, v/) and nothing else
    for i in range(100):
        put_raw(victim.bucket, f"zones/u{i % 10}/z{i}/pins/bob.x", pin)
    with watch_io(monkeypatch) as (_, calls):
        timed()
    junk = [c for c in calls if "/z" in c[1].get("Prefix", c[1].get("Key", "")) and "zones/alice/" not in
            c[1].get("Prefix", c[1].get("Key", ""))]
    assert not [c for c in junk if c[0] != "ListObjectsV2"]  # nothing under them is read
    assert len(junk) <= 2 * 100
