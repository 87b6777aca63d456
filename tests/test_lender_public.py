"""A lender's own public URL (`info/public`, docs/format.md 6.1, 6.3, 6.7): its owner's push
publishes it, a borrower reads it (untrusted, never fetched) and names the borrowed chunks under
it, so that the borrower's published file is readable where only the lender's public URL is;
a malformed one is ignored; GC still sees those refs as references to the lender's chunks."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import boto3
import numpy as np
import pytest
import requests
from click.testing import CliRunner

import lindivc
from lindivc import gc
from lindivc.catalog import catalog_for
from lindivc.cli import cli
from lindivc.documents import MAX_PUBLIC_BYTES, parse_public_url, public_url_document
from lindivc.errors import InvalidDocument
from lindivc.fetch import clone
from lindivc.layout import PUBLIC_KEY, validate_key
from lindivc.push import push
from lindivc.repo import Repository
from lindivc.testdata import make_nwb
from lindivc.zones import open_zone
from test_gateway import ALICE, BOB, raw
from test_gc import HOUR, age, make_repo, orphan, read_all
from test_publish import range_urls
from test_sync import _make_repo

CHUNK = 250_000  # float64 -> 2 MB chunks

# Plain lindi in a fresh interpreter: sha1 of each dataset argv[2:] of the LINDI file at argv[1].
READ_WITH_LINDI = """
import hashlib, json, sys
import lindi
f = lindi.LindiH5pyFile.from_lindi_file(sys.argv[1])
print(json.dumps({n: hashlib.sha1(f[n][()].tobytes()).hexdigest() for n in sys.argv[2:]}))
"""


def public_doc(url: str) -> bytes:
    return json.dumps({"format": "lindivc-public/1", "url": url}).encode()


# ------------------------------------------------------------------ the document


def test_public_url_document_round_trips_and_its_key_is_in_the_layout():
    assert validate_key(PUBLIC_KEY) == "info/public"
    doc = public_url_document("https://cdn.example.org/alice/a/")
    assert json.loads(doc) == {"format": "lindivc-public/1", "url": "https://cdn.example.org/alice/a/"}
    assert parse_public_url(doc) == "https://cdn.example.org/alice/a/"
    assert parse_public_url(public_doc("http://127.0.0.1:8000/")) == "http://127.0.0.1:8000/"


def test_the_documented_size_limit_is_the_codes():
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "format.md")) as f:
        spec = " ".join(f.read().split())
    assert f"Public URL `info/public` (limit {MAX_PUBLIC_BYTES >> 10} KiB)" in spec


HOSTILE = {
    "not http": public_doc("ftp://cdn.example.org/a/"),
    "a script": public_doc("javascript:alert(1)//"),
    "a file": public_doc("file:///etc/"),
    "a path": public_doc("/home/alice/zone/"),
    "no slash at the end": public_doc("https://cdn.example.org/a"),
    "no host": public_doc("https:///a/"),
    "a template": public_doc("https://cdn.example.org/{{z0}}/"),
    "a query": public_doc("https://cdn.example.org/a/?x=/"),
    "a fragment": public_doc("https://cdn.example.org/a#/"),
    "a space": public_doc("https://cdn.example.org/a b/"),
    "a newline": public_doc("https://cdn.example.org/a\n/"),
    "not ascii": public_doc("https://cdn.example.org/\u00e9/"),
    "a bad port": public_doc("https://cdn.example.org:99999/"),
    "a bad IPv6 host": public_doc("https://[::1/"),
    "too long": public_doc("https://cdn.example.org/" + "a" * 4100 + "/"),
    "huge": public_doc("https://cdn.example.org/a/")[:-1] + b", \"pad\": \"" + b"x" * (2 * MAX_PUBLIC_BYTES) + b"\"}",
    "binary": bytes(range(256)) * 4,
    "empty": b"",
    "a list": b'["https://cdn.example.org/a/"]',
    "a number": b"12",
    "no format": json.dumps({"url": "https://cdn.example.org/a/"}).encode(),
    "another format": json.dumps({"format": "lindivc-pin/2", "url": "https://cdn.example.org/a/"}).encode(),
    "url not a string": json.dumps({"format": "lindivc-public/1", "url": ["https://cdn.example.org/a/"]}).encode(),
    "url missing": json.dumps({"format": "lindivc-public/1"}).encode(),
    "deep nesting": b'{"format": "lindivc-public/1", "url": ' + b"[" * 3000 + b"]" * 3000 + b"}",
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_malformed_public_url_document_is_invalid(what):
    with pytest.raises(InvalidDocument) as e:
        parse_public_url(HOSTILE[what], "info/public")
    assert e.value.key == "info/public"


def test_the_size_limit_is_checked_without_reading_past_it():
    class Endless:
        read_bytes = 0

        def read(self, n: int) -> bytes:
            self.read_bytes += n
            return b" " * n

    s = Endless()
    with pytest.raises(InvalidDocument, match="limit"):
        parse_public_url(s)
    assert s.read_bytes == MAX_PUBLIC_BYTES + 1


# ------------------------------------------------------------------ the owner's push


def _count(r: Repository, remote: str = "origin") -> list[str]:
    seen: list[str] = []
    zone = catalog_for(r, remote).zone
    zone.client.meta.events.register("before-send.s3", lambda request, **kw: seen.append(f"{request.method} {request.url}"))
    return seen


def _info_public(bucket: str, prefix: str) -> bytes | None:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    try:
        return s3.get_object(Bucket=bucket, Key=f"{prefix}/info/public")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def test_push_writes_info_public_once_and_follows_set_url(tmp_path, s3_bucket, monkeypatch):
    r, _ = make_repo(tmp_path / "a", n_chunks=2)
    url = f"s3://{s3_bucket}/zones/alice/a"
    monkeypatch.chdir(r.root)
    run = CliRunner()
    assert run.invoke(cli, ["remote", "add", "origin", url, "--public-url", "https://cdn.example.org/a"]).exit_code == 0
    push(Repository(r.root))
    assert parse_public_url(_info_public(s3_bucket, "zones/alice/a")) == "https://cdn.example.org/a/"
    # a push with nothing to send is still one request: the URL written is remembered
    r = Repository(r.root)
    seen = _count(r)
    assert push(r).up_to_date and len(seen) == 1 and seen[0].startswith("GET "), seen
    # a new public URL is published with the head again, and info/public names it
    assert run.invoke(cli, ["remote", "set-url", "origin", "--public-url", "https://cdn2.example.org/a/"]).exit_code == 0
    r = Repository(r.root)
    res = push(r)
    assert res.up_to_date and res.public_base == "https://cdn2.example.org/a/"
    assert parse_public_url(_info_public(s3_bucket, "zones/alice/a")) == "https://cdn2.example.org/a/"
    seen = _count(r)
    assert push(r).up_to_date and len(seen) == 1, seen
    # no public URL any more: info/public goes (borrowers fall back to the zone's own prefix)
    assert run.invoke(cli, ["remote", "set-url", "origin", "--no-public-url"]).exit_code == 0
    r = Repository(r.root)
    push(r)
    assert _info_public(s3_bucket, "zones/alice/a") is None
    seen = _count(r)
    assert push(r).up_to_date and len(seen) == 1, seen


def test_a_zone_without_a_public_url_gets_no_info_public(tmp_path):
    r, _ = make_repo(tmp_path / "a", n_chunks=1)
    zone = tmp_path / "cloud" / "zones" / "alice" / "a"
    r.config.add_remote("origin", str(zone))
    push(r)
    assert not (zone / "info" / "public").exists()


def test_a_store_that_refuses_info_public_does_not_fail_the_push(tmp_path, monkeypatch):
    """A gateway older than info/public refuses the key: the push still succeeds, and a later
    push (against a store that takes it) writes it."""
    from lindivc import layout

    r, _ = make_repo(tmp_path / "a", n_chunks=1)
    zone = tmp_path / "cloud" / "zones" / "alice" / "a"
    r.config.add_remote("origin", str(zone), public_url="https://cdn.example.org/a/")
    with monkeypatch.context() as m:
        m.setattr(layout, "INFO_KEYS", ("info/idx", "info/borrow"))
        res = push(r)
    assert res.files_published and not (zone / "info" / "public").exists()
    assert push(r).up_to_date
    assert parse_public_url((zone / "info" / "public").read_bytes()) == "https://cdn.example.org/a/"


def test_gateway_stores_a_valid_info_public_from_the_owner_only(tmp_path, gateway, monkeypatch):
    r, _ = make_repo(tmp_path / "a", n_chunks=1)
    url = f"{gateway}/zones/alice/a"
    r.config.add_remote("origin", url, public_url="https://cdn.example.org/alice/a/")
    monkeypatch.setenv("GITHUB_TOKEN", ALICE)
    push(r)
    got = open_zone(url).get(PUBLIC_KEY)
    assert parse_public_url(got) == "https://cdn.example.org/alice/a/"
    path = "/zones/alice/a/info/public"
    assert raw(gateway, "PUT", path, public_doc("https://evil.example.org/"), {"Authorization": "token " + BOB})[0] == 403
    for bad in (HOSTILE["not http"], HOSTILE["binary"], HOSTILE["a template"]):
        status, body = raw(gateway, "PUT", path, bad, {"Authorization": "token " + ALICE})
        assert status == 422, body
    status, _ = raw(gateway, "PUT", path, HOSTILE["huge"], {"Authorization": "token " + ALICE})
    assert status == 413
    assert open_zone(url).get(PUBLIC_KEY) == got  # nothing refused was stored


# ------------------------------------------------------------------ the borrower


def _derive(b: Repository, name: str, value: float) -> None:
    with lindivc.open(b.abspath(name), "r+") as f:
        f.attrs["derived"] = value
    b.commit(f"derivative {value}", all=True)


def _lender_refs(zone_dir, name: str, lender_packs: set[str]) -> list[str]:
    urls = range_urls((zone_dir / "f" / name).read_bytes())
    out = [u for u in urls if u.rsplit("/", 1)[-1] in lender_packs]
    assert out
    return out


def _lender_and_borrower(tmp_path, seed: int):
    """Alice pushes to a directory cloud with a CDN public URL; Bob clones her zone and pushes a
    derivative to his own zone, borrowing her chunks. Returns (a, b, name, a_dir, b_dir, packs)."""
    cloud = tmp_path / "cloud"
    a_dir, b_dir = cloud / "zones" / "alice" / "a", cloud / "zones" / "bob" / "b"
    a, name = make_repo(tmp_path / "a", seed=seed)
    a.config.add_remote("origin", str(a_dir), public_url="https://cdn.example.org/alice/a/")
    push(a)
    packs = set(os.listdir(a_dir / "idx"))
    b = clone(str(a_dir), str(tmp_path / "b"))
    b.config.add_remote("mine", str(b_dir))
    return a, b, name, a_dir, b_dir, packs


def test_borrowed_chunks_are_published_under_the_lenders_public_url_and_malformed_ones_are_ignored(tmp_path):
    a, b, name, a_dir, b_dir, packs = _lender_and_borrower(tmp_path, 3)
    _derive(b, name, 1)
    res = push(b, "mine")
    assert res.chunks_borrowed == 5 and res.chunks_uploaded == 0
    assert all(u.startswith("https://cdn.example.org/alice/a/sha1/") for u in _lender_refs(b_dir, name, packs))
    # a lender that sends junk: the borrower falls back to the lender's own prefix, no crash
    for i, what in enumerate(sorted(HOSTILE)):
        (a_dir / "info" / "public").write_bytes(HOSTILE[what])
        _derive(b, name, 10 + i)
        res = push(b, "mine")
        assert res.chunks_borrowed == 5, what
        assert all(u.startswith(str(a_dir) + "/sha1/") for u in _lender_refs(b_dir, name, packs)), what
    # a valid one again, then none at all
    (a_dir / "info" / "public").write_bytes(public_doc("http://127.0.0.1:9/alice/"))
    _derive(b, name, 100)
    push(b, "mine")
    assert all(u.startswith("http://127.0.0.1:9/alice/sha1/") for u in _lender_refs(b_dir, name, packs))
    (a_dir / "info" / "public").unlink()
    _derive(b, name, 101)
    push(b, "mine")
    assert all(u.startswith(str(a_dir) + "/sha1/") for u in _lender_refs(b_dir, name, packs))
    np.testing.assert_array_equal(read_all(str(b_dir / "f" / name)), read_all(a.abspath(name)))


def _make_public(bucket: str, prefix: str) -> None:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            s3.put_object_acl(Bucket=bucket, Key=o["Key"], ACL="public-read")


def test_a_file_borrowing_from_a_private_bucket_reads_through_the_lenders_public_url(tmp_path, s3_bucket, gateway):
    """Alice's objects are private in the bucket; only her public URL (here the gateway, which
    reads the bucket for anyone) serves them. Bob's objects are public in the bucket. Bob's
    published file reads with plain lindi: his chunks from the bucket, hers from her URL."""
    nwb = tmp_path / "nwb" / "session.nwb"
    nwb.parent.mkdir()
    make_nwb(str(nwb), n_units=6, duration=30, n_channels=4, lfp_seconds=1)
    a, rel, data = _make_repo(tmp_path / "a", str(nwb), n_chunks=2)
    a_url, b_url = f"s3://{s3_bucket}/zones/alice/a", f"s3://{s3_bucket}/zones/bob/b"
    alice_public = f"{gateway}/zones/alice/a/"
    a.config.add_remote("origin", a_url, public_url=alice_public)
    push(a)
    b = clone(a_url, str(tmp_path / "b"))
    b.config.add_remote("mine", b_url)
    extra = np.random.default_rng(9).standard_normal(CHUNK)
    with lindivc.open(b.abspath(rel), "r+") as f:
        f.create_dataset("bob_extra", data=extra, chunks=(CHUNK,))
    b.commit("derivative", all=True)
    res = push(b, "mine")
    assert res.chunks_borrowed >= 2 and res.chunks_uploaded == 1
    _make_public(s3_bucket, "zones/bob/")
    published = res.urls[rel]
    assert published.startswith(os.environ["AWS_ENDPOINT_URL"])
    doc = requests.get(published, timeout=10).content
    urls = range_urls(doc)
    bob_prefix = f"{os.environ['AWS_ENDPOINT_URL']}/{s3_bucket}/zones/bob/b/"
    assert {u.startswith(alice_public) for u in urls} == {True, False}
    assert all(u.startswith((alice_public, bob_prefix)) for u in urls)
    # alice's bucket objects are private: her default prefix would not do
    alice_s3 = f"{os.environ['AWS_ENDPOINT_URL']}/{s3_bucket}/zones/alice/a/"
    first = next(u for u in urls if u.startswith(alice_public))
    assert requests.get(alice_s3 + first[len(alice_public):], timeout=10).status_code == 403
    expected = {n: hashlib.sha1(v.tobytes()).hexdigest() for n, v in (("derived", data), ("bob_extra", extra))}
    out = subprocess.run([sys.executable, "-c", READ_WITH_LINDI, published, *expected], capture_output=True,
                         text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == expected


# ------------------------------------------------------------------ GC


def test_gc_of_the_lender_keeps_chunks_referenced_under_its_public_url(tmp_path):
    cloud = tmp_path / "cloud"
    a_dir, b_dir = cloud / "zones" / "alice" / "a", cloud / "zones" / "bob" / "b"
    a, name = make_repo(tmp_path / "a", seed=6)
    a.config.add_remote("origin", str(a_dir), public_url="https://cdn.example.org/alice/a/")
    push(a)
    original = read_all(a.abspath(name))
    b = clone(str(a_dir), str(tmp_path / "b"))
    b.config.add_remote("mine", str(b_dir))
    _derive(b, name, 1)
    assert push(b, "mine").chunks_borrowed == 5
    packs = set(os.listdir(a_dir / "idx"))
    assert all(u.startswith("https://cdn.example.org/alice/a/") for u in _lender_refs(b_dir, name, packs))
    # alice drops the file from her history; bob's published file alone references her chunks
    orphan(a, {}, "drop everything")
    push(a, force=True)
    age(str(cloud), 2 * HOUR)
    plan = gc.gc_zone(open_zone(str(a_dir)), prune=True, grace=HOUR, cache_dir=str(tmp_path / "ca"))
    assert "pack" not in plan.counts() and plan.roots.zones == 2
    assert set(os.listdir(a_dir / "idx")) == packs
    # bob's file, read through alice's zone directory (the CDN stands for it), is intact
    doc = (b_dir / "f" / name).read_text().replace("https://cdn.example.org/alice/a/", str(a_dir) + "/")
    local = tmp_path / "local.lindi.json"
    local.write_text(doc)
    np.testing.assert_array_equal(read_all(str(local)), original)


def test_a_lender_stream_that_breaks_mid_read_keeps_the_known_url(tmp_path, monkeypatch):
    """A read of another user's info/public that fails half way (a reset connection, a botocore
    streaming error) keeps the URL the borrower knew: no traceback, the push goes on."""
    from lindivc.zones.base import ZoneReader
    from lindivc.zones.local import LocalZone
    a, b, name, a_dir, b_dir, packs = _lender_and_borrower(tmp_path, 4)
    _derive(b, name, 1)
    push(b, "mine")
    assert all(u.startswith("https://cdn.example.org/alice/a/sha1/") for u in _lender_refs(b_dir, name, packs))

    class Broken:
        def read(self, n=-1):
            raise ConnectionResetError("connection reset by peer")

        def close(self):
            pass

    real = LocalZone.open_read
    monkeypatch.setattr(LocalZone, "open_read", lambda self, key: ZoneReader(Broken(), self.url, key, (OSError,))
                        if key == PUBLIC_KEY else real(self, key))
    _derive(b, name, 2)
    res = push(b, "mine")
    assert res.chunks_borrowed == 5
    assert all(u.startswith("https://cdn.example.org/alice/a/sha1/") for u in _lender_refs(b_dir, name, packs))
