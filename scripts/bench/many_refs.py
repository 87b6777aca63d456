#!/usr/bin/env python
"""Benchmark: `status` and `commit -a` of a one-attribute change in a LINDI file with 1,000,000
chunk refs (issue 2). Targets: <= 5 s and <= 1.5 GB peak RSS each.

The file is built synthetically: four arrays of 250,000 chunks each. Three point at an external
URL through a template (as lindi writes refs into a DANDI asset); the fourth points at objects
of the local store by absolute path (the materialized form of content refs), 1,000 distinct
small objects shared round-robin. It is committed once. Then a "user tool" loads the JSON with
the standard library, changes one attribute in one group's ``.zattrs`` and writes it back, and
``lindivc status`` and ``lindivc commit -a`` run as whole CLI commands (imports included).

Floors, measured in the same run on the edited file: ``python -c "import json; json.load(...)"``
(the ratio is printed against it) and ``git hash-object``.

    .venv/bin/python scripts/bench/many_refs.py [--scale 0.1]
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Report, Workdir, best_of, fmt_bytes, lindivc_cmd, parser, run, warm_up  # noqa: E402

N_REFS = 1_000_000
N_ARRAYS = 4
N_OBJECTS = 1000
EXTERNAL = "https://dandiarchive.s3.amazonaws.com/blobs/2a4/1f0/2a41f0d7-0000-4000-8000-00000000beef"


def build(path: str, objects, n_refs: int) -> None:
    """Write the synthetic LINDI file (lindivc's one-ref-per-line layout)."""
    from lindivc import lindijson

    per = n_refs // N_ARRAYS
    refs: dict = {".zgroup": {"zarr_format": 2}, ".zattrs": {}, "acquisition/.zgroup": {"zarr_format": 2},
                  "acquisition/.zattrs": {}}
    shas = [objects.put_bytes(i.to_bytes(4, "little") * 1024) for i in range(N_OBJECTS)]
    paths = [objects.path(s) for s in shas]
    for a in range(N_ARRAYS):
        g = f"acquisition/series{a}"
        refs[f"{g}/.zgroup"] = {"zarr_format": 2}
        refs[f"{g}/.zattrs"] = {"description": f"series {a}", "neurodata_type": "TimeSeries", "namespace": "core"}
        refs[f"{g}/data/.zarray"] = {"chunks": [1024], "compressor": None, "dtype": "<i4", "fill_value": 0,
                                     "filters": None, "order": "C", "shape": [per * 1024], "zarr_format": 2}
        refs[f"{g}/data/.zattrs"] = {"_ARRAY_DIMENSIONS": ["t"], "unit": "uV"}
        local = a == N_ARRAYS - 1
        for i in range(per):
            if local:
                refs[f"{g}/data/{i}"] = [paths[i % N_OBJECTS], 0, 4096]
            else:
                refs[f"{g}/data/{i}"] = ["{{u0}}", 8192 + (a * per + i) * 4096, 4096]
    rfs = {"refs": refs, "templates": {"u0": EXTERNAL}, "version": 1,
           "generationMetadata": {"generatedBy": "lindivc scripts/bench/many_refs.py"}}
    with open(path, "wb") as f:
        f.write(lindijson.dumps(rfs))


def main() -> None:
    args = parser(__doc__.splitlines()[1]).parse_args()
    n_refs = max(N_ARRAYS, round(N_REFS * args.scale))
    warm_up()
    from lindivc.repo import Repository

    with Workdir(args, "lindivc-bench-refs-") as tmp:
        repo_dir = os.path.join(tmp, "repo")
        run(lindivc_cmd() + ["init", repo_dir])
        name = "big.lindi.json"
        path = os.path.join(repo_dir, name)
        repo = Repository(repo_dir)
        t0 = time.perf_counter()
        build(path, repo.objects, n_refs)
        repo.close()
        t_build = time.perf_counter() - t0
        add = run(lindivc_cmd() + ["add", name], cwd=repo_dir)
        first = run(lindivc_cmd() + ["commit", "-m", "1M chunk refs"], cwd=repo_dir)

        # the one-attribute change, made by a tool that knows nothing of lindivc
        t0 = time.perf_counter()
        with open(path) as f:
            rfs = json.load(f)
        rfs["refs"]["acquisition/series1/.zattrs"]["description"] = "series 1, re-referenced"
        with open(path, "w") as f:
            json.dump(rfs, f)
        del rfs
        t_edit = time.perf_counter() - t0
        size = os.path.getsize(path)

        fl_json = best_of(3, [sys.executable, "-c", f"import json; json.load(open({path!r}))"])
        fl_git = best_of(3, ["git", "hash-object", path])
        status = run(lindivc_cmd() + ["status"], cwd=repo_dir)
        status2 = run(lindivc_cmd() + ["status"], cwd=repo_dir)
        commit = run(lindivc_cmd() + ["commit", "-a", "-m", "change one attribute"], cwd=repo_dir)
        after = run(lindivc_cmd() + ["status"], cwd=repo_dir)
        diff = run(lindivc_cmd() + ["diff", "HEAD~1", "HEAD", "--json"], cwd=repo_dir)

        changed = json.loads(diff.stdout)
        ok_diff = (len(changed) == 1 and [a["name"] for a in changed[0]["attrs_changed"]] == ["/acquisition/series1"])
        rep = Report(f"status / commit -a of a one-attribute change, {n_refs:,} chunk refs "
                     f"({fmt_bytes(size)} working file)")
        rep.line(f"setup: build {t_build:.1f} s, add {add.seconds:.1f} s, first commit {first.seconds:.1f} s "
                 f"({fmt_bytes(max(add.maxrss, first.maxrss))} RSS), edit by json.load/json.dump {t_edit:.1f} s")
        rep.line(f"floor python json.load {fl_json.seconds:.2f} s ({fmt_bytes(fl_json.maxrss)} RSS), "
                 f"git hash-object {fl_git.seconds:.2f} s")
        rep.line(f"status output: {' | '.join(x.strip() for x in status.stdout.strip().splitlines()[:6])}")
        rep.ratio("lindivc status (changed file)", status.seconds, fl_json.seconds)
        rep.check("status time", status.seconds, 5.0, f"{status.seconds:.2f} s", "5 s")
        rep.check("status peak RSS", status.maxrss, 1.5 * 1e9, fmt_bytes(status.maxrss), "1.5 GB")
        rep.line(f"status again (stat cache): {status2.seconds:.2f} s, {fmt_bytes(status2.maxrss)}")
        rep.ratio("lindivc commit -a", commit.seconds, fl_json.seconds)
        rep.check("commit -a time", commit.seconds, 5.0, f"{commit.seconds:.2f} s", "5 s")
        rep.check("commit -a peak RSS", commit.maxrss, 1.5 * 1e9, fmt_bytes(commit.maxrss), "1.5 GB")
        rep.line(f"status after commit: {after.seconds:.2f} s ({after.stdout.strip().splitlines()[-1]})")
        rep.check("diff HEAD~1 HEAD names only that attribute", 0 if ok_diff else 1, 0, "yes" if ok_diff else "NO", "yes")
        rep.finish()


if __name__ == "__main__":
    main()
