import hashlib
import json
import os
import tracemalloc

import pytest

from lindivc.errors import ChecksumMismatch, InvalidLindiFile, ObjectMissing
from lindivc.objects import ObjectStore, sha1_bytes
from lindivc.packs import FORMAT, InvalidPackIndex, PackIndex, PackSet, pack_name, read_chunk, verify_pack
from lindivc.packstream import PackWriter, pack_objects, plan_packs, repack_loose


@pytest.fixture
def store(tmp_path):
    return ObjectStore(str(tmp_path / "objects"), fsync=False)


@pytest.fixture
def packset(tmp_path):
    return PackSet(str(tmp_path / "idx"), fsync=False)


def put_chunks(store, n, size=1000, seed=b""):
    shas = []
    for i in range(n):
        data = hashlib.sha256(seed + str(i).encode()).digest() * (size // 32 + 1)
        shas.append(store.put_bytes(data[: size + i]))
    return shas


def test_pack_round_trip_reads_every_chunk_back(store, packset):
    shas = put_chunks(store, 10)
    originals = {s: store.get(s) for s in shas}
    [index] = list(pack_objects(store, shas, target_size=1 << 20))
    assert [c.sha for c in index.chunks] == sorted(shas)
    assert index.size == sum(len(v) for v in originals.values())
    with open(store.path(index.pack), "rb") as f:
        pack = f.read()
    assert pack == b"".join(originals[s] for s in sorted(shas))
    # named by its manifest (docs/format.md section 5), not by its bytes
    assert index.pack == pack_name((s, len(originals[s])) for s in sorted(shas)) != sha1_bytes(pack)
    assert index.named_by_manifest
    verify_pack(store, index)
    for s in shas:
        off, size = index.lookup(s)
        assert pack[off:off + size] == originals[s]
        assert store.get_range(index.pack, off, size) == originals[s]
    assert index.lookup("0" * 40) is None
    again = PackIndex.from_bytes(index.to_bytes(), expected_pack=index.pack)
    assert again == index


def test_index_serialization_is_canonical(store):
    shas = put_chunks(store, 3)
    [index] = list(pack_objects(store, shas))
    data = index.to_bytes()
    doc = json.loads(data)
    assert doc["format"] == FORMAT and doc["pack"] == index.pack and doc["size"] == index.size
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in data


def test_chunk_at_maps_pack_bytes_back_to_chunks(store, packset):
    shas = put_chunks(store, 5)
    [index] = list(pack_objects(store, shas))
    packset.save(index)
    for c in index.chunks:
        for pos in (c.offset, c.offset + c.size // 2, c.offset + c.size - 1):
            assert index.chunk_at(pos) == (c.sha, c.offset, pos - c.offset)
            assert packset.chunk_at(index.pack, pos) == (c.sha, c.offset, pos - c.offset)
    assert index.chunk_at(index.size) is None
    assert index.chunk_at(-1) is None
    assert packset.chunk_at("0" * 40, 0) is None


def test_same_chunks_pack_to_same_names(tmp_path):
    a = ObjectStore(str(tmp_path / "a"), fsync=False)
    b = ObjectStore(str(tmp_path / "b"), fsync=False)
    sa = put_chunks(a, 20, size=3000)
    sb = put_chunks(b, 20, size=3000)
    ia = list(pack_objects(a, sa, target_size=20000))
    ib = list(pack_objects(b, list(reversed(sb)) + sb[:3], target_size=20000))
    assert len(ia) > 1
    assert [i.pack for i in ia] == [i.pack for i in ib]
    assert [i.to_bytes() for i in ia] == [i.to_bytes() for i in ib]


def test_grouping_respects_target_and_leaves_big_and_lone_chunks_loose():
    sizes = {"%040x" % i: 10 for i in range(7)}
    sizes["f" * 40] = 100  # >= target: stays loose
    groups = plan_packs(sizes, target_size=30)
    assert groups == [["%040x" % i for i in range(0, 3)], ["%040x" % i for i in range(3, 6)]]
    # the 7th small chunk would be alone in its pack: it stays loose
    assert all(len(g) >= 2 for g in groups)


def test_pack_writer_rejects_wrong_bytes_and_keeps_pack_consistent(store):
    shas = put_chunks(store, 3)
    w = PackWriter(store)
    w.add(shas[0], store.get(shas[0]))
    with pytest.raises(ChecksumMismatch):
        w.add(shas[1], b"not the chunk")
    w.add(shas[2], store.get(shas[2]))
    index = w.finish()
    verify_pack(store, index)
    assert index.lookup(shas[1]) is None


def test_pack_writer_abort_leaves_no_temp_files(store):
    shas = put_chunks(store, 2)
    before = set(os.listdir(store.root))
    w = PackWriter(store)
    w.add(shas[0], store.get(shas[0]))
    w.abort()
    assert set(os.listdir(store.root)) == before


def test_packset_locates_chunks_after_reload(store, tmp_path):
    shas = put_chunks(store, 30)
    ps = PackSet(str(tmp_path / "idx"), fsync=False)
    for index in pack_objects(store, shas, target_size=8000):
        ps.save(index)
    ps2 = PackSet(str(tmp_path / "idx"), fsync=False)
    assert ps2.packs == ps.packs and len(ps2) > 1
    for s in shas:
        loc = ps2.locate(s)
        assert loc is not None and ps2.is_pack(loc.pack)
        assert store.get_range(*loc) == store.get(s)
    assert not ps2.is_pack(shas[0])
    assert ps2.locate("0" * 40) is None


def test_packset_with_100k_chunks_is_fast(tmp_path):
    import time

    ps = PackSet(str(tmp_path / "idx"), fsync=False)
    for p in range(10):
        chunks = tuple(sorted(
            (hashlib.sha1(b"%d-%d" % (p, i)).hexdigest(), 0, 0) for i in range(10_000)))
        entries = []
        off = 0
        for sha, _, _ in chunks:
            entries.append((sha, off, 100))
            off += 100
        from lindivc.packs import ChunkEntry

        ps.save(PackIndex(hashlib.sha1(b"pack%d" % p).hexdigest(), off, tuple(ChunkEntry(*e) for e in entries)))
    t = time.perf_counter()
    ps2 = PackSet(str(tmp_path / "idx"), fsync=False)
    load = time.perf_counter() - t
    t = time.perf_counter()
    for p in range(10):
        for i in range(0, 10_000, 7):
            assert ps2.locate(hashlib.sha1(b"%d-%d" % (p, i)).hexdigest()) is not None
    lookups = time.perf_counter() - t
    assert load < 5 and lookups < 1


def test_read_chunk_from_loose_and_from_pack(store, packset):
    shas = put_chunks(store, 4)
    originals = {s: store.get(s) for s in shas}
    repack_loose(store, packset, shas)
    for s in shas:
        assert s not in store
        assert read_chunk(store, packset, s) == originals[s]
    loose = store.put_bytes(b"loose chunk")
    assert read_chunk(store, packset, loose) == b"loose chunk"
    with pytest.raises(ObjectMissing):
        read_chunk(store, packset, "0" * 40)


def test_read_chunk_detects_corruption_in_pack(store, packset):
    shas = put_chunks(store, 4)
    [index] = repack_loose(store, packset, shas)
    victim = sorted(shas)[2]
    off, size = index.lookup(victim)
    path = store.path(index.pack)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(off + size // 2)
        byte = f.read(1)
        f.seek(off + size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatch) as e:
        read_chunk(store, packset, victim)
    assert e.value.expected == victim
    assert read_chunk(store, packset, sorted(shas)[0])  # the others still read fine
    with pytest.raises(ChecksumMismatch):
        verify_pack(store, index)


def test_read_chunk_detects_corrupt_loose_object(store, packset):
    sha = store.put_bytes(b"some chunk bytes")
    with open(store.path(sha), "wb") as f:
        f.write(b"other bytes")
    with pytest.raises(ChecksumMismatch):
        read_chunk(store, packset, sha)


def _valid_index_doc(store):
    shas = put_chunks(store, 3)
    [index] = list(pack_objects(store, shas))
    return index, json.loads(index.to_bytes())


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(format="lindivc-pack-index/2"),
    lambda d: d.update(pack="xyz"),
    lambda d: d.update(size=-1),
    lambda d: d.update(size=10),  # ranges beyond the pack
    lambda d: d.update(chunks="nope"),
    lambda d: d["chunks"].reverse(),  # not sorted
    lambda d: d["chunks"].append(list(d["chunks"][-1])),  # duplicate
    lambda d: d["chunks"][1].__setitem__(1, d["chunks"][0][1]),  # overlap
    lambda d: d["chunks"][0].__setitem__(0, "g" * 40),
    lambda d: d["chunks"][0].__setitem__(2, True),
    lambda d: d["chunks"][0].pop(),
])
def test_malformed_index_rejected(store, mutate):
    _, doc = _valid_index_doc(store)
    mutate(doc)
    with pytest.raises(InvalidPackIndex):
        PackIndex.from_bytes(json.dumps(doc).encode())


def test_truncated_or_foreign_index_rejected(store):
    index, _ = _valid_index_doc(store)
    data = index.to_bytes()
    for cut in (0, 1, len(data) // 2, len(data) - 1):
        with pytest.raises(InvalidLindiFile):
            PackIndex.from_bytes(data[:cut])
    with pytest.raises(InvalidPackIndex):
        PackIndex.from_bytes(data, expected_pack="0" * 40)
    with pytest.raises(InvalidPackIndex):
        PackIndex.from_bytes(b"\xff\xfe")


def test_packset_rejects_index_stored_under_wrong_name(store, tmp_path):
    index, _ = _valid_index_doc(store)
    d = tmp_path / "idx2"
    d.mkdir()
    (d / ("0" * 40)).write_bytes(index.to_bytes())
    with pytest.raises(InvalidPackIndex):
        PackSet(str(d))


def test_repack_loose_deletes_loose_copies_after_verification(store, packset, tmp_path):
    shas = put_chunks(store, 12, size=5000)
    originals = {s: store.get(s) for s in shas}
    big = store.put_bytes(os.urandom(50_000))
    indexes = repack_loose(store, packset, shas + [big], target_size=20_000)
    assert len(indexes) >= 3
    packed = {c.sha for i in indexes for c in i.chunks}
    assert big not in packed and big in store  # too big to pack: stays loose
    for s in packed:
        assert s not in store
    for s in shas:
        assert read_chunk(store, packset, s) == originals[s]
    # indexes were saved: a fresh PackSet finds everything
    ps2 = PackSet(packset.idx_dir)
    for s in packed:
        assert read_chunk(store, ps2, s) == originals[s]
    # repacking again is a no-op
    assert repack_loose(store, packset, shas, target_size=20_000) == []


def test_repack_loose_failure_midway_loses_nothing(store, packset, monkeypatch):
    import lindivc.packstream as packstream

    shas = put_chunks(store, 12, size=5000)
    originals = {s: store.get(s) for s in shas}
    real_verify = packstream.verify_pack
    calls = []

    def failing_verify(objects, index):
        calls.append(index.pack)
        if len(calls) == 2:
            # the second pack got corrupted on its way to disk
            with open(objects.path(index.pack), "r+b") as f:
                f.seek(10)
                f.write(b"XXXX")
        real_verify(objects, index)

    monkeypatch.setattr(packstream, "verify_pack", failing_verify)
    with pytest.raises(ChecksumMismatch):
        repack_loose(store, packset, shas, target_size=20_000)
    assert len(calls) == 2
    # the failed pack's index was never saved and its chunks are still loose
    assert not packset.is_pack(calls[1])
    assert len(packset) == 1
    for s in shas:
        assert read_chunk(store, packset, s) == originals[s]
    # a retry finishes the job
    monkeypatch.setattr(packstream, "verify_pack", real_verify)
    store.delete(calls[1])
    repack_loose(store, packset, shas, target_size=20_000)
    for s in shas:
        assert s not in store
        assert read_chunk(store, packset, s) == originals[s]


def test_packing_300mb_keeps_memory_bounded(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"), fsync=False)
    block = os.urandom(1 << 20)
    chunk_mb = 20
    shas = []
    for i in range(15):  # 15 x 20 MiB = 300 MiB
        head = b"%08d" % i

        def blocks():
            yield head
            for _ in range(chunk_mb):
                yield block

        sha, _ = store.put_stream(blocks())
        shas.append(sha)
    packset = PackSet(str(tmp_path / "idx"), fsync=False)
    tracemalloc.start()
    try:
        indexes = repack_loose(store, packset, shas, target_size=128 * 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = sum(i.size for i in indexes)
    assert total >= 280 * 2**20
    assert peak < 16 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# ------------------------------------------------------------------ streamed packs (push)


def _segments(store, shas):
    from lindivc.packstream import Segment

    return [Segment(s, store.path(s), 0, store.size(s)) for s in sorted(shas)]


def test_pack_source_streams_the_bytes_pack_writer_writes(store, tmp_path):
    from lindivc.packstream import PackSource

    shas = put_chunks(store, 5, size=300_000)
    src = PackSource(_segments(store, shas))
    idx = src.index()  # no I/O: named by its manifest
    src.verify()
    with src.open() as r:
        streamed = r.read()
        assert r.verified
        r.seek(0)
        assert r.read(1000) == streamed[:1000]  # re-readable for retries
    other = ObjectStore(str(tmp_path / "other"))
    for s in sorted(shas):
        other.put_bytes(store.get(s))
    written = next(iter(pack_objects(other, shas, target_size=10**9)))
    assert idx.pack == written.pack == sha1_bytes(idx.manifest())
    assert idx.to_bytes() == written.to_bytes()
    with open(other.path(written.pack), "rb") as f:
        assert f.read() == streamed


def test_pack_source_refuses_a_corrupt_chunk_before_its_last_bytes(store):
    from lindivc.packstream import PackSource

    shas = sorted(put_chunks(store, 3, size=3_000_000))
    p = store.path(shas[1])
    with open(p, "r+b") as f:
        f.seek(10)
        f.write(b"\xff\xfe")
    src = PackSource(_segments(store, shas))
    with pytest.raises(ChecksumMismatch):
        src.verify()
    sent = 0
    with pytest.raises(ChecksumMismatch):
        with src.open() as r:
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                sent += len(b)
    first_two = store.size(shas[0]) + store.size(shas[1])
    assert sent < first_two  # the corrupt chunk's last block was never handed out
    r = src.open()
    with pytest.raises(ChecksumMismatch):
        r.read()
    r.seek(0)  # a client retrying from the start gets nothing more
    with pytest.raises(ChecksumMismatch):
        r.read(10)
    r.close()


def test_s3_multipart_put_stream_round_trip(store, s3_bucket):
    from lindivc.packstream import PackSource
    from lindivc.zones.s3 import S3Zone

    shas = put_chunks(store, 4, size=3 * 2**20)  # 12 MiB
    src = PackSource(_segments(store, shas))
    idx = src.index()
    zone = S3Zone(f"s3://{s3_bucket}/zones/u/z", part_size=5 * 2**20)
    with src.open() as r:
        zone._put_stream_multipart(f"sha1/{idx.pack[:2]}/{idx.pack[2:4]}/{idx.pack[4:6]}/{idx.pack}", r, src.size)
    data = zone.get(f"sha1/{idx.pack[:2]}/{idx.pack[2:4]}/{idx.pack[4:6]}/{idx.pack}")
    assert data == b"".join(store.get(s) for s in sorted(shas)) and len(data) == src.size
    assert idx.named_by_manifest
