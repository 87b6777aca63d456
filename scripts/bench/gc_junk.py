"""Benchmark: zone GC in a cloud full of other users' junk (issue 10).

The zone is the one scripts/bench/zone_gc.py builds (at ``--scale``, default 0.1: 10,000
objects, 100 commits, 650 rendered files), in a cloud directory. The same GC (plan and sweep,
``--grace now``, a fresh cache) runs twice, each in a fresh process on its own copy:

    clean   the zone alone in its cloud
    junk    the same zone, plus 1,000 junk documents and 1,000 pins from other users:
            - 1,000 published files in 50 other users' zones (f/): the issue's malformed shapes
              (a template that is not a string, templates a list, refs that are not lists),
              random JSON, bytes that are not JSON, 100,000-deep nesting, files of 2,000 refs
              with unknown templates; in a directory also one sparse 600 MiB file (over GC's
              512 MiB limit: listed, never read)
            - 1,000 pins in the zone from 50 other users: 900 valid lindivc-pin/2 pins, each
              naming 20 of the zone's chunks and 500 names it does not hold, and 100 junk pins

Figures: wall time and peak RSS of a dry run (the plan, where the junk is read; best of
``--repeat``) and of a GC (plan and sweep, once: it deletes), clean and junk; target junk
<= 1.5 x clean in time, RSS unchanged (<= 1.1 x). The pins name chunks of the zone's packs only (the garbage is lone objects), so both GCs delete
the same. ``--s3`` runs both on a moto S3 server on loopback instead of a directory.

    python scripts/bench/gc_junk.py [--scale 0.1] [--s3] [--repeat 3] [--dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

from _common import run  # noqa: E402

N_JUNK = 1000
N_PINS = 1000
N_USERS = 50


def junk_documents(rng: random.Random, zone_url: str) -> list[bytes]:
    """1,000 published files another user might leave, none of them a valid LINDI file."""
    shapes = [
        lambda: b'{"refs":{"a":["{{u}}sha1/00",0,1]},"templates":{"u":5}}',
        lambda: b'{"refs":{"a":["x",0,1]},"templates":[1]}',
        lambda: json.dumps({"refs": {str(i): {"k": i} if i % 2 else i for i in range(50)}}).encode(),
        lambda: json.dumps([rng.random() for _ in range(100)]).encode(),
        lambda: bytes(rng.getrandbits(8) for _ in range(2000)),
        lambda: b"[" * 100_000 + b"]" * 100_000,
        lambda: json.dumps({"refs": {f"d/{i}": ["{{nope}}/sha1/aa/bb/cc/" + "%040x" % rng.getrandbits(160), i, 10]
                                     for i in range(2000)}}).encode(),
        lambda: json.dumps({"refs": {"a": [zone_url + "/sha1/00/00/00/x", "0", "1"]}, "templates": None}).encode(),
    ]
    return [shapes[i % len(shapes)]() for i in range(N_JUNK)]


def add_junk(cloud: str, zone_url: str, zone_dir: str, chunks: list[str], rng: random.Random, put) -> dict:
    """Write the junk (``put(key relative to the cloud, bytes)``; None asks for the file over the
    limit, which ``put`` may decline by returning False); return what was written."""
    from lindivc.documents import Pin

    sizes = 0
    for i, body in enumerate(junk_documents(rng, zone_url)):
        put(f"zones/junk{i % N_USERS}/z/f/j{i}.lindi.json", body)
        sizes += len(body)
    # one published file over GC's limit: listed, never read
    huge = put("zones/junk0/z/f/huge.lindi.json", None)
    zone_rel = os.path.relpath(zone_dir, cloud) if not zone_dir.startswith("s3://") else zone_dir
    for i in range(N_PINS):
        user = f"u{i % N_USERS}"
        if i % 10 == 9:
            body = [b"[]", b'"x"', b'{"format":"lindivc-pin/2","kind":"file","created":"x"}',
                    b"\xff\xfe"][i % 4]
        else:
            names = rng.sample(chunks, 20) + ["%040x" % rng.getrandbits(160) for _ in range(500)]
            body = Pin("file", f"https://{user}.example.org/d{i}.lindi.json", 1.0, user, chunks=tuple(names)).to_bytes()
        put(f"{zone_rel}/pins/{user}.p{i}", body)
        sizes += len(body)
    return {"junk_files": N_JUNK + huge, "pins": N_PINS, "bytes": sizes}


def live_chunks(idx_dir: str) -> list[str]:
    """Chunks of the zone's packs (zone_gc.py's garbage is lone objects: pins naming these keep
    nothing the clean GC deletes, so both GCs delete the same)."""
    from lindivc.packs import PackIndex

    out = []
    for n in sorted(os.listdir(idx_dir)):
        with open(os.path.join(idx_dir, n), "rb") as f:
            idx = PackIndex.from_bytes(f.read(), n)
        if len(idx.chunks) > 1:
            out += [e.sha for e in idx.chunks]
    return out


def child(args) -> None:
    """Run one GC in this (fresh) process; print JSON."""
    from lindivc import gc
    from lindivc.zones import open_zone

    zone = open_zone(args.zone)
    t = time.perf_counter()
    plan = gc.gc_zone(zone, prune=args.prune, grace=gc.parse_grace("now", allow_now=True), cache_dir=args.cache)
    out = {"seconds": time.perf_counter() - t, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "counts": plan.counts(), "invalid": len(plan.invalid), "roots": plan.roots.summary(),
           "kept": sum(plan.kept.values())}
    print(json.dumps(out))


def measure(zone: str, cache: str, env: dict, prune: bool) -> dict:
    """One GC in a fresh process; its report, with its peak RSS as /usr/bin/time sees it (a
    child's own rusage would count pages it inherited from this process before exec)."""
    r = run([sys.executable, __file__, "--child", "--zone", zone, "--cache", cache] + (["--prune"] if prune else []),
            env=env)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["peak_rss_mb"] = r.maxrss / (1 << 20)
    return out


def both(clean: str, junk: str, root: str, env: dict, repeat: int) -> tuple[dict, dict]:
    """{"plan": dry run, "gc": plan and sweep} of the clean and the junk zone, each in a fresh
    process with a fresh cache: the dry runs best of ``repeat`` (alternating clean and junk, so
    that a busy machine weighs on both alike), then one GC each (it deletes)."""
    out: tuple[dict, dict] = ({}, {})
    for n in range(repeat):
        for i, zone in enumerate((clean, junk)):
            r = measure(zone, os.path.join(root, f"cache-plan-{i}-{n}"), env, False)
            best = out[i].get("plan")
            if best is None or r["seconds"] < best["seconds"]:
                out[i]["plan"] = dict(r, peak_rss_mb=max(r["peak_rss_mb"], best["peak_rss_mb"] if best else 0))
    for i, zone in enumerate((clean, junk)):
        out[i]["gc"] = measure(zone, os.path.join(root, f"cache-gc-{i}"), env, True)
    return out


def local_run(root: str, scale: float, rng: random.Random, repeat: int) -> tuple[dict, dict, dict]:
    from zone_gc import build

    info = build(os.path.join(root, "clean"), scale)
    zdir = info["zone"]
    junk_root = os.path.join(root, "junk")
    shutil.copytree(os.path.join(root, "clean"), junk_root, symlinks=True)
    cloud = os.path.join(junk_root, "cloud")
    jz = os.path.join(cloud, os.path.relpath(zdir, os.path.join(root, "clean", "cloud")))
    chunks = live_chunks(os.path.join(jz, "idx"))

    def put(key: str, body: bytes | None) -> bool:
        p = os.path.join(cloud, *key.split("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            if body is None:  # 600 MiB, sparse
                f.truncate(600 << 20)
            else:
                f.write(body)
        return True

    added = add_junk(cloud, jz, jz, chunks, rng, put)
    env = dict(os.environ)
    return {**info, **added}, *both(zdir, jz, root, env, repeat)


def s3_run(root: str, scale: float, rng: random.Random, repeat: int) -> tuple[dict, dict, dict]:
    import boto3
    from concurrent.futures import ThreadPoolExecutor
    from moto.server import ThreadedMotoServer
    from zone_gc import build

    info = build(os.path.join(root, "src"), scale)
    src_cloud = os.path.join(root, "src", "cloud")
    rel = os.path.relpath(info["zone"], src_cloud)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                      aws_secret_access_key="bench", region_name="us-east-1")
    try:
        files = [os.path.join(d, n) for d, _, ns in os.walk(src_cloud) for n in ns]
        for bucket in ("bench-clean", "bench-junk"):
            s3.create_bucket(Bucket=bucket)
            with ThreadPoolExecutor(16) as ex:
                list(ex.map(lambda p: s3.upload_file(p, bucket, os.path.relpath(p, src_cloud)), files))
        chunks = live_chunks(os.path.join(info["zone"], "idx"))

        def put(key: str, body: bytes | None) -> bool:
            if body is None:  # a 600 MiB object would cost moto (in this process) its memory: left out
                return False
            s3.put_object(Bucket="bench-junk", Key=key, Body=body)
            return True

        added = add_junk("", f"s3://bench-junk/{rel}", rel, chunks, rng, put)
        return {**info, **added}, *both(f"s3://bench-clean/{rel}", f"s3://bench-junk/{rel}", root, env, repeat)
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="zone size as a fraction of zone_gc.py's")
    ap.add_argument("--s3", action="store_true", help="on a moto S3 server instead of a directory")
    ap.add_argument("--repeat", type=int, default=3, help="dry runs of each, the fastest counts")
    ap.add_argument("--dir", help="work directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--zone", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--prune", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    root = tempfile.mkdtemp(prefix="lindivc-bench-gcjunk-", dir=args.dir)
    try:
        t = time.perf_counter()
        rng = random.Random(10)
        info, clean, junk = (s3_run if args.s3 else local_run)(root, args.scale, rng, args.repeat)
        print(f"built and measured in {time.perf_counter() - t:.1f} s ({'moto S3' if args.s3 else 'directory'}): "
              f"{info['objects']} objects, {info['commits']} commits, {info['rendered_files']} rendered files; "
              f"junk: {info['junk_files']} published files, {info['pins']} pins ({info['bytes'] / 1e6:.1f} MB)")
        ok = True
        for kind, what in (("plan", "dry run (plan)"), ("gc", "GC (plan + sweep)")):
            for name, r in (("clean", clean[kind]), ("junk", junk[kind])):
                print(f"{what:18} {name:5}: {r['seconds']:6.2f} s, peak RSS {r['peak_rss_mb']:5.0f} MB; "
                      f"{'deleted' if kind == 'gc' else 'would delete'} {r['counts']}; "
                      f"{r['invalid']} invalid documents reported; {r['roots']}")
            ratio = junk[kind]["seconds"] / clean[kind]["seconds"]
            rss = junk[kind]["peak_rss_mb"] / clean[kind]["peak_rss_mb"]
            good = ratio <= 1.5 and rss <= 1.1
            ok &= good
            print(f"{what:18} junk / clean: time {ratio:.2f} x (target <= 1.5), peak RSS {rss:.2f} x "
                  f"(target <= 1.1): {'PASS' if good else 'MISS'}")
        sys.exit(0 if ok else 1)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
