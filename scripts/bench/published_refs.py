#!/usr/bin/env python
"""Benchmark: a published file of 1,000,000 chunk refs with LINDI templates against the same file
with full URLs (issue 11). Targets: <= 0.5 x the bytes; lindi open+read not slower.

A zone directory holds 1,000 packs of 1,000 chunks of 16 bytes; it is served over HTTP on
127.0.0.1 (lindivc's range server, the `serve --dir` app), so the zone's public base URL is
``http://127.0.0.1:PORT/zones/alice/acg/``. The published file has four arrays of 250,000 chunks
each, every chunk a ref into a pack: with full URLs; with the zone base template only
(``{{z0}}sha1/aa/bb/cc/<pack>``); and as push writes it (``lindijson.use_templates``: a pack URL
that 5 or more refs use gets a template of its own, ``{{uN}}``, up to 1,000 of them; the zone
base template for the rest), all in lindivc's one-ref-per-line layout. Sizes are also given for
the same refs under an AWS bucket URL (``https://my-lab-bucket.s3.amazonaws.com/zones/alice/acg/``),
the issue's case.

Open+read: a fresh interpreter (lindi imported before the clock starts) opens the file with
``lindi.LindiH5pyFile.from_lindi_file`` and reads the first 64 values of one array (16 chunks,
by HTTP range requests); best of 3 for each file.

    .venv/bin/python scripts/bench/published_refs.py [--scale 0.1]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ENV, Report, Workdir, fmt_bytes, parser, warm_up  # noqa: E402

N_REFS = 1_000_000
N_ARRAYS = 4
PER_PACK = 1000
CHUNK = 16  # bytes: four int32 values
AWS_BASE = "https://my-lab-bucket.s3.amazonaws.com/zones/alice/acg/"

OPEN_AND_READ = """
import sys, time
import lindi
t = time.perf_counter()
f = lindi.LindiH5pyFile.from_lindi_file(sys.argv[1])
x = f["acquisition/series0/data"][:64]
assert len(x) == 64
print(time.perf_counter() - t)
"""


def make_zone(zone: str, n_refs: int) -> list[tuple[str, int]]:
    """Write the packs; return (pack sha1, offset) of every chunk, in ref order."""
    import hashlib

    from lindivc.layout import object_key

    where = []
    for p in range((n_refs + PER_PACK - 1) // PER_PACK):
        n = min(PER_PACK, n_refs - p * PER_PACK)
        data = b"".join((p * PER_PACK + i).to_bytes(4, "little") * 4 for i in range(n))
        sha = hashlib.sha1(data).hexdigest()
        path = os.path.join(zone, object_key(sha))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        where += [(sha, i * CHUNK) for i in range(n)]
    return where


def published(where: list[tuple[str, int]], base: str) -> dict:
    """The published file with full URLs under ``base``."""
    from lindivc.layout import object_key

    per = len(where) // N_ARRAYS
    refs: dict = {".zgroup": {"zarr_format": 2}, ".zattrs": {}, "acquisition/.zgroup": {"zarr_format": 2}}
    for a in range(N_ARRAYS):
        g = f"acquisition/series{a}"
        refs[f"{g}/.zgroup"] = {"zarr_format": 2}
        refs[f"{g}/.zattrs"] = {"neurodata_type": "TimeSeries", "namespace": "core"}
        refs[f"{g}/data/.zarray"] = {"chunks": [4], "compressor": None, "dtype": "<i4", "fill_value": 0,
                                     "filters": None, "order": "C", "shape": [per * 4], "zarr_format": 2}
        refs[f"{g}/data/.zattrs"] = {"_ARRAY_DIMENSIONS": ["t"], "unit": "uV"}
        for i in range(per):
            sha, off = where[a * per + i]
            refs[f"{g}/data/{i}"] = [base + object_key(sha), off, CHUNK]
    return {"refs": refs, "version": 1}


def open_time(path: str) -> float:
    runs = []
    for _ in range(3):
        p = subprocess.run([sys.executable, "-c", OPEN_AND_READ, path], env=ENV, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"lindi failed on {path}:\n{p.stderr[-2000:]}")
        runs.append(float(p.stdout.strip().splitlines()[-1]))
    return min(runs)


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    n_refs = max(N_ARRAYS * PER_PACK, int(N_REFS * args.scale) // N_ARRAYS * N_ARRAYS)
    warm_up()
    from lindivc import lindijson
    from lindivc.rangeserver import serve_directory

    with Workdir(args, "lvc-bench-refs-") as work:
        zone = os.path.join(work, "zones", "alice", "acg")
        where = make_zone(zone, n_refs)
        rep = Report(f"published_refs: {n_refs:,} chunk refs in {len(where) // PER_PACK} packs")
        with serve_directory(work) as srv:
            base = f"{srv.url}/zones/alice/acg/"
            files = {}
            for label, b in (("served", base), ("aws", AWS_BASE)):
                full = published(where, b)
                files[label, "full"] = lindijson.dumps(full)
                files[label, "base"] = lindijson.dumps(lindijson.use_templates(full, [b], max_url_templates=0))
                files[label, "templates"] = lindijson.dumps(lindijson.use_templates(full, [b]))
                del full
            for label in ("aws", "served"):
                full, zb, tmpl = (len(files[label, k]) for k in ("full", "base", "templates"))
                rep.line(f"{label} base: full URLs {fmt_bytes(full)}, zone base template only {fmt_bytes(zb)} "
                         f"({zb / full:.3f}), as published {fmt_bytes(tmpl)}")
                rep.check(f"bytes, published / full ({label})", tmpl / full, 0.5, f"{tmpl / full:.3f}", "0.5")
            paths = {}
            for kind in ("full", "base", "templates"):
                paths[kind] = os.path.join(work, f"{kind}.lindi.json")
                with open(paths[kind], "wb") as f:
                    f.write(files["served", kind])
            n_templates = len(json.loads(files["served", "templates"])["templates"])
            del files
            t_full, t_base, t_tmpl = (open_time(paths[k]) for k in ("full", "base", "templates"))
        rep.line(f"published file: {n_templates} templates")
        rep.line(f"lindi open + read 64 values (best of 3): full URLs {t_full:.2f} s, zone base template only "
                 f"{t_base:.2f} s, as published {t_tmpl:.2f} s")
        rep.check("open+read, published / full", t_tmpl / t_full, 1.0, f"{t_tmpl / t_full:.2f}", "1.0")
    rep.finish()


if __name__ == "__main__":
    main()
