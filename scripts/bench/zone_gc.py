"""Benchmark: zone GC over 1,000 commits, 100,000 objects and 1,000,000 refs (issue 4).

The zone is a LocalZone directory built synthetically (keys written directly, objects tiny):

    objects   100,000 keys under sha1/: 1,000 packs of 100 chunks + 99,000 lone chunks,
              each with its idx/ entry (199,000 chunks, 200,000 data keys in all);
              the last 10,000 lone chunks are referenced by nothing (the garbage)
    history   1,000 commits (git/ in dumb layout, uploaded with lindivc.gitsync); 100 files,
              each commit rewrites one file as a canonical LINDI file with 1,000 content refs:
              1,000,000 content refs over the history
    rendered  f/ for the 100 files at the head, v/ for 10 published heads (1,100 files,
              1,100,000 range refs)

Each measurement runs in a fresh process (time, peak RSS). The floor is listing the zone's keys
in the same run. Then: GC 1 (plan and sweep, --grace now), GC 2 (nothing changed since GC 1).

    python scripts/bench/zone_gc.py [--scale 1.0] [--dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def build(root: str, scale: float) -> dict:
    import hashlib

    from dulwich.objects import Blob, Commit, Tree
    from dulwich.repo import Repo

    from lindivc import gitsync, zonerefs
    from lindivc import lindijson
    from lindivc.layout import file_key, index_key, object_key, version_key
    from lindivc.packs import ChunkEntry, PackIndex
    from lindivc.catalog import public_prefix
    from lindivc.zones.local import LocalZone

    n_packs = int(1000 * scale)
    per_pack = 100
    n_lone = int(99_000 * scale)
    n_garbage = int(10_000 * scale)
    n_commits = int(1000 * scale)
    n_files = 100
    refs_per_file = 1000
    zdir = os.path.join(root, "cloud", "zones", "bench", "z")
    zone = LocalZone(zdir)
    prefix = public_prefix(zone)

    def write(key: str, data: bytes) -> None:
        p = os.path.join(zdir, *key.split("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)

    place: list[tuple[str, str, int, int]] = []  # chunk, object, offset, size
    c = 0
    for _ in range(n_packs):
        parts = []
        for _ in range(per_pack):
            data = c.to_bytes(8, "big") + b"lindivc-bench-chunk"
            parts.append((hashlib.sha1(data).hexdigest(), data))
            c += 1
        parts.sort()
        body = b"".join(d for _, d in parts)
        pack = hashlib.sha1(body).hexdigest()
        entries, off = [], 0
        for sha, d in parts:
            entries.append(ChunkEntry(sha, off, len(d)))
            place.append((sha, pack, off, len(d)))
            off += len(d)
        write(object_key(pack), body)
        write(index_key(pack), PackIndex(pack, len(body), tuple(entries)).to_bytes())
    for _ in range(n_lone):
        data = c.to_bytes(8, "big") + b"lindivc-bench-chunk"
        sha = hashlib.sha1(data).hexdigest()
        c += 1
        write(object_key(sha), data)
        write(index_key(sha), PackIndex.single(sha, len(data)).to_bytes())
        place.append((sha, sha, 0, len(data)))
    live = place[: len(place) - n_garbage]  # the last lone chunks are garbage

    # history: commit j rewrites file j % n_files with refs to a sliding window of live chunks
    git_dir = os.path.join(root, "git")
    repo = Repo.init_bare(git_dir, mkdir=True)
    store = repo.object_store
    files: dict[bytes, bytes] = {}
    parent = None
    heads_published = []
    stride = max(1, (len(live) - refs_per_file) // max(1, n_commits - 1))
    blobs_of: dict[int, bytes] = {}
    for j in range(n_commits):
        start = (j * stride) % max(1, len(live) - refs_per_file)
        window = live[start:start + refs_per_file]
        rfs = {"refs": {".zgroup": {"zarr_format": 2}, **{f"d{j % n_files}/{i}": [f"sha1:{w[0]}", 0, w[3]]
                                                          for i, w in enumerate(window)}}}
        blob = Blob.from_string(lindijson.dumps(rfs))
        store.add_object(blob)
        name = f"f{j % n_files:03d}.lindi.json".encode()
        files[name] = blob.id
        blobs_of[j % n_files] = (window, name)
        tree = Tree()
        for n, b in files.items():
            tree.add(n, 0o100644, b)
        store.add_object(tree)
        cm = Commit()
        cm.tree = tree.id
        cm.parents = [parent] if parent else []
        cm.author = cm.committer = b"Bench <bench@example.org>"
        cm.author_time = cm.commit_time = 1_700_000_000 + j
        cm.author_timezone = cm.commit_timezone = 0
        cm.message = f"commit {j}".encode()
        store.add_object(cm)
        parent = cm.id
        if (j + 1) % max(1, n_commits // 10) == 0:
            heads_published.append((cm.id.decode(), dict(blobs_of)))
    head = parent.decode()
    repo.refs[b"refs/heads/main"] = parent
    gitsync.upload_history(git_dir, zone, [head])
    zonerefs.cas_remote_ref(zone, "main", head, None)

    def rendered(window) -> bytes:
        return lindijson.dumps({"refs": {".zgroup": {"zarr_format": 2}, **{
            f"d/{i}": [prefix + object_key(obj), off, size] for i, (_, obj, off, size) in enumerate(window)}}})

    n_rendered = n_refs_rendered = 0
    for commit, fls in heads_published:
        for _, (window, name) in fls.items():
            data = rendered(window)
            write(version_key(commit, name.decode()), data)
            if commit == heads_published[-1][0]:
                write(file_key(name.decode()), data)
                n_rendered += 1
                n_refs_rendered += len(window)
            n_rendered += 1
            n_refs_rendered += len(window)
    return {"zone": zdir, "objects": n_packs + n_lone, "chunks": len(place), "garbage_objects": n_garbage,
            "commits": n_commits, "history_refs": n_commits * refs_per_file, "rendered_files": n_rendered,
            "rendered_refs": n_refs_rendered}


def child(args) -> None:
    """Run one measurement in this (fresh) process; print JSON."""
    from lindivc import gc
    from lindivc.zones.local import LocalZone

    zone = LocalZone(args.zone)
    t = time.perf_counter()
    if args.child == "list":
        n = sum(1 for _ in zone.list(""))
        out = {"keys": n}
    else:
        plan = gc.gc_zone(zone, prune=True, grace=gc.parse_grace("now", allow_now=True), cache_dir=args.cache)
        out = {"cached": plan.cached, "deleted": plan.deleted, "counts": plan.counts(),
               "roots": plan.roots.summary(), "notes": plan.notes}
    out["seconds"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(kind: str, zone: str, cache: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", kind, "--zone", zone, "--cache", cache],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (for a quick run)")
    ap.add_argument("--dir", help="work directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the zone afterwards")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--zone", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    root = args.dir or tempfile.mkdtemp(prefix="lindivc-bench-gc-")
    try:
        t = time.perf_counter()
        info = build(root, args.scale)
        print(f"built in {time.perf_counter() - t:.1f} s: {json.dumps(info)}")
        cache = os.path.join(root, "gc-cache")
        floor = measure("list", info["zone"], cache)
        first = measure("gc", info["zone"], cache)
        second = measure("gc", info["zone"], cache)
        f = floor["seconds"]
        print(f"floor: list {floor['keys']} keys: {f:.2f} s, peak RSS {floor['peak_rss_mb']:.0f} MB")
        print(f"GC 1 (plan + sweep): {first['seconds']:.2f} s = {first['seconds'] / f:.1f} x floor, "
              f"peak RSS {first['peak_rss_mb']:.0f} MB; deleted {first['counts']}; {first['roots']}")
        print(f"GC 2 (nothing new): {second['seconds']:.2f} s = {second['seconds'] / f:.1f} x floor = "
              f"{second['seconds'] / first['seconds']:.2f} x GC 1, peak RSS {second['peak_rss_mb']:.0f} MB; "
              f"cached={second['cached']}: {'; '.join(second['notes'])}")
        ok = first["seconds"] <= 60 and first["peak_rss_mb"] <= 2048 and second["cached"]
        print("targets (<= 60 s, <= 2 GB, second GC cached):", "met" if ok else "NOT met")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
