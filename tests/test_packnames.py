"""Pack names (docs/format.md section 5): new packs are named by their manifest, the list of the
chunks they hold; packs named by the SHA-1 of their bytes (the first rule) stay valid for every
reader, fsck, GC's repack, and the gateway."""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager

import numpy as np
import pytest
import requests

import lindivc
import lindivc.packstream as packstream
from lindivc import gc
from lindivc.consolidate import pack_loose
from lindivc.errors import ChecksumMismatch, LindivcError
from lindivc.fetch import clone
from lindivc.fsck import fsck_local, fsck_zone
from lindivc.layout import object_key
from lindivc.objects import ObjectStore, sha1_bytes
from lindivc.packs import (ChunkChecker, ChunkEntry, PackIndex, pack_manifest, pack_name, parse_manifest, read_chunk,
                           verify_pack)
from lindivc.packstream import PackSource, PackWriter, Segment, pack_objects
from lindivc.push import push
from lindivc.zones import open_zone
from lindivc.zones.gateway import GatewayZone

from test_fsck import flip, zpath
from test_gc import HOUR, N, age, make_repo, orphan, read_all

ALICE = "tok-alice"


def chunks(store: ObjectStore, n: int, size: int = 5000, seed: bytes = b"") -> list[str]:
    out = []
    for i in range(n):
        data = hashlib.sha256(seed + str(i).encode()).digest() * (size // 32 + 1)
        out.append(store.put_bytes(data[: size + i]))
    return sorted(out)


@contextmanager
def first_rule(monkeypatch, *stores: ObjectStore):
    """Packs written meanwhile are named by the SHA-1 of their bytes, as lindivc did before the
    manifest rule (the chunks are read from ``stores``)."""
    def old_name(entries) -> str:
        h = hashlib.sha1()
        for sha, _ in entries:
            h.update(next(s.get(sha) for s in stores if sha in s))
        return h.hexdigest()

    with monkeypatch.context() as m:
        m.setattr(packstream, "pack_name", old_name)
        yield


# ------------------------------------------------------------------ the rule


def test_new_pack_names_are_the_manifest_hash_deterministic_and_not_the_bytes_hash(tmp_path):
    a = ObjectStore(str(tmp_path / "a"), fsync=False)
    b = ObjectStore(str(tmp_path / "b"), fsync=False)
    shas = chunks(a, 4)
    for s in shas:
        b.put_bytes(a.get(s))
    [ia] = list(pack_objects(a, shas, target_size=10**9))
    [ib] = list(pack_objects(b, list(reversed(shas)), target_size=10**9))
    sizes = [(s, a.size(s)) for s in shas]
    manifest = b"lindivc-pack/1\n" + b"".join(f"{s} {n}\n".encode() for s, n in sizes)
    assert pack_manifest(sizes) == manifest == ia.manifest()
    assert ia.pack == ib.pack == hashlib.sha1(manifest).hexdigest() == pack_name(sizes)
    with open(a.path(ia.pack), "rb") as f:
        data = f.read()
    assert data == b"".join(a.get(s) for s in shas) and sha1_bytes(data) != ia.pack
    assert ia.named_by_manifest and ia.to_bytes() == ib.to_bytes()
    # the streamed pack push sends has the same name, computed without reading a byte
    src = PackSource([Segment(s, a.path(s), 0, n) for s, n in sizes])
    os.chmod(a.path(shas[0]), 0)  # unreadable: index() does no I/O
    try:
        assert src.index().to_bytes() == ia.to_bytes()
    finally:
        os.chmod(a.path(shas[0]), 0o644)
    # other chunks, or the same in other packs (another pack_size), give other names
    [ic] = list(pack_objects(a, shas[:3], target_size=10**9))
    assert ic.pack != ia.pack
    assert parse_manifest(manifest) == sizes


@pytest.mark.parametrize("bad", [
    b"", b"lindivc-pack/1\n", b"lindivc-pack/2\n" + b"a" * 40 + b" 1\n" + b"b" * 40 + b" 1\n",
    b"lindivc-pack/1\n" + b"a" * 40 + b" 1\n",  # one chunk is no pack
    b"lindivc-pack/1\n" + b"a" * 40 + b" 1\n" + b"a" * 40 + b" 1\n",  # twice the same
    b"lindivc-pack/1\n" + b"a" * 40 + b" 01\n" + b"b" * 40 + b" 1\n",  # not canonical
    b"lindivc-pack/1\n" + b"A" * 40 + b" 1\n" + b"b" * 40 + b" 1\n",
    b"lindivc-pack/1\n" + b"a" * 40 + b" -1\n" + b"b" * 40 + b" 1\n",
    b"lindivc-pack/1\n" + b"a" * 40 + b" 1\n" + b"b" * 40 + b" 1",  # no final newline
])
def test_malformed_manifests_are_refused(bad):
    with pytest.raises(ValueError):
        parse_manifest(bad)


def test_an_index_claiming_the_manifest_rule_with_gaps_is_not_named_by_it(tmp_path):
    store = ObjectStore(str(tmp_path / "o"), fsync=False)
    shas = chunks(store, 2)
    sizes = [(s, store.size(s)) for s in shas]
    name = pack_name(sizes)
    gap = PackIndex(name, sizes[0][1] + sizes[1][1] + 1,
                    (ChunkEntry(shas[0], 0, sizes[0][1]), ChunkEntry(shas[1], sizes[0][1] + 1, sizes[1][1])))
    assert not gap.named_by_manifest  # then the name must be the SHA-1 of the bytes: it is not
    good = PackSource([Segment(s, store.path(s), 0, n) for s, n in sizes]).index()
    assert good.named_by_manifest


def test_chunk_checker_finds_a_flipped_a_missing_and_an_extra_byte(tmp_path):
    store = ObjectStore(str(tmp_path / "o"), fsync=False)
    shas = chunks(store, 3)
    data = b"".join(store.get(s) for s in shas)
    listed = [(s, store.size(s)) for s in shas]
    ok = ChunkChecker(listed, "p")
    for i in range(0, len(data), 777):
        ok.update(data[i:i + 777])
    ok.finish()
    bad = bytearray(data)
    bad[len(data) // 2] ^= 1
    with pytest.raises(ChecksumMismatch):
        c = ChunkChecker(listed, "p")
        c.update(bytes(bad))
        c.finish()
    with pytest.raises(ChecksumMismatch):
        c = ChunkChecker(listed, "p")
        c.update(data[:-1])
        c.finish()
    with pytest.raises(ChecksumMismatch):
        ChunkChecker(listed, "p").update(data + b"x")


# ------------------------------------------------------------------ packs of the first rule


def test_old_named_local_packs_read_verify_and_fsck_clean(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=11)
    with first_rule(monkeypatch, r.objects):
        loose = {s: r.objects.get(s) for s in r.objects}
        pack_loose(r)
    (pack,) = r.packs.packs
    idx = r.packs.index(pack)
    with open(r.objects.path(pack), "rb") as f:
        assert sha1_bytes(f.read()) == pack and not idx.named_by_manifest
    verify_pack(r.objects, idx)
    for s, data in loose.items():
        assert read_chunk(r.objects, r.packs, s) == data
    assert fsck_local(r).ok
    flip(r.objects.path(pack), 5)
    assert [(p.kind, p.name) for p in fsck_local(r).problems] == [("corrupt-pack", pack)]


def test_a_corrupt_chunk_in_a_new_named_local_pack_is_found_by_fsck(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=12)
    pack_loose(r)
    (pack,) = r.packs.packs
    idx = r.packs.index(pack)
    assert idx.named_by_manifest and fsck_local(r).ok
    victim = idx.chunks[1]
    flip(r.objects.path(pack), victim.offset + 7)
    rep = fsck_local(r)
    assert [(p.kind, p.name) for p in rep.problems] == [("corrupt-pack", pack)]
    assert victim.sha in rep.problems[0].detail
    with pytest.raises(ChecksumMismatch):
        read_chunk(r.objects, r.packs, victim.sha)


def test_old_named_zone_packs_fsck_clean_clone_and_gc_repack_into_a_new_named_pack(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=21)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    with first_rule(monkeypatch, r.objects):
        push(r)
        with lindivc.open(r.abspath(name), "r+") as f:
            f["d"][: 3 * N] = np.random.default_rng(22).standard_normal(3 * N)  # 3 of 5 chunks replaced
        r.commit("replace three chunks", all=True)
        orphan(r)
        push(r, force=True)
    zone = open_zone(zdir)
    old = {}
    for n in os.listdir(os.path.join(zdir, "idx")):
        idx = PackIndex.from_bytes(open(os.path.join(zdir, "idx", n), "rb").read(), n)
        if len(idx.chunks) > 1:
            with open(zpath(zdir, n), "rb") as f:
                assert sha1_bytes(f.read()) == n  # named the first way
            old[n] = idx
    assert old
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).ok
    c = clone(zdir, str(tmp_path / "b"), objects=True)  # every chunk downloaded and verified
    assert len(list(c.objects)) >= 5
    age(zdir, 2 * HOUR)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    (rp,) = plan.repack
    assert rp.pack in old and plan.swept
    new = [n for n in os.listdir(os.path.join(zdir, "idx")) if n not in old]
    fresh = [PackIndex.from_bytes(open(os.path.join(zdir, "idx", n), "rb").read(), n) for n in new]
    assert any(len(i.chunks) > 1 and i.named_by_manifest for i in fresh)  # the repack's new rule
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).ok


def test_a_flipped_byte_in_an_old_named_zone_pack_is_a_corrupt_pack(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=23)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    with first_rule(monkeypatch, r.objects):
        push(r)
    zone = open_zone(zdir)
    packs = [n for n in os.listdir(os.path.join(zdir, "idx"))
             if len(PackIndex.from_bytes(open(os.path.join(zdir, "idx", n), "rb").read()).chunks) > 1]
    flip(zpath(zdir, packs[0]), 3)
    kinds = {(p.kind, p.name) for p in fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).problems}
    assert ("corrupt-pack", object_key(packs[0])) in kinds
    assert any(k == "corrupt-chunk" for k, _ in kinds)


def test_a_flipped_byte_in_a_new_named_zone_pack_is_a_corrupt_pack(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=24)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    zone = open_zone(zdir)
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).ok
    packs = [n for n in os.listdir(os.path.join(zdir, "idx"))
             if PackIndex.from_bytes(open(os.path.join(zdir, "idx", n), "rb").read()).named_by_manifest]
    assert packs
    flip(zpath(zdir, packs[0]), 3)
    kinds = {(p.kind, p.name) for p in fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).problems}
    assert ("corrupt-pack", object_key(packs[0])) in kinds
    assert any(k == "corrupt-chunk" for k, _ in kinds)


# ------------------------------------------------------------------ the gateway


def _pack(tmp_path, n=3, seed=b"g") -> tuple[ObjectStore, PackIndex]:
    store = ObjectStore(str(tmp_path / "objects"), fsync=False)
    shas = chunks(store, n, size=400_000, seed=seed)
    with PackWriter(store) as w:
        for s in shas:
            w.add(s, store.get(s))
        idx = w.finish()
    return store, idx


def test_gateway_stores_a_pack_sent_after_its_manifest(gateway, tmp_path):
    store, idx = _pack(tmp_path)
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        z.put_pack(object_key(idx.pack), store.path(idx.pack), idx.manifest())
        with open(store.path(idx.pack), "rb") as f:
            assert z.get(object_key(idx.pack)) == f.read()  # the pack alone: no manifest stored
        # the first rule still holds without a manifest
        lone = idx.chunks[0].sha
        z.put_file(object_key(lone), store.path(lone))
        assert z.get(object_key(lone)) == store.get(lone)


def test_gateway_refuses_a_pack_that_does_not_match_its_manifest(gateway, tmp_path):
    store, idx = _pack(tmp_path)
    key = object_key(idx.pack)
    with open(store.path(idx.pack), "rb") as f:
        data = f.read()
    url = f"{gateway}/zones/alice/x/{key}"
    auth = {"Authorization": "token " + ALICE, "Content-Type": "application/octet-stream"}
    manifest = idx.manifest()
    other = pack_manifest([(idx.chunks[0].sha, idx.chunks[0].size), (idx.chunks[1].sha, idx.chunks[1].size)])
    flipped = bytearray(data)
    flipped[idx.chunks[2].offset + 10] ^= 1
    cases = [
        (manifest, bytes(flipped), 422),  # a chunk does not hash to its name
        (manifest, data[:-1], 422),  # one byte short
        (manifest, data + b"x", 422),  # one byte more
        (other, data, 422),  # a manifest of another pack
        (manifest[:-1], data, 422),  # a manifest cut short (its hash is not the name)
    ]
    for m, body, status in cases:
        resp = requests.put(url, data=m + body, headers={**auth, "X-Lindivc-Manifest": str(len(m))})
        assert resp.status_code == status, resp.text
        assert "nothing stored" in resp.text
    # without the manifest, a pack's bytes do not hash to its name: refused as before
    resp = requests.put(url, data=data, headers=auth)
    assert resp.status_code == 422
    for bad in ("-1", "x", str(64 << 20)):
        resp = requests.put(url, data=manifest + data, headers={**auth, "X-Lindivc-Manifest": bad})
        assert resp.status_code == 400
    resp = requests.put(f"{gateway}/zones/alice/x/f/a.json", data=b"{}",
                        headers={**auth, "X-Lindivc-Manifest": "2"})
    assert resp.status_code == 400
    with GatewayZone(gateway + "/zones/alice/x", ALICE) as z:
        assert z.head(key) is None
        with pytest.raises(LindivcError, match="422|manifest"):
            z.put_pack(key, store.path(idx.pack), other)
        assert z.head(key) is None


def test_push_through_the_gateway_sends_new_named_packs_that_fsck_clean(gateway, tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=31, n_chunks=7, pack_size=300_000)
    url = f"{gateway}/zones/alice/x"
    r.config.add_remote("origin", url)
    monkeypatch.setenv("GITHUB_TOKEN", ALICE)
    res = push(r)
    assert res.packs_uploaded >= 2
    zone = open_zone(url, token=ALICE)
    idxs = [PackIndex.from_bytes(zone.get(f"idx/{i.key.rsplit('/', 1)[1]}")) for i in zone.list("idx/")]
    assert any(i.named_by_manifest for i in idxs)
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).ok


def test_a_pack_made_by_lindivc_pack_is_sent_as_it_is_to_a_zone_that_takes_files(tmp_path, monkeypatch):
    """`lindivc pack` made exactly the pack push plans (same chunks, same name): push sends that
    file instead of writing a temporary copy, and the zone's copy checks clean."""
    from lindivc import upload

    r, name = make_repo(tmp_path / "a", seed=9, n_chunks=6, pack_size=300_000)
    pack_loose(r)
    local_packs = {p for p in r.objects if r.packs.is_pack(p)}
    assert local_packs
    monkeypatch.setattr(upload, "PackWriter", None)  # a temporary pack would fail the push
    zone_dir = tmp_path / "zone"
    r.config.add_remote("origin", str(zone_dir))
    push(r)
    sent = {p for p in os.listdir(zone_dir / "idx")}
    assert local_packs <= sent
    assert fsck_zone(open_zone(str(zone_dir)), read_data=True).ok
    c = clone(str(zone_dir), str(tmp_path / "c"))
    np.testing.assert_array_equal(read_all(c.abspath(name)), read_all(r.abspath(name)))
