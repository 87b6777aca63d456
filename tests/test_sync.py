"""Push, fetch, pull and clone against local zones, a real moto S3 server, and the gateway."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import boto3
import lindi
import numpy as np
import pynwb
import pytest

import lindivc
from lindivc.errors import (ChecksumMismatch, InvalidKey, LindivcError, MergeInProgress, NonFastForward, ZoneError,
                            ZoneUnreachable)
from lindivc.importer import import_file
from lindivc.repo import Repository
from lindivc.fetch import clone, fetch, pull
from lindivc.merge import abort_merge
from lindivc.push import push
from lindivc.testdata import make_nwb

CHUNK = 250_000  # float64 -> 2 MB chunks


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "session.nwb"), n_units=6, duration=30, n_channels=4,
                    lfp_seconds=1)


def _data(n_chunks: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n_chunks * CHUNK)


def _make_repo(path, nwb_path, n_chunks=6, seed=0) -> tuple[Repository, str, np.ndarray]:
    r = Repository.init(str(path))
    rel = import_file(r, nwb_path, ingest=True)
    data = _data(n_chunks, seed)
    with lindivc.open(r.abspath(rel), "r+") as f:
        f.create_dataset("derived", data=data, chunks=(CHUNK,))
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            nwb.units.add_column(name="quality", description="q", data=[float(i) for i in range(6)])
            io.write(nwb)
    r.commit("initial", all=True)
    return r, rel, data


def _read_plain(path: str) -> tuple[np.ndarray, list]:
    f = lindi.LindiH5pyFile.from_lindi_file(path)
    arr = f["derived"][:]
    with pynwb.NWBHDF5IO(file=f, mode="r") as io:
        q = list(io.read().units["quality"].data[:])
    return arr, q


def _bucket_objects(bucket: str) -> dict[str, int]:
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


# ------------------------------------------------------------------ local zone


def test_push_clone_local_zone_reads_back_with_lindi_pynwb_fsspec(tmp_path, nwb_path):
    r, rel, data = _make_repo(tmp_path / "a", nwb_path)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    res = push(r, "origin")
    assert res.chunks_uploaded >= 6 and res.packs_uploaded >= 1
    assert os.path.exists(os.path.join(zone, "f", rel))
    # fresh clone without the original objects
    c = clone(zone, str(tmp_path / "b"))
    assert sorted(c.objects) == []
    arr, q = _read_plain(c.abspath(rel))
    np.testing.assert_array_equal(arr, data)
    assert q == [float(i) for i in range(6)]
    # the published file is an ordinary LINDI file: lindi and fsspec+zarr read it
    pub = os.path.join(zone, "f", rel)
    np.testing.assert_array_equal(_read_plain(pub)[0], data)
    import fsspec
    import json
    import zarr

    with open(pub) as fh:
        rfs = json.load(fh)
    fs = fsspec.filesystem("reference", fo=rfs)
    z = zarr.open(fs.get_mapper(""), mode="r")
    np.testing.assert_array_equal(z["derived"][:], data)
    # the cloned repository's status is clean and its log matches
    assert c.status().clean
    assert c.history.head() == r.history.head()
    # the clone's history passes git fsck
    subprocess.run(["git", "--git-dir", os.path.join(c.lvc, "git"), "fsck"], check=True, capture_output=True)


def test_published_file_read_over_http_with_range(tmp_path, nwb_path):
    from lindivc.rangeserver import serve_directory

    r, rel, data = _make_repo(tmp_path / "a", nwb_path, n_chunks=3)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    push(r)
    with serve_directory(zone) as srv:
        # the zone served over HTTP: clone from it read-only, read data by range requests
        c = clone(srv.url, str(tmp_path / "c"))
        arr, _ = _read_plain(c.abspath(rel))
        np.testing.assert_array_equal(arr, data)
        arr2 = lindi.LindiH5pyFile.from_lindi_file(f"{srv.url}/f/{rel}")["derived"][:]
        np.testing.assert_array_equal(arr2, data)


def test_noop_push_and_one_chunk_change(tmp_path, nwb_path, s3_bucket):
    r, rel, data = _make_repo(tmp_path / "a", nwb_path)
    r.config.add_remote("origin", f"s3://{s3_bucket}/zones/alice/a")
    push(r)
    before = _bucket_objects(s3_bucket)
    res = push(r)
    assert res.up_to_date and res.chunk_bytes == 0
    assert _bucket_objects(s3_bucket) == before
    # change one chunk
    with lindivc.open(r.abspath(rel), "r+") as f:
        f["derived"][:10] = 0.0
    r.commit("change one chunk", all=True)
    res = push(r)
    assert res.chunks_uploaded == 1 and 1_000_000 < res.chunk_bytes <= CHUNK * 8 + 1000
    after = _bucket_objects(s3_bucket)
    new = {k: v for k, v in after.items() if k not in before or after[k] != before[k]}
    new_sha1 = [k for k in new if "/sha1/" in k]
    assert len(new_sha1) == 1 and new[new_sha1[0]] == res.chunk_bytes
    meta = [k for k in new if "/sha1/" not in k]  # everything else is metadata
    assert all(k.split("/")[3] in ("f", "v", "git", "idx", "info") for k in meta), meta


def test_push_clone_s3_reads_through_lindivc_open(tmp_path, nwb_path, s3_bucket):
    r, rel, data = _make_repo(tmp_path / "a", nwb_path)
    url = f"s3://{s3_bucket}/zones/alice/a"
    r.config.add_remote("origin", url)
    push(r)
    c = clone(url, str(tmp_path / "b"))
    with lindivc.open(c.abspath(rel), "r") as f:  # private bucket: read with the user's credentials
        np.testing.assert_array_equal(f["derived"][:], data)
        with pynwb.NWBHDF5IO(file=f, mode="r") as io:
            assert list(io.read().units["quality"].data[:]) == [float(i) for i in range(6)]
    # --objects downloads the chunks: plain lindi then reads offline
    c2 = clone(url, str(tmp_path / "c"), objects=True)
    assert len(list(c2.objects)) >= 6
    np.testing.assert_array_equal(_read_plain(c2.abspath(rel))[0], data)


def test_interrupted_push_resumes_without_reupload(tmp_path, nwb_path):
    r, rel, data = _make_repo(tmp_path / "a", nwb_path, n_chunks=40)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    r.config.data["core"]["pack_size"] = 4 * 2**20  # two chunks per pack: many packs
    r.config.save()
    env = dict(os.environ, LINDIVC_UPLOAD_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "lindivc.cli", "push"], cwd=r.root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    idx_dir = os.path.join(zone, "idx")
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:
        if os.path.isdir(idx_dir) and len(os.listdir(idx_dir)) >= 3:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sorted(os.listdir(idx_dir))
    assert 3 <= len(done) < 20, "the push was not interrupted midway"
    mtimes = {n: os.path.getmtime(os.path.join(zone, "sha1", n[:2], n[2:4], n[4:6], n)) for n in done}
    assert not os.path.exists(os.path.join(zone, "git", "refs", "heads", "main"))
    # the killed push's temporary packs are outside the object store: the repository checks clean
    from lindivc.fsck import fsck_local
    from lindivc.repo import Repository

    r = Repository(r.root)
    report = fsck_local(r)
    assert report.ok, [str(p) for p in report.problems]
    assert not [o for o in r.objects if r.packs.is_pack(o) or os.path.getsize(r.objects.path(o)) > 3 * 2**20]
    scratch = os.path.join(r.lvc, "tmp")
    os.makedirs(os.path.join(scratch, "push-stale"), exist_ok=True)
    with open(os.path.join(scratch, "push-stale", "x"), "wb") as f:
        f.write(b"left by a push killed long ago")
    assert all(n.startswith("push-") for n in os.listdir(scratch))  # the killed push's, if any
    for n in os.listdir(scratch):  # as if killed two days ago: the next push removes them
        os.utime(os.path.join(scratch, n), (time.time() - 2 * 86400,) * 2)
    os.makedirs(os.path.join(scratch, "push-fresh"))  # another push's, still young: kept
    res = push(r)
    assert res.packs_uploaded == 20 - len(done)  # finished packs were not sent again
    assert os.listdir(scratch) == ["push-fresh"]
    for n, m in mtimes.items():
        assert os.path.getmtime(os.path.join(zone, "sha1", n[:2], n[2:4], n[4:6], n)) == m
    from lindivc.fsck import fsck_zone
    from lindivc.zones import open_zone

    report = fsck_zone(open_zone(zone), read_data=True)
    assert report.ok, [str(p) for p in report.problems]
    c = clone(zone, str(tmp_path / "b"))
    np.testing.assert_array_equal(_read_plain(c.abspath(rel))[0], data)


def test_divergent_pushes_one_wins_then_pull_merges(tmp_path, nwb_path):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path, n_chunks=2)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    push(r)
    x = clone(zone, str(tmp_path / "x"))
    y = clone(zone, str(tmp_path / "y"))
    # x changes the session file; y adds a new file
    with lindivc.open(x.abspath(rel), "r+") as f:
        f.attrs["x_note"] = "from x"
    x.commit("x edits", all=True)
    import shutil

    shutil.copy(y.abspath(rel), os.path.join(y.root, "other.lindi.json"))
    y.add([os.path.join(y.root, "other.lindi.json")])
    y.commit("y adds a file")
    push(x)
    with pytest.raises(NonFastForward, match="pull"):
        push(y)
    assert y.history.ref("refs/heads/main") != x.history.head()  # nothing lost locally
    pr = pull(y)
    assert pr.kind == "merge"
    push(y)
    z = clone(zone, str(tmp_path / "z"))
    assert set(z.tracked()) == {rel, "other.lindi.json"}
    assert "x_note" in lindi.LindiH5pyFile.from_lindi_file(z.abspath(rel)).attrs


def test_pull_conflict_on_same_attribute_stops_before_writing(tmp_path, nwb_path):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path, n_chunks=2)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    push(r)
    x = clone(zone, str(tmp_path / "x"))
    for repo, v in ((r, "r"), (x, "x")):
        with lindivc.open(repo.abspath(rel), "r+") as f:
            f.attrs["who"] = v
        repo.commit(v, all=True)
    push(x)
    head = r.history.head()
    before = open(r.abspath(rel), "rb").read()
    pr = pull(r)
    assert pr.kind == "conflicts" and pr.new is None
    assert [c.description for c in pr.merge.conflicts] == [f"{rel}: both added attribute 'who' of /: \"r\" vs \"x\""]
    assert r.history.head() == head and open(r.abspath(rel), "rb").read() == before
    with pytest.raises(MergeInProgress):
        pull(r)
    abort_merge(r)
    assert r.history.head() == head and open(r.abspath(rel), "rb").read() == before


def test_borrowing_uploads_only_new_chunks(tmp_path, nwb_path, s3_bucket):
    a, rel, data = _make_repo(tmp_path / "a", nwb_path)
    a_url = f"s3://{s3_bucket}/zones/alice/a"
    a.config.add_remote("origin", a_url)
    push(a)
    # bob clones alice's zone and publishes a derivative in his own zone of the same bucket
    b = clone(a_url, str(tmp_path / "b"))
    b.config.add_remote("mine", f"s3://{s3_bucket}/zones/bob/b")
    extra = np.random.default_rng(9).standard_normal(CHUNK)
    with lindivc.open(b.abspath(rel), "r+") as f:
        f.create_dataset("bob_extra", data=extra, chunks=(CHUNK,))
    b.commit("derivative", all=True)
    before = _bucket_objects(s3_bucket)
    res = push(b, "mine")
    assert res.chunks_uploaded == 1 and res.chunks_borrowed >= 6
    after = _bucket_objects(s3_bucket)
    new_data = {k: v for k, v in after.items() if k not in before and "/sha1/" in k}
    assert list(new_data.values()) == [res.chunk_bytes]
    assert any(k.startswith("zones/alice/a/pins/") for k in after)  # a pin in the lending zone
    c = clone(f"s3://{s3_bucket}/zones/bob/b", str(tmp_path / "c"))
    with lindivc.open(c.abspath(rel), "r") as f:
        np.testing.assert_array_equal(f["derived"][:], data)
        np.testing.assert_array_equal(f["bob_extra"][:], extra)
    # --no-borrow copies instead
    d = clone(a_url, str(tmp_path / "d"))
    d.config.add_remote("mine", f"s3://{s3_bucket}/zones/carol/d")
    res = push(d, "mine", borrow=False)
    assert res.chunks_borrowed == 0 and res.chunks_uploaded >= 6


def test_gateway_push_and_clone(tmp_path, nwb_path, gateway, monkeypatch):
    a, rel, data = _make_repo(tmp_path / "a", nwb_path, n_chunks=3)
    url = f"{gateway}/zones/alice/x"
    a.config.add_remote("origin", url)
    monkeypatch.setenv("GITHUB_TOKEN", "tok-alice")
    push(a)
    monkeypatch.setenv("GITHUB_TOKEN", "tok-bob")
    b = clone(url, str(tmp_path / "b"))
    arr, _ = _read_plain(b.abspath(rel))  # plain lindi reads through the gateway's public range reads
    np.testing.assert_array_equal(arr, data)
    with lindivc.open(b.abspath(rel), "r+") as f:
        f.attrs["bob"] = 1
    b.commit("bob edits", all=True)
    from lindivc.errors import AccessDenied

    with pytest.raises(AccessDenied):
        push(b)


# ------------------------------------------------------------------ bad input


def test_bad_remotes(tmp_path, nwb_path, s3_env):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path, n_chunks=1)
    with pytest.raises(LindivcError, match="unknown remote"):
        push(r, "nope")
    with pytest.raises(InvalidKey):
        r.config.add_remote("bad", "ftp://x/y")
    r.config.add_remote("gone", "s3://no-such-bucket-here/zones/a/b")
    with pytest.raises(ZoneError, match="does not exist"):
        push(r, "gone")
    r.config.add_remote("dead", "http://127.0.0.1:9/zones/a/b")
    t = time.time()
    with pytest.raises(ZoneError):
        fetch(r, "dead")
    assert time.time() - t < 30
    assert r.history.head() is not None  # nothing lost


def test_unreachable_s3_endpoint(tmp_path, nwb_path, monkeypatch):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path, n_chunks=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    r.config.add_remote("origin", "s3://some-bucket/zones/a/b")
    with pytest.raises(ZoneUnreachable):
        push(r)


def test_corrupted_pack_in_zone_detected_on_download(tmp_path, nwb_path):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path, n_chunks=4)
    zone = str(tmp_path / "zone")
    r.config.add_remote("origin", zone)
    push(r)
    packs = os.listdir(os.path.join(zone, "idx"))
    p = os.path.join(zone, "sha1", packs[0][:2], packs[0][2:4], packs[0][4:6], packs[0])
    with open(p, "r+b") as fh:
        fh.seek(100)
        b = fh.read(1)
        fh.seek(100)
        fh.write(bytes([b[0] ^ 1]))
    with pytest.raises(ChecksumMismatch):
        clone(zone, str(tmp_path / "b"), objects=True)


def test_borrow_of_a_pack_collected_meanwhile_uploads_it_instead(tmp_path, nwb_path, monkeypatch):
    import lindivc.push as push_module
    from lindivc.catalog import zone_for
    from lindivc.layout import object_key

    cloud = tmp_path / "cloud"
    a, rel, data = _make_repo(tmp_path / "a", nwb_path, n_chunks=4)
    a_url = str(cloud / "zones" / "alice" / "a")
    a.config.add_remote("origin", a_url)
    push(a)
    b = clone(a_url, str(tmp_path / "b"), objects=True)
    b.config.add_remote("mine", str(cloud / "zones" / "bob" / "b"))
    with lindivc.open(b.abspath(rel), "r+") as f:
        f.attrs["bob"] = 1
    b.commit("derivative", all=True)
    real = push_module._sibling_placements
    collected = {}

    def gc_strikes_meanwhile(repo, zone, wanted):
        found = real(repo, zone, wanted)
        victim = sorted({p.pack for p in found.values()})[0]  # alice's GC removes one pack now
        lender = zone_for(a_url)
        lender.delete(f"idx/{victim}")
        lender.delete(object_key(victim))
        collected["pack"] = victim
        collected["chunks"] = {s for s, p in found.items() if p.pack == victim}
        return found

    monkeypatch.setattr(push_module, "_sibling_placements", gc_strikes_meanwhile)
    res = push(b, "mine")
    assert res.chunks_uploaded >= len(collected["chunks"]) > 0
    c = clone(str(cloud / "zones" / "bob" / "b"), str(tmp_path / "c"))
    np.testing.assert_array_equal(_read_plain(c.abspath(rel))[0], data)


def test_push_of_a_corrupt_local_chunk_stores_nothing_for_it(tmp_path, nwb_path, s3_bucket):
    r, rel, data = _make_repo(tmp_path / "a", nwb_path, n_chunks=6)
    r.config.add_remote("origin", f"s3://{s3_bucket}/zones/alice/a")
    victim = sorted(r.objects)[len(list(r.objects)) // 2]
    p = r.objects.path(victim)
    with open(p, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatch):
        push(r)
    keys = _bucket_objects(s3_bucket)
    assert not any(k.endswith("/git/refs/heads/main") for k in keys)  # the branch was not published
    from lindivc.packs import PackIndex

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for k in keys:
        if "/idx/" in k:  # whatever was indexed is intact and does not hold the corrupt chunk
            idx = PackIndex.from_bytes(s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read())
            assert victim not in {c.sha for c in idx.chunks}
        if "/sha1/" in k:  # every stored object is whole and correct: it hashes to its name, or
            # it is a pack named by its manifest whose index is there and whose chunks all verify
            body = s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read()
            name = k.rsplit("/", 1)[1]
            if hashlib.sha1(body).hexdigest() != name:
                ikey = k.split("/sha1/")[0] + "/idx/" + name
                assert ikey in keys, f"{k}: an object that is not what its name says, without an index"
                idx = PackIndex.from_bytes(s3.get_object(Bucket=s3_bucket, Key=ikey)["Body"].read())
                assert idx.named_by_manifest and len(body) == idx.size
                assert all(hashlib.sha1(body[c.offset:c.offset + c.size]).hexdigest() == c.sha for c in idx.chunks)
