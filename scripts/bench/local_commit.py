#!/usr/bin/env python
"""Benchmark: commit of 1 GiB of new chunk data (issue 2). Target: write+commit <= 1.5 x floor.

200 chunks of 5 MiB of random (incompressible) bytes, generated before any timing, are written
as one uint8 dataset (chunks of one row) through ``lindivc.open(path, "r+")`` with h5py's
``create_dataset(..., chunks=..., compression=None)`` (``--compression default`` uses lindi's
default, Blosc, which spends time failing to compress random bytes), then ``lindivc commit -a``
runs as a CLI command.

Floor: the same 200 chunks as files, ``sha1sum`` over them plus ``cp`` to another directory
(the real binaries), i.e. hashing and copying the bytes once each. The floor is measured before
and after the lindivc run and the smallest figure is used; before each timed step the disk is let go idle (sync, 2 s).

Peak RSS is reported for the writing process (which holds the 1 GiB of data, as a user's
process would) and for the commit command.

    .venv/bin/python scripts/bench/local_commit.py [--scale 0.05] [--compression none|default]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MiB, Report, Workdir, fmt_bytes, lindivc_cmd, parser, run, warm_up  # noqa: E402

N_CHUNKS = 200
CHUNK = 5 * MiB


def child(repo: str, chunk_dir: str, n: int, size: int, compression: str) -> None:
    """Runs in its own process: load the chunks, then time the write through lindivc.open."""
    import resource

    import numpy as np

    import lindivc

    data = np.empty((n, size), dtype=np.uint8)
    for i in range(n):
        with open(os.path.join(chunk_dir, f"c{i:04d}"), "rb") as f:
            f.readinto(memoryview(data[i]))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    path = os.path.join(repo, "data.lindi.json")
    kw = {} if compression == "default" else {"compression": None}
    t0 = time.perf_counter()
    with lindivc.open(path, "r+") as f:
        f.create_dataset("bench/data", data=data, chunks=(1, size), **kw)
    t_write = time.perf_counter() - t0
    rss_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"write": t_write, "rss_before": rss_before, "rss_write": rss_write}))


def settle() -> None:
    """Let the disk go idle (write back and discard what earlier steps left) before timing."""
    subprocess.run(["sync"], check=True)
    time.sleep(2)


def floor(chunk_dir: str, dest: str, names: list[str]) -> float:
    settle()
    os.makedirs(dest, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run(["sha1sum", *names], cwd=chunk_dir, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cp", *names, dest], cwd=chunk_dir, check=True)
    dt = time.perf_counter() - t0
    subprocess.run(["rm", "-rf", dest], check=True)
    return dt


def main() -> None:
    p = parser(__doc__.splitlines()[1])
    p.add_argument("--compression", choices=["none", "default"], default="none")
    p.add_argument("--child", nargs=5, help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        repo, chunk_dir, n, size, comp = args.child
        child(repo, chunk_dir, int(n), int(size), comp)
        return
    n = max(1, round(N_CHUNKS * args.scale))
    size = CHUNK
    import numpy as np

    warm_up()
    with Workdir(args, "lindivc-bench-commit-") as tmp:
        chunk_dir = os.path.join(tmp, "chunks")
        os.makedirs(chunk_dir)
        rng = np.random.default_rng(2)
        names = []
        for i in range(n):
            name = f"c{i:04d}"
            with open(os.path.join(chunk_dir, name), "wb") as f:
                f.write(rng.bytes(size))
            names.append(name)

        repo = os.path.join(tmp, "repo")
        run(lindivc_cmd() + ["init", repo])
        with open(os.path.join(repo, "data.lindi.json"), "w") as f:
            json.dump({"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {}}}, f)
        run(lindivc_cmd() + ["add", "data.lindi.json"], cwd=repo)
        run(lindivc_cmd() + ["commit", "-m", "empty file"], cwd=repo)

        f1 = min(floor(chunk_dir, os.path.join(tmp, "copy"), names) for _ in range(2))
        settle()
        c = run([sys.executable, os.path.abspath(__file__), "--child", repo, chunk_dir, str(n), str(size),
                 args.compression])
        res = json.loads(c.stdout.strip().splitlines()[-1])
        cm = run(lindivc_cmd() + ["commit", "-a", "-m", "add 1 GiB of chunk data"], cwd=repo)
        res["commit"], res["rss_commit"] = cm.seconds, cm.maxrss
        res["total"] = res["write"] + cm.seconds
        f2 = floor(chunk_dir, os.path.join(tmp, "copy"), names)
        fl = min(f1, f2)

        total = n * size
        rep = Report(f"commit of new chunk data: {n} chunks x {size // MiB} MiB = {fmt_bytes(total)} "
                     f"(random bytes, compression={args.compression})")
        rep.line(f"floor sha1sum+cp: {f1:.2f} s before (best of 2), {f2:.2f} s after (using {fl:.2f} s)")
        rep.line(f"lindivc: write {res['write']:.2f} s + commit -a {res['commit']:.2f} s")
        rep.ratio("write+commit", res["total"], fl, 1.5)
        rep.line(f"throughput {total / res['total'] / MiB:.0f} MiB/s (floor {total / fl / MiB:.0f} MiB/s)")
        rep.line(f"peak RSS writer {fmt_bytes(c.maxrss)} (holding {fmt_bytes(res['rss_before'])} with the data "
                 f"loaded; +{fmt_bytes(max(0, res['rss_write'] - res['rss_before']))} while writing), "
                 f"commit -a {fmt_bytes(res['rss_commit'])}")
        rep.finish()


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
