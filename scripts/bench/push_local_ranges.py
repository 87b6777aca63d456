#!/usr/bin/env python
"""Benchmark: `lindivc push` of a 1 GiB local HDF5 file imported without --ingest (issue 11),
against the floor of uploading the same bytes. Target: <= 1.3 x the floor.

An HDF5 file (h5py) holds one float32 dataset of 1 GiB in chunks of 1 MiB, random bytes
(incompressible, no filter). `lindivc import` converts it (a ref per chunk, byte ranges of the
file) and `lindivc commit` records it; neither is timed. Then, against one `moto_server`
subprocess on 127.0.0.1 (as scripts/bench/push_s3.py):

- push: `lindivc push` to a fresh S3 zone, a whole CLI subprocess: it hashes every range of the
  file (first push), packs the chunks (64 MiB) and streams them up, then publishes the file;
- push again to a second zone: the ranges' chunks are recalled, not hashed again;
- for reference, the same file imported with --ingest (its chunks copied into the object store
  beforehand) and pushed to a third zone: the cost of sending the same chunks from loose objects;
- floor: the same bytes cut into 64 MiB pieces (files written beforehand) stored by 8 threads of
  parallel ``put_object`` (boto3), best of 3.

Peak RSS of the push comes from ``/usr/bin/time``.

    .venv/bin/python scripts/bench/push_local_ranges.py [--scale 0.25]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ENV, GiB, MiB, Report, Workdir, fmt_bytes, lindivc_cmd, parser, run, warm_up  # noqa: E402
from push_s3 import Moto, floor_puts, s3_client, settle  # noqa: E402  (one moto server and floor for both)

CHUNK = MiB
PIECE = 64 * MiB
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


def make_hdf5(path: str, size: int) -> None:
    import h5py
    import numpy as np

    rng = np.random.default_rng(11)
    n = size // 4
    per = CHUNK // 4
    with h5py.File(path, "w") as f:
        d = f.create_dataset("data", shape=(n,), dtype="<f4", chunks=(per,))
        for start in range(0, n, 64 * per):
            stop = min(n, start + 64 * per)
            d[start:stop] = np.frombuffer(rng.bytes((stop - start) * 4), dtype="<f4")


def cut_pieces(path: str, out_dir: str) -> list[str]:
    """The file's bytes as 64 MiB files (what the floor uploads)."""
    os.makedirs(out_dir)
    out = []
    with open(path, "rb") as f:
        i = 0
        while True:
            data = f.read(PIECE)
            if not data:
                break
            p = os.path.join(out_dir, f"piece{i:05d}")
            with open(p, "wb") as g:
                g.write(data)
            out.append(p)
            i += 1
    return out


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    size = max(64 * MiB, int(GiB * args.scale) // CHUNK * CHUNK)
    warm_up()
    env = {**ENV, **S3_ENV}
    with Workdir(args, "lvc-bench-local-") as work:
        h5 = os.path.join(work, "big.h5")
        make_hdf5(h5, size)
        repo = os.path.join(work, "repo")
        lv = lindivc_cmd()
        run(lv + ["init", repo])
        t_import = run(lv + ["import", h5], cwd=repo).seconds
        run(lv + ["commit", "-m", "a local HDF5 file"], cwd=repo)
        ingested = os.path.join(work, "ingested")
        run(lv + ["init", ingested])
        run(lv + ["import", "--ingest", h5], cwd=ingested)
        run(lv + ["commit", "-m", "the same file, ingested"], cwd=ingested)
        pieces = cut_pieces(h5, os.path.join(work, "pieces"))
        rep = Report(f"push_local_ranges: {fmt_bytes(os.path.getsize(h5))} HDF5 file, "
                     f"{size // CHUNK} chunks of {CHUNK // MiB} MiB, imported without --ingest ({t_import:.1f} s)")
        moto = Moto(work)
        try:
            s3 = s3_client(moto.url)
            s3.create_bucket(Bucket="bench")
            floors = []
            for _ in range(3):
                settle()
                floors.append(floor_puts(s3, "bench", pieces))
            floor = min(floors)
            env["AWS_ENDPOINT_URL"] = moto.url
            run(lv + ["remote", "add", "origin", "s3://bench/zones/alice/acg"], cwd=repo, env=env)
            run(lv + ["remote", "add", "second", "s3://bench/zones/bob/acg"], cwd=repo, env=env)
            run(lv + ["remote", "add", "origin", "s3://bench/zones/carol/acg"], cwd=ingested, env=env)
            settle()
            first = run(lv + ["push", "origin"], cwd=repo, env=env)
            settle()
            second = run(lv + ["push", "second", "--no-borrow"], cwd=repo, env=env)
            settle()
            loose = run(lv + ["push", "origin", "--no-borrow"], cwd=ingested, env=env)
        finally:
            moto.stop()
        rep.line(first.stdout.strip().splitlines()[0])
        rep.line(f"floor: {len(pieces)} x 64 MiB put_object, 8 threads, best of 3: {floor:.2f} s "
                 f"({size / floor / 1e6:.0f} MB/s)")
        rep.ratio("push (hashes the ranges)", first.seconds, floor, 1.3)
        rep.ratio("push to a 2nd zone (recalled)", second.seconds, floor)
        rep.ratio("push of the --ingest import", loose.seconds, floor)
        rep.line(f"peak RSS of push: {fmt_bytes(first.maxrss)}")
    rep.finish()


if __name__ == "__main__":
    main()
