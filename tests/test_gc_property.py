"""Property: random commit / push / delete-file / force-push / branch-delete / GC sequences with a
moving store clock never lose a byte that a ref or a published file can reach."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lindivc
from lindivc import gc, zonerefs
from lindivc import lindijson
from lindivc.documents import parse_published_refs
from lindivc.errors import NothingToCommit
from lindivc.layout import object_key
from lindivc.objects import sha1_bytes
from lindivc.repo import Repository
from lindivc.catalog import ZoneCatalog
from lindivc.push import push
from lindivc.zones.memory import MemoryZone

N = 9000  # float64 chunks of 72 kB

gc_op = st.tuples(st.just("gc"), st.sampled_from([0, 5, 50, 500]), st.sampled_from([0, 10, 100]),
                  st.sampled_from([True, True, False]), st.sampled_from([0.3, 0.5, 0.9]))
ops = st.one_of(
    gc_op, gc_op,
    st.tuples(st.just("commit"), st.integers(0, 2**16)),
    st.tuples(st.just("push")),
    st.tuples(st.just("delete_file")),
    st.tuples(st.just("force_push")),
    st.tuples(st.just("branch_delete")),
)


def _write(r: Repository, seed: int) -> None:
    p = r.abspath("x.lindi.json")
    rng = np.random.default_rng(seed)
    if not os.path.exists(p):
        with open(p, "w") as f:
            json.dump({"refs": {".zgroup": {"zarr_format": 2}}}, f)
        r.add([p])
        with lindivc.open(p, "r+") as f:
            f.create_dataset("d", data=rng.standard_normal(4 * N), chunks=(N,))
        return
    with lindivc.open(p, "r+") as f:
        i = int(rng.integers(0, 4))
        f["d"][i * N:(i + 1) * N] = rng.standard_normal(N)


def _check(r: Repository, zone: MemoryZone, known: set[str], tmp: str) -> None:
    """Every chunk of every file reachable from a zone ref resolves in the zone and hashes right;
    every range of every published file reads back a known chunk."""
    cat = ZoneCatalog(os.path.join(tmp, "check-" + uuid.uuid4().hex[:8]), zone.url)
    cat._zone = zone
    cat.refresh()
    for name, sha in zonerefs.list_remote_refs(zone).items():
        for c in r.history.walk([sha]):
            for blob in r.history.tree_files(c.tree).values():
                for chunk in lindijson.content_shas(r.history.read_blob(blob)):
                    assert cat.read_chunk(chunk) is not None, (name, chunk)  # raises if lost/corrupt
    for info in zone.list(""):
        if info.key.startswith(("f/", "v/")):
            for ref in parse_published_refs(zone.get(info.key), info.key):
                sha = ref.object_sha1
                if sha is None:
                    continue
                data = zone.get_range(object_key(sha), ref.offset, ref.size)
                assert sha1_bytes(data) in known, info.key


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, min_size=2, max_size=10))
def test_gc_never_loses_reachable_data(steps):
    tmp = tempfile.mkdtemp(prefix="lvc-prop-")
    try:
        zone_url = f"memory://prop-{uuid.uuid4().hex[:12]}"
        zone = MemoryZone(zone_url)
        clock = [1_000_000.0]
        zone.clock = lambda: clock[0]
        r = Repository.init(os.path.join(tmp, "repo"))
        r.config.data["core"]["pack_size"] = 250_000  # ~3 chunks per pack
        r.config.data["remotes"]["origin"] = {"url": zone_url}  # memory zones are for tests only
        r.config.save()
        _write(r, 0)
        r.commit("initial", all=True)
        push(r)
        for step in steps + [("gc", 1000, 0, True, 0.3)]:  # and a final GC that collects all it may
            kind = step[0]
            if kind == "commit":
                _write(r, step[1])
                try:
                    r.commit(f"c{step[1]}", all=True)
                except NothingToCommit:
                    pass
            elif kind == "push":
                push(r, force=True)
            elif kind == "delete_file":
                if "x.lindi.json" in r.tracked():
                    r.remove([r.abspath("x.lindi.json")])
                    r.commit("delete")
            elif kind == "force_push":
                files = r.history.commit_files(r.history.head())
                c = r.history.make_commit(r.history.write_tree(files), [], "rewrite", r.author)
                r.history.set_ref("refs/heads/main", c, r.history.head(), "rewrite", r.author)
                push(r, force=True)
            elif kind == "branch_delete":
                if "side" not in r.history.branches():
                    r.create_branch("side")
                push(r, "origin", "side", force=True)
                zone.delete("git/refs/heads/side")
                zonerefs.update_info_refs(zone)
            elif kind == "gc":
                _, advance, grace, prune, threshold = step
                clock[0] += advance
                gc.gc_zone(zone, prune=prune, grace=gc.parse_grace(grace, allow_now=True), threshold=threshold,
                           cache_dir=os.path.join(tmp, "gc-cache"))
            clock[0] += 1
            known = set(r.objects) | {e.sha for idx in r.packs for e in idx.chunks}
            _check(r, zone, known, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
