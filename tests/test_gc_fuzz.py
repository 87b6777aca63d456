"""Property (issue 10): whatever JSON other users leave as published files and pins, zone GC never
raises and never deletes an object that a well-formed file or pin in the cloud references."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lindivc import gc
from lindivc.documents import ByteRange, Pin
from lindivc.layout import index_key, object_key
from lindivc.objects import sha1_bytes
from lindivc.packs import ChunkEntry, PackIndex
from lindivc.zones.memory import MemoryZone

LONE = [f"lone object {i}".encode() * 20 for i in range(6)]
PACKED = [f"packed chunk {i}".encode() * 30 for i in range(3)]


def build(zone: MemoryZone) -> list[tuple[str, int, int]]:
    """Six lone objects and a pack of three chunks in ``zone``, each indexed; returns every
    ``(object, offset, size)`` a file could reference (a lone object whole, a chunk of the pack)."""
    out = []
    for data in LONE:
        sha = sha1_bytes(data)
        zone.put(object_key(sha), data)
        zone.put(index_key(sha), PackIndex.single(sha, len(data)).to_bytes())
        out.append((sha, 0, len(data)))
    body, entries, off = b"", [], 0
    for data in sorted(PACKED, key=sha1_bytes):
        entries.append(ChunkEntry(sha1_bytes(data), off, len(data)))
        body += data
        off += len(data)
    pack = sha1_bytes(body)
    zone.put(object_key(pack), body)
    zone.put(index_key(pack), PackIndex(pack, len(body), tuple(entries)).to_bytes())
    out += [(pack, e.offset, e.size) for e in entries]
    return out


def refs_strategy(url: str, targets: list[tuple[str, int, int]]):
    """JSON values, some of them close to real LINDI refs and pins into the zone at ``url``."""
    sha_names = [t[0] for t in targets]
    urls = [f"{url}/{object_key(s)}" for s in sha_names] + ["{{u}}/" + object_key(s) for s in sha_names]
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 66), 2 ** 66), st.floats(allow_nan=False),
                     st.text(max_size=12), st.sampled_from(sha_names + urls + [url, "{{u}}", "{{nope}}/x"]),
                     st.sampled_from(["lindivc-pin/2", "lindivc-pin/1", "file", "borrow", "external"]))
    ref = st.tuples(st.sampled_from(urls), st.integers(-5, 5000), st.integers(-5, 5000)).map(list)
    value = st.recursive(leaf | ref, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["refs", "templates", "u", "format", "kind", "label", "created", "by",
                                         "chunks", "objects", "ranges", "file", ".zgroup"]) | st.text(max_size=4),
                        inner, max_size=5)), max_leaves=25)
    lindi_ish = st.fixed_dictionaries({"refs": st.dictionaries(st.text(max_size=6), value | ref, max_size=6)},
                                      optional={"templates": st.one_of(st.just({"u": url}), value)})
    pin_ish = st.fixed_dictionaries({"format": st.sampled_from(["lindivc-pin/2", "lindivc-pin/1"]),
                                     "kind": st.sampled_from(["file", "borrow"]) | value},
                                    optional={"label": value, "created": value, "by": value, "chunks": value,
                                              "objects": value, "ranges": value, "file": value})
    return st.one_of(value, lindi_ish, pin_ish)


def run_gc(targets_of: st.DataObject) -> None:
    tmp = tempfile.mkdtemp(prefix="lvc-gcfuzz-")
    cloud = f"memory://fz-{uuid.uuid4().hex[:10]}"
    try:
        alice = MemoryZone(f"{cloud}/zones/alice/x")
        bob = MemoryZone(f"{cloud}/zones/bob/p")
        clock = [1000.0]
        alice.clock = bob.clock = lambda: clock[0]
        targets = build(alice)
        d = targets_of
        # well-formed: bob's file reads some targets by range (maybe through a template), a pin keeps others
        by_file = d.draw(st.lists(st.sampled_from(targets), max_size=4, unique=True), "file refs")
        by_pin = d.draw(st.lists(st.sampled_from(targets), max_size=3, unique=True), "pin ranges")
        templated = d.draw(st.booleans(), "templated")
        refs = {f"d/{i}": ([("{{u}}/" if templated else alice.url + "/") + object_key(s), o, n])
                for i, (s, o, n) in enumerate(by_file)}
        doc = {"refs": {".zgroup": {"zarr_format": 2}, **refs}}
        if templated:
            doc["templates"] = {"u": alice.url}
        bob.put("f/honest.lindi.json", json.dumps(doc).encode())
        if by_pin:
            alice.put("pins/carol.p", Pin("file", "https://c.example/f", 1.0, "carol",
                                          ranges=tuple(ByteRange(*t) for t in by_pin)).to_bytes())
        # junk: other users' published files and pins, any JSON at all
        junk = d.draw(st.lists(st.tuples(st.booleans(), refs_strategy(alice.url, targets)), max_size=6), "junk")
        for i, (as_pin, value) in enumerate(junk):
            body = json.dumps(value).encode()
            if as_pin:
                alice.put(f"pins/bob.j{i}", body)
            else:
                bob.put(f"f/junk{i}.lindi.json", body)
        clock[0] += 1000
        plan = gc.gc_zone(alice, prune=True, grace=10, cache_dir=os.path.join(tmp, "c"))
        assert plan.swept
        for sha, _, _ in by_file + by_pin:
            assert alice.exists(object_key(sha)) and alice.exists(index_key(sha)), sha
        # and what nothing references is gone (junk may reference things; well-formed refs keep them)
        named = {s for s, _, _ in by_file + by_pin}
        if not junk:
            assert {s for s, _, _ in targets if alice.exists(object_key(s))} == named
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_gc_never_raises_and_keeps_what_well_formed_documents_reference(data):
    run_gc(data)
